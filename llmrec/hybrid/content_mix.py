"""The LLM plus the item text's similarity to the user's recent history: the content mix
(`generate.retriever: content`).

On a text-rich catalogue the text of consecutive items is the strongest single signal, and the
LLM, even with anchored rows, uses only part of it (Industrial warm NDCG@10: content baseline 0.0668,
anchored LLM 0.0597, the two mixed 0.0717; docs/benchmarks/cold-start.json). For atomic ids every
item already has an exact log-probability, so the mix is a sum over the whole catalogue, new items
included:

    score(item) = log p_llm(item) + w * cos(profile of the last L history items, item)

with the content baseline's vectors and profile (`llmrec.baselines.content`). L and w are picked on
validation users from fixed grids (w = 0 is the LLM alone), and a mix is kept only when it beats the
LLM alone there by more than one standard error (the best of 54 mixes on the same users also wins by
luck). Items added after training (`llmrec items add`) get their cosine from their text at once, and
are placed by calibrated chance (`generate.new_item_placement`, `generate.new_items.top_by_chance`):
the fit also counts, on the same validation users, the share of targets at each rank of the kept
ranking, of the LLM's own ranking (for the LLM alone, `retriever: none`, which places added items
the same way: `llm_alone`) and of text similarity to the latest item. Stored in
RUN_DIR/retriever/content_mix.json (profile, weight, the validation sweep, the gain and its error,
the chance tables).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from llmrec.baselines.content import PROFILES, ContentRecommender
from llmrec.catalogue.change import base_model, catalogue_text_vectors
from llmrec.data import SplitData
from llmrec.errors import InputError
from llmrec.evaluate.metrics import user_ndcg
from llmrec.generate import Recommendation, Recommender
from llmrec.generate.new_items import PROFILE_ITEMS, RankChance, rank_chance
from llmrec.hybrid.surface import MixedRecommender
from llmrec.io import atomic_path, read_json, write_json
from llmrec.train.run_dir import RunDir

WEIGHTS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 40.0)  # log-prob units per unit of cosine
CHUNK = 256  # histories per bonus matrix: (chunk, catalogue) floats, whatever the request's size


def profile_name(last: int | None) -> str:
    return str(last or "all")


def run_text_vectors(run: RunDir, items: pd.DataFrame, log: Callable[[str], None] = print) -> np.ndarray:
    """Each catalogue item's (`items`, the run's split) text embedding by the run's base model
    (RUN_DIR/item_text_vectors.npy, the file `llmrec items add` extends), embedded and saved on first use."""
    vectors = run.load_text_vectors(len(items))
    if vectors is None:
        log(f"content mix: embedding {len(items)} item texts with the base model (once per run)")
        vectors = catalogue_text_vectors(*base_model(run.load_config()), items)
        with atomic_path(run.text_vectors) as tmp, open(tmp, "wb") as f:
            np.save(f, vectors)
    return vectors


def has_text(split: SplitData) -> bool:
    return any(text.strip() for text in split.title_or_text().values())


class ContentMixRecommender(MixedRecommender):
    """The `Recommender` surface (recommend, check_history, model, tokenizer, item_ids, backend)
    over the LLM's catalogue log-probs plus `weight` times the content cosine."""

    def __init__(
        self,
        llm: Recommender,
        content: ContentRecommender,
        profile: int | None,
        weight: float,
        chance: tuple[list[float], list[float]] | None = None,
        alone: bool = False,
    ) -> None:
        """`chance`: the fit's (ranked, by_text) tables for placing added items (`new_item_placement`);
        `alone`: the LLM alone (`weight` 0) whose added items are placed by `chance`, `retriever: none`."""
        if content.items != llm.item_ids.items:
            raise InputError("the content vectors and the run's catalogue list different items",
                             field="item_text_vectors.npy")  # fmt: skip
        super().__init__(llm, "text placement" if alone else "content")
        self.content, self.profile, self.weight = content, profile, weight
        self.chance, self.alone = chance, alone

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        backend: str | None = None,
        llm: Recommender | None = None,
        alone: bool = False,
    ) -> ContentMixRecommender:
        """The run's fitted mix; `alone`: the LLM alone with the fit's `llm_alone` chance table."""
        run = RunDir(run_dir)
        settings = read_json(run.path / "retriever" / "content_mix.json")
        llm = llm or Recommender.from_run(run.path, backend=backend)
        split = run.load_split()
        content = ContentRecommender(split, run_text_vectors(run, split.items))
        profile = None if settings["profile"] == "all" else int(settings["profile"])
        chance = settings.get("rank_chance") or {}  # absent from fits before calibrated placement: slots
        ranked = chance.get("llm_alone" if alone else "ranked")
        tables = (ranked, chance["by_text"]) if ranked is not None else None
        return cls(llm, content, profile, 0.0 if alone else float(settings["weight"]), tables, alone)

    def cosines(self, histories: list[list[str]], profile: int | None) -> torch.Tensor:
        """(histories, catalogue) cosine with the profile; 0 for items without text (neutral)."""
        cos = self.content.scores(histories, exclude_history=False, profile=profile)
        cos[:, ~self.content.has_text] = 0.0
        return cos

    def placement(self, histories: list[list[str]]) -> RankChance | None:
        """Calibrated placement of added items for these histories, or None: slots (no added items,
        `new_item_placement: slots`, or a fit without chance tables)."""
        if (
            self.chance is None
            or self.llm.cfg.new_item_placement != "calibrated"
            or not self.llm.new_items.any()
        ):
            return None
        similarity = self.content.scores(histories, exclude_history=False, profile=PROFILE_ITEMS)
        ranked, by_text = (torch.tensor(table) for table in self.chance)
        return RankChance(ranked, by_text, similarity)

    def recommend(
        self,
        histories: list[list[str]],
        k: int | None = None,
        exclude_history: bool | None = None,
        progress: bool = False,
        candidates: list[list[str]] | None = None,
        times: list[list[float] | None] | None = None,
        now: list[float | None] | None = None,
    ) -> list[list[Recommendation]]:
        """As `Recommender.recommend`, the items ranked by the mixed score (the score returned)."""
        out: list[list[Recommendation]] = []
        bar = tqdm(total=len(histories), desc="recommending", unit="user", disable=not progress)
        for start in range(0, len(histories), CHUNK):
            part = slice(start, start + CHUNK)
            chunk = histories[part]
            for n, history in enumerate(chunk):  # a clear error before the cosine looks items up
                self.llm.check_history(history, where=f"history {start + n + 1}")
            out += self.llm.recommend(
                chunk, k, exclude_history,
                candidates=candidates[part] if candidates is not None else None,
                times=times[part] if times is not None else None,
                now=now[part] if now is not None else None,
                bonus=self.weight * self.cosines(chunk, self.profile) if self.weight else None,
                chance=self.placement(chunk),
            )  # fmt: skip
            bar.update(len(chunk))
        bar.close()
        return out


