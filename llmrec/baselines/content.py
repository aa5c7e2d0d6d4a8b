"""The content baseline: rank every item by the text similarity of its embedding to the user's
recent history, the signal a text-rich catalogue and its new items carry before any interaction.

Each item's text ("title. extra text") is embedded by the backbone (`ids.embeddings.text_embeddings`:
mean-pooled last hidden states, cached by text), centred on the catalogue mean (the direction every
pooled embedding shares) and scaled to unit length. A user's profile is the mean of their last L
history items' vectors; an item's score is its cosine with the profile. L is chosen on the
validation split from `PROFILES` by NDCG@10 (`fit`), so the baseline is at its best, not at a guess.
Items without text have no vector and rank last; a catalogue without any text is an input error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from llmrec.data import SplitData, item_domain_array, item_has_text, outside_domains
from llmrec.errors import InputError
from llmrec.evaluate.metrics import ranking_metrics
from llmrec.ids.embeddings import normalise

PROFILES = (1, 2, 3, 5, 10, None)  # history items averaged into the profile; None: all of them


class ContentRecommender:
    def __init__(self, split: SplitData, vectors: np.ndarray, profile: int | None = 1) -> None:
        """`vectors`: one text embedding per catalogue item (split.items order)."""
        self.items = split.items["item"].tolist()
        self.index = {item: i for i, item in enumerate(self.items)}
        self.item_domain = item_domain_array(split.items)
        has_text = item_has_text(split.items)
        if not has_text.any():
            raise InputError(
                "the content baseline needs item text (titles or text columns); this catalogue has none",
                field="data.items",
            )
        vectors = np.asarray(vectors, dtype=np.float32)
        centred = vectors - vectors[has_text].mean(0)
        centred[~has_text] = 0.0  # no text, no similarity
        self.vectors = torch.from_numpy(normalise(centred))
        self.has_text = torch.from_numpy(has_text)
        self.profile = profile

    def scores(
        self,
        histories: list[list[str]],
        exclude_history: bool = True,
        profile: int | None | str = "fitted",
        domains: list[str] | None = None,
    ) -> torch.Tensor:
        """(histories, items) cosine of each item with the profile; history items -inf if excluded,
        items without text below every item with text; with several domains, items outside each
        history's `domains` entry -inf."""
        last = self.profile if profile == "fitted" else profile
        known = [[self.index[i] for i in history if i in self.index] for history in histories]
        empty = torch.zeros(self.vectors.shape[1])  # no known history: no similarity to anything
        profiles = torch.stack([self.vectors[seen[-last:] if last else seen].mean(0) if seen else empty
                                for seen in known])  # fmt: skip
        scores = torch.nn.functional.normalize(profiles, dim=-1) @ self.vectors.T
        scores[:, ~self.has_text] = -2.0  # below any cosine
        if exclude_history:
            for r, seen in enumerate(known):
                if seen:
                    scores[r, seen] = float("-inf")
        if (outside := outside_domains(self.item_domain, domains)) is not None:
            scores[torch.from_numpy(outside)] = float("-inf")
        return scores

    def recommend(
        self,
        histories: list[list[str]],
        k: int,
        exclude_history: bool = True,
        profile: int | None | str = "fitted",
        domains: list[str] | None = None,
    ) -> list[list[str]]:
        scores = self.scores(histories, exclude_history, profile, domains)
        top = scores.topk(min(k, len(self.items)), dim=-1)
        return [
            [self.items[j] for j, s in zip(idx, val, strict=True) if s > float("-inf")]
            for idx, val in zip(top.indices.tolist(), top.values.tolist(), strict=True)
        ]

    def fit(self, split: SplitData, exclude_history: bool = True, log: Callable[[str], None] = print) -> dict:
        """Choose the profile length on the validation split (best NDCG@10; ties: the shorter)."""
        users = split.eval_users("valid")
        histories, targets = split.histories(users, "valid"), users["valid"].tolist()
        domains = split.user_domains(users)
        catalogue = set(self.items)
        sweep = {}
        for last in PROFILES:
            lists = self.recommend(histories, 10, exclude_history, profile=last, domains=domains)
            sweep[str(last or "all")] = ranking_metrics(targets, lists, catalogue)["ndcg@10"]
        best = max(PROFILES, key=lambda last: sweep[str(last or "all")])
        self.profile = best
        log(f"content: profile of the last {best or 'all'} history items (validation NDCG@10 "
            f"{sweep[str(best or 'all')]:.4f})")  # fmt: skip
        return {"model": "content", "profile": best or "all", "valid_ndcg@10_by_profile": sweep,
                "text_items": int(self.has_text.sum()), "items": len(self.items)}  # fmt: skip
