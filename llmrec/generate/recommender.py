"""The generation API: top-K catalogue items for user histories, from a trained run.

rec = Recommender.from_run("runs/ml100k")                 # transformers backend (any machine)
rec = Recommender.from_run("runs/ml100k", backend="vllm") # vLLM engine over the merged run
rec.recommend([["50", "172", "133"]], k=10)   # -> [[Recommendation(item, title, score, rank), ...]]
rec.recommend([["50", "172"]], times=[[881250949, 881251000]], now=[881300000])  # with times (seconds)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmrec.config import GenerateConfig, PromptConfig
from llmrec.data.split import unknown_domain
from llmrec.errors import InputError
from llmrec.generate.atomic import catalogue_scores, top_scored
from llmrec.generate.beam import Scored, beam_search
from llmrec.generate.new_items import PROFILE_ITEMS, RankChance, top_by_chance, top_with_new_items
from llmrec.generate.reference import generate_reference
from llmrec.generate.trie import ItemTrie
from llmrec.ids import ItemIds, id_token_ids
from llmrec.prompts import PromptBuilder
from llmrec.prompts.time import check_times
from llmrec.run_dir import RunDir

if TYPE_CHECKING:
    from llmrec.generate.vllm_backend import VllmDecoder


Domains = str | list[str] | None  # a request's domain(s): one for all histories, or one per history


class DomainFilter:
    """The domains of a run over several (`data.sources`): checks the domain each request names and
    holds, per domain, the catalogue items outside it (what that request never gets)."""

    def __init__(self, items: list[str], item_domains: dict[str, str]) -> None:
        self.names = list(dict.fromkeys(item_domains[i] for i in items))
        self.outside = {d: {i for i in items if item_domains[i] != d} for d in self.names}

    def check(self, domains: Domains, n: int) -> list[str]:
        """One valid domain name per history."""
        if domains is None:
            raise InputError(f"this run covers several domains ({', '.join(self.names)}): a request names "
                             "the one to recommend from", field="domain")  # fmt: skip
        if isinstance(domains, str):
            domains = [domains] * n
        if not isinstance(domains, list | tuple) or len(domains) != n:
            raise InputError(f"domain must be one name, or a list with one per history ({n})", field="domain")
        for m, domain in enumerate(domains, start=1):
            if not isinstance(domain, str) or domain not in self.outside:
                raise unknown_domain(domain, self.names, where=f"history {m}")
        return list(domains)


@dataclass
class Recommendation:
    item: str
    title: str
    score: float
    rank: int
    reason: str | None = None  # filled by llmrec.explain when asked to explain
    evidence: list[dict] | None = None  # [{item, title, relation}] the reason is grounded in


def check_shape(lists: object, name: str) -> None:
    """`lists` must be a list of lists of item ids: `["1", "2"]` (one history, not wrapped) would
    otherwise be read as two users, and `["12"]` as the history 1, 2."""
    if isinstance(lists, str) or not isinstance(lists, list | tuple):
        raise InputError(
            f"{name} must be a list of lists of item ids, got {type(lists).__name__}", field=name
        )
    for n, one in enumerate(lists, start=1):
        if isinstance(one, str) or not isinstance(one, list | tuple):
            raise InputError(
                f"{name} must be a list of lists of item ids; entry {n} is {type(one).__name__} {one!r} "
                f"(one history is passed as [[...]])",
                field=name,
            )
        odd = [x for x in one if not isinstance(x, str)]
        if odd:
            raise InputError(f"item ids are strings; entry {n} holds {odd[0]!r}", field=name)


class Recommender:
    """Decodes with `model` (transformers), or with `vllm_decoder` when one is given."""

    def __init__(
        self,
        model: PreTrainedModel | None,
        tokenizer: PreTrainedTokenizerBase,
        item_ids: ItemIds,
        titles: dict[str, str],
        prompt_cfg: PromptConfig,
        gen_cfg: GenerateConfig,
        vllm_decoder: VllmDecoder | None = None,
        unavailable: set[str] | frozenset[str] = frozenset(),
        new_items: set[str] | frozenset[str] = frozenset(),
        text_vectors: np.ndarray | None = None,
        item_domains: dict[str, str] | None = None,
    ) -> None:
        """`unavailable`: catalogue items never recommended (out of stock); histories may hold them.
        `new_items`: items added after training, given up to `gen_cfg.new_item_slots` places, filled
        by text similarity to the user's latest items when `text_vectors` (one row per catalogue
        item, `llmrec items add` writes them) are given. `item_domains`: each item's domain, for a
        run over several (`data.sources`): every request then names the domain it draws from."""
        self.model, self.tokenizer, self.item_ids, self.titles = model, tokenizer, item_ids, titles
        self.unavailable = set(unavailable)
        self.domains = DomainFilter(item_ids.items, item_domains) if item_domains else None
        self.new_items = torch.tensor([item in new_items for item in item_ids.items])
        self.text_vectors = None
        if text_vectors is not None:
            centred = torch.from_numpy(text_vectors).float()
            centred = centred - centred.mean(0)  # the mean direction every pooled embedding shares
            self.text_vectors = torch.nn.functional.normalize(centred, dim=-1)
        self.cfg, self.vllm_decoder = gen_cfg, vllm_decoder
        self.backend = "vllm" if vllm_decoder is not None else "hf"
        self.builder = PromptBuilder(prompt_cfg, tokenizer, item_ids.id_by_item, titles)
        self.trie = ItemTrie(id_token_ids(tokenizer, item_ids.ids), self.builder.end_token_id)
        # atomic ids: every item is one token, so one forward pass ranks the whole catalogue exactly
        self.item_tokens = (
            tokenizer.convert_tokens_to_ids(item_ids.ids) if item_ids.scheme == "atomic" else None
        )

    @classmethod
    def from_run(
        cls, run_dir: str | Path, dtype: str | None = None, backend: str | None = None
    ) -> Recommender:
        """The run's fine-tuned LLM alone, ranking the whole catalogue: the building block every mix
        wraps. What a run serves is `llmrec.load(run_dir)` (the default chosen on validation, often a
        mix); use this only to study the LLM by itself. `backend`: 'hf' or 'vllm' (default: the run
        config's `generate.backend`)."""
        run = RunDir(run_dir)
        cfg = run.load_config()
        backend = backend or cfg.generate.backend
        if backend not in ("hf", "vllm"):
            raise InputError(f"unknown backend {backend!r}: use 'hf' or 'vllm'", field="backend")
        run.check_loadable()  # a missing or damaged file: one clear error before anything loads
        tokenizer = run.load_tokenizer()
        split = run.load_split()
        titles = split.titles()
        ids = ItemIds.load(run.path)
        catalogue = {"unavailable": run.load_unavailable(), "new_items": run.load_added_items(tokenizer, ids),
                     "text_vectors": run.load_text_vectors(len(ids.items)),
                     "item_domains": split.item_domains()}  # fmt: skip
        if backend == "vllm":
            from llmrec.generate.vllm_backend import VllmDecoder, merged_model_dir

            if run.time_gaps is not None:
                raise InputError(
                    "this run adds learned time-gap embeddings to its prompts (prompts.time: gaps), which "
                    "the vLLM backend does not carry yet: use --backend hf",
                    path=run.time_gaps,
                    field="backend",
                )
            decoder = VllmDecoder(merged_model_dir(run), dtype or cfg.model.dtype, cfg.generate.vllm)
            return cls(None, tokenizer, ids, titles, cfg.prompts, cfg.generate, vllm_decoder=decoder,
                       **catalogue)  # fmt: skip
        return cls(run.load_model(tokenizer, dtype), tokenizer, ids, titles, cfg.prompts, cfg.generate,
                   **catalogue)  # fmt: skip

    def _check_times(
        self, histories: list[list[str]], times: object, now: object
    ) -> tuple[list[list[float] | None] | None, list[float | None] | None]:
        """Requests' times as given (checked: one number per item, oldest first, now after them)."""
        if times is None:
            if now is not None:
                raise InputError("now needs the history's times", field="now")
            return None, None
        if not isinstance(times, list | tuple) or len(times) != len(histories):
            raise InputError(f"times must be a list with one entry (a list of seconds, or None) per history; "
                             f"got {type(times).__name__}", field="times")  # fmt: skip
        if now is not None and (not isinstance(now, list | tuple) or len(now) != len(histories)):
            raise InputError("now must be a list with one time (or None) per history", field="now")
        now = list(now) if now is not None else [None] * len(histories)
        for n, (history, stamps, moment) in enumerate(zip(histories, times, now, strict=True)):
            if stamps is None:
                if moment is not None:
                    raise InputError("now needs the history's times", where=f"history {n + 1}", field="now")
                continue
            check_times(history, stamps, moment, where=f"history {n + 1}")
        return [None if t is None else [float(x) for x in t] for t in times], now

    def check_history(self, history: list[str], where: str = "history") -> None:
        unknown = [i for i in history if i not in self.item_ids.index]
        if unknown:
            raise InputError(
                f"unknown item id(s) {unknown[:5]} (not in the catalogue)", where=where, field="item"
            )

    def _decode(
        self,
        prompts: list[list[int]],
        k: int,
        exclude: list[list[int]] | None,
        reference: bool,
        latest: list[list[int]] | None = None,
        gaps: list[list[int]] | None = None,
        bonus: torch.Tensor | None = None,
        chance: RankChance | None = None,
    ) -> list[list[Scored]]:
        """`latest[b]`: catalogue indices of prompt b's latest history items (new items' slots);
        `gaps`: the prompts' time-gap codes (`PromptBuilder.gap_codes`), if any; `bonus`: (prompts,
        catalogue) scores added to the catalogue log-probs (atomic ids); `chance`: added items placed
        by calibrated chance instead of slots (atomic ids)."""
        num_beams = max(self.cfg.num_beams, k)  # k = a shortlist's length when reranking
        if gaps is not None and (reference or self.vllm_decoder is not None):
            raise InputError("time gaps are decoded by the transformers backend's own search only "
                             "(not vLLM, not the model.generate reference)", field="backend")  # fmt: skip
        if self.item_tokens is not None and not (reference and self.vllm_decoder is None):
            return self._rank_catalogue(prompts, k, exclude, latest, gaps, bonus, chance)
        if self.vllm_decoder is not None:
            return self.vllm_decoder.decode(prompts, self.trie, num_beams=num_beams, top_k=k, exclude=exclude)
        was_training = self.model.training
        self.model.eval()
        decode = generate_reference if reference else beam_search
        with torch.inference_mode():
            out = decode(
                self.model,
                prompts,
                self.trie,
                num_beams=num_beams,
                top_k=k,
                pad_id=self.tokenizer.pad_token_id,
                exclude=exclude,
                **({"gaps": gaps} if gaps is not None else {}),
            )
        self.model.train(was_training)
        return out

    def _catalogue_scores(
        self, prompts: list[list[int]], exclude: list[list[int]] | None, gaps: list[list[int]] | None = None
    ) -> torch.Tensor:
        """Atomic ids: (prompts, catalogue) log-probs under the catalogue softmax, excluded items -inf."""
        if self.vllm_decoder is not None:
            return self.vllm_decoder.catalogue_scores(prompts, self.item_tokens, exclude=exclude)
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            pad_id = self.tokenizer.pad_token_id
            scores = catalogue_scores(
                self.model, prompts, self.item_tokens, pad_id=pad_id, exclude=exclude, gaps=gaps
            )
        self.model.train(was_training)
        return scores

    def _rank_catalogue(
        self,
        prompts: list[list[int]],
        k: int,
        exclude: list[list[int]] | None,
        latest: list[list[int]] | None,
        gaps: list[list[int]] | None = None,
        bonus: torch.Tensor | None = None,
        chance: RankChance | None = None,
    ) -> list[list[Scored]]:
        """Atomic ids: the catalogue softmax of every item (+ `bonus`), top-`k`, with added items
        placed by `chance` if given, else in their slots."""
        scores = self._catalogue_scores(prompts, exclude, gaps)
        if bonus is not None:
            scores = scores + bonus.to(scores)  # excluded items stay -inf
        if chance is not None and self.new_items.any():
            return top_by_chance(scores, self.new_items, k, chance)
        if not (self.cfg.new_item_slots and self.new_items.any()):
            return top_scored(scores, k)
        affinity = None
        if self.text_vectors is not None and latest:
            none = torch.zeros(self.text_vectors.shape[1])  # an empty history: no similarity to anything
            profiles = torch.stack([self.text_vectors[rows].mean(0) if rows else none for rows in latest])
            affinity = torch.nn.functional.normalize(profiles, dim=-1) @ self.text_vectors.T
        return top_with_new_items(scores, self.new_items, k, self.cfg.new_item_slots, affinity,
                                  self.cfg.new_item_neighbours)  # fmt: skip

    def _requests(
        self,
        histories: list[list[str]],
        exclude_history: bool | None,
        candidates: list[list[str]] | None,
        times: list[list[float] | None] | None,
        now: list[float | None] | None,
        domains: Domains = None,
    ) -> tuple[list[list[int]], list[list[int]] | None, list[set[str]]]:
        """Checked requests as prompts, their gap codes (None without) and each one's excluded items
        (with several domains: every item outside the request's domain too)."""
        exclude_history = self.cfg.exclude_history if exclude_history is None else exclude_history
        check_shape(histories, "histories")
        if candidates is not None:
            check_shape(candidates, "candidates")
            if len(candidates) != len(histories):
                raise InputError(f"{len(candidates)} candidate lists for {len(histories)} histories",
                                 field="candidates")  # fmt: skip
        for n, history in enumerate(histories):
            self.check_history(history, where=f"history {n + 1}")
        times, now = self._check_times(histories, times, now)
        excluded = [(set(h) if exclude_history else set()) | self.unavailable for h in histories]
        if self.domains is not None:
            for n, domain in enumerate(self.domains.check(domains, len(histories))):
                excluded[n] |= self.domains.outside[domain]
        elif domains is not None:
            raise InputError("this run was trained on one data source, without domains: leave domain out",
                             field="domain")  # fmt: skip
        if candidates is not None:
            for n, shortlist in enumerate(candidates):
                self.check_history(shortlist, where=f"candidates {n + 1}")
                excluded[n] |= set(self.item_ids.items) - set(shortlist)
        prompts = self.builder.encode(histories, times, now)
        # item lists carry the gaps beside the ids, for a model that has time-gap rows to add
        has_gaps = getattr(self.model, "time_gaps", None) is not None
        gaps = self.builder.gap_codes(histories, times, now) if has_gaps else None
        return prompts, gaps, excluded

    def score_catalogue(
        self,
        histories: list[list[str]],
        exclude_history: bool | None = None,
        times: list[list[float] | None] | None = None,
        now: list[float | None] | None = None,
        domains: Domains = None,
    ) -> torch.Tensor:
        """Atomic ids: (histories, catalogue) float32 log-probabilities of every item as the next one
        (the catalogue softmax training optimised), excluded and unavailable items -inf, columns in
        `item_ids.items` order: what a mix with another score starts from (`llmrec.mix`). `domains`:
        as `recommend`."""
        if self.item_tokens is None:
            raise InputError("scoring the whole catalogue needs atomic item ids (ids.scheme: atomic)",
                             field="ids.scheme")  # fmt: skip
        prompts, gaps, excluded = self._requests(histories, exclude_history, None, times, now, domains)
        out = torch.empty(len(prompts), len(self.item_ids.items))
        for idx, exclude in self._batches(prompts, excluded):
            out[idx] = self._catalogue_scores(
                [prompts[j] for j in idx], exclude, [gaps[j] for j in idx] if gaps is not None else None
            ).float()
        return out

    def _batches(
        self, prompts: list[list[int]], excluded: list[set[str]]
    ) -> Iterator[tuple[list[int], list[list[int]] | None]]:
        """Batches of request indices, similar prompt lengths together (less padding), each with its
        excluded catalogue indices (None when nothing is excluded)."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        batch_size = self.cfg.vllm.batch_size if self.vllm_decoder else self.cfg.batch_size
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            exclude = [[self.item_ids.index[i] for i in excluded[j]] for j in idx]
            yield idx, exclude if any(exclude) else None

    def recommend(
        self,
        histories: list[list[str]],
        k: int | None = None,
        exclude_history: bool | None = None,
        progress: bool = False,
        reference: bool = False,
        candidates: list[list[str]] | None = None,
        times: list[list[float] | None] | None = None,
        now: list[float | None] | None = None,
        bonus: torch.Tensor | None = None,
        chance: RankChance | None = None,
        domains: Domains = None,
    ) -> list[list[Recommendation]]:
        """Top-`k` distinct catalogue items per history (oldest item first), best first.
        `reference=True` decodes with `model.generate` instead of the prefill-once beam search.
        `candidates[u]`: rank only these items for user u (rerank another model's shortlist); the
        search widens its beam to the shortlist's length, so every candidate gets its exact score.
        `times[u]`: the unix times (seconds) of history u's items, `now[u]`: the request's (default:
        the last item's time + the user's median gap); used by runs trained with `prompts.time: gaps`,
        ignored by others. A history without times (None) is ranked without them.
        `bonus`: atomic ids, a (histories, catalogue) tensor added to the items' log-probs before
        ranking (another model's scores, as the content mix adds text similarity). `chance`: atomic
        ids, items added after training placed by calibrated chance (`new_items.top_by_chance`, its
        similarity one row per history) instead of `generate.new_item_slots`.
        `domains`: a run over several domains (`data.sources`) recommends from one domain's items:
        the domain's name for every history, or a list with one per history; required there, and an
        error for a run over one source. The history may hold items of any domain."""
        k = self.cfg.top_k if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a whole number >= 1 (got {k!r})", field="k")
        # per-item matrices over the catalogue softmax: a score bonus, added items' text similarity
        similarity = chance.similarity if chance is not None else None
        matrices = (("a score bonus", "bonus", "bonus", bonus),
                    ("calibrated placement", "chance.similarity", "chance", similarity))  # fmt: skip
        for what, name, field, matrix in matrices:
            if matrix is None:
                continue
            if self.item_tokens is None or reference:
                raise InputError(f"{what} needs atomic item ids ranked by the catalogue softmax", field=field)
            expected = (len(histories), len(self.item_ids.items))
            if tuple(matrix.shape) != expected:
                raise InputError(f"{name} must be (histories, catalogue items) = {expected}; "
                                 f"got {tuple(matrix.shape)}", field=field)  # fmt: skip
        prompts, gaps, excluded = self._requests(histories, exclude_history, candidates, times, now, domains)
        results: list[list[Scored]] = [[] for _ in histories]
        bar = tqdm(total=len(prompts), desc="recommending", unit="user", disable=not progress)
        for idx, exclude in self._batches(prompts, excluded):
            latest = [[self.item_ids.index[i] for i in histories[j][-PROFILE_ITEMS:]] for j in idx]
            out = self._decode(
                [prompts[j] for j in idx], k, exclude, reference, latest,
                [gaps[j] for j in idx] if gaps is not None else None,
                bonus[idx] if bonus is not None else None,
                chance.rows(idx) if chance is not None else None,
            )  # fmt: skip
            for j, scored in zip(idx, out, strict=True):
                results[j] = scored
            bar.update(len(idx))
        bar.close()
        return [
            [
                Recommendation(
                    self.item_ids.items[s.item],
                    self.titles.get(self.item_ids.items[s.item], ""),
                    s.score,
                    r + 1,
                )
                for r, s in enumerate(scored)
            ]
            for scored in results
        ]