def fit_content_mix(
    run_dir: str | Path,
    llm: Recommender | None = None,
    log: Callable[[str], None] = print,
    users: pd.DataFrame | None = None,
) -> dict:
    """Pick the profile length and weight on validation (every validation user, or `users`): the LLM
    scores the catalogue once, each (L, w) is a sum and a top-10. Saves and returns content_mix.json."""
    run = RunDir(run_dir)
    cfg = run.load_config()
    split = run.load_split()
    if not has_text(split):
        raise InputError("the content mix needs item text (titles or text columns); this catalogue has none",
                         field="generate.retriever")  # fmt: skip
    t0 = time.time()
    llm = llm or Recommender.from_run(run.path)
    content = ContentRecommender(split, run_text_vectors(run, split.items, log))
    mixer = ContentMixRecommender(llm, content, 1, 0.0)
    users = split.eval_users("valid") if users is None else users
    histories, targets = split.histories(users, "valid"), users["valid"].tolist()
    log(f"content mix: the LLM scores the catalogue for {len(users)} validation users")
    scores = llm.score_catalogue(histories, cfg.generate.exclude_history, times=split.times(users, "valid"))
    items = llm.item_ids.items
    per_user: dict[tuple[int | None, float], np.ndarray] = {}
    for last in PROFILES:
        cos = mixer.cosines(histories, last)
        for w in WEIGHTS:
            top = (scores + w * cos).topk(min(10, len(items)), dim=-1)
            lists = [[items[j] for j, s in zip(idx, val, strict=True) if s > float("-inf")]
                     for idx, val in zip(top.indices.tolist(), top.values.tolist(), strict=True)]  # fmt: skip
            per_user[last, w] = np.array([user_ndcg(t, lst) for t, lst in zip(targets, lists, strict=True)])
    sweep = {profile_name(p): {str(w): float(per_user[p, w].mean()) for w in WEIGHTS} for p in PROFILES}

    def rank(pair: tuple[int | None, float]) -> tuple[float, int, float]:  # ties: shorter profile, smaller w
        return float(per_user[pair].mean()), -PROFILES.index(pair[0]), -pair[1]

    last, weight = max(per_user, key=rank)
    # the best of 54 mixes on the same users beats the LLM alone by luck too: keep it only if its
    # gain is larger than one standard error of the per-user difference
    gain = per_user[last, weight] - per_user[1, 0.0]
    se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
    kept = weight == 0.0 or float(gain.mean()) > se
    alone = sweep["1"]["0.0"]
    kept_last, kept_weight = (last, weight) if kept else (1, 0.0)  # not kept: the LLM alone
    # where a target sits in the kept ranking and in text similarity to the latest item: the chances
    # that place items added after training (generate.new_item_placement: calibrated)
    columns = [llm.item_ids.index[t] for t in targets]
    ranked = rank_chance(scores + kept_weight * mixer.cosines(histories, kept_last), columns)
    llm_alone = rank_chance(scores, columns)
    text = content.scores(histories, exclude_history=False, profile=PROFILE_ITEMS)
    by_text = rank_chance(text.masked_fill(scores == float("-inf"), float("-inf")), columns)
    settings = {
        "profile": profile_name(kept_last),
        "weight": kept_weight,
        "valid_users": len(users),
        "valid_ndcg@10": sweep[profile_name(kept_last)][str(kept_weight)],
        "valid_ndcg@10_llm_alone": alone,
        "best_gain": round(float(gain.mean()), 5),
        "best_gain_se": round(se, 5),
        "valid_ndcg@10_by_profile_weight": sweep,
        "rank_chance": {
            "ranked": [round(float(v), 6) for v in ranked],
            "llm_alone": [round(float(v), 6) for v in llm_alone],
            "by_text": [round(float(v), 6) for v in by_text],
        },
        "fit_wall_s": round(time.time() - t0, 1),
    }
    if kept:
        log(
            f"content mix: profile of the last {profile_name(last)} items, weight {weight} (validation "
            f"NDCG@10 {settings['valid_ndcg@10']:.4f}; LLM alone {settings['valid_ndcg@10_llm_alone']:.4f})"
        )
    else:
        log(f"content mix: the best mix (last {profile_name(last)} items, weight {weight}) gains "
            f"{gain.mean():.4f} NDCG@10 on validation, within one standard error ({se:.4f}): weight 0, "
            "the LLM alone")  # fmt: skip
    folder = run.path / "retriever"
    folder.mkdir(exist_ok=True)
    write_json(folder / "content_mix.json", settings)
    return settings
