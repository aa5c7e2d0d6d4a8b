"""How items added after training (`llmrec items add`) enter a top-K: the one owner of that rule,
its settings (`generate.new_item_placement`, `new_item_slots`, `new_item_neighbours`,
`new_item_boost`), and the chance tables it is calibrated with (`chance_tables`, measured by the
content mix fit on validation, and `RankChance.from_tables`, read back from the fit). The mixes
(llmrec.mix) only pass these through.

An added item's row is predicted from its text (llmrec.catalogue.change), never trained, and a ridge
map shrinks towards the average row: left to the plain catalogue softmax, added items rarely reach a
top-10, and the LLM's score of one says little
(benchmarks/results/cold_start/newest-items.json). `slots` reserves up
to that many places: when fewer added items made the top-K on their own, added items join it in place
of the last warm ones. Which ones: with `affinity` (each item's text similarity to the user's latest
item), the most similar, and only those among the `neighbours` items (of the whole recommendable
catalogue) most similar to it: a rank, not a cosine, so the rule does not depend on the embedding's
scale; without `affinity`, those the LLM scores best.

Calibrated placement (`generate.new_item_placement: calibrated`, atomic ids with item text: the
content mix, or the LLM alone) instead weighs what a place is worth. On validation the mix fit
(llmrec.mix) counts the share of targets at each rank of the ranking (`RankChance.ranked`)
and at each rank of text similarity to the user's latest item (`RankChance.by_text`). A warm item
at rank j among warm items then has chance ranked[j], an added item at text rank r (whole
catalogue) by_text[r], and the list is the top-K by chance: where text predicts the next item, the
nearest added item leads the list; where it does not, added items stay out instead of taking two
places from every user (ML-100K, benchmarks/results/cold_start/newest-items.json).

When the user's nearest item by text is an added one, no warm item is the nearest, and a warm
item's chance is lower than `ranked` says: part of the ranking's first place is the nearest text
agreeing with it. So the fit also counts the chance at each rank over the users whose item there
is not their nearest by text (`RankChance.apart`), and those users' warm items get it. On
Industrial's validation (the mix with SASRec-CE's term, 3 seeds) the mix's first item was the next
item 7.1% of the time, 3.2% where it was not the nearest by text, against the nearest text's 5.5%:
an added nearest item now goes first, and cold users' NDCG@10 rose 43% with warm users' unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from llmrec.generate.beam import Scored

NEG = float("-inf")
PROFILE_ITEMS = 1  # the user's latest items whose mean text vector the new items are compared with
CHANCE_DEPTH = 200  # ranks a chance table covers; deeper ranks have chance 0


def target_ranks(scores: torch.Tensor, targets: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's target column's score and its 0-based rank in the row's `scores` (the columns
    scoring strictly higher)."""
    target = scores[torch.arange(len(targets)), torch.tensor(targets, dtype=torch.long)]
    return target, (scores > target[:, None]).sum(1)


def rank_chance(scores: torch.Tensor, targets: list[int], depth: int = CHANCE_DEPTH) -> torch.Tensor:
    """The share of rows whose target column is at each rank (0-based) of the row's `scores`."""
    ranks = target_ranks(scores, targets)[1].clamp(max=depth)
    return torch.bincount(ranks, minlength=depth + 1)[:depth].float() / max(1, len(targets))


def rank_chance_apart(
    scores: torch.Tensor, targets: list[int], nearest: torch.Tensor, depth: int = CHANCE_DEPTH
) -> torch.Tensor:
    """Per rank (0-based) of the rows' `scores`, the share of rows whose column there is the target,
    among the rows whose column there is not their `nearest` (one column per row); 0 where none."""
    top = scores.topk(min(depth, scores.shape[1]), dim=1)
    apart = (top.indices != nearest[:, None]) & (top.values > NEG)
    hit = (top.indices == torch.tensor(targets)[:, None]) & apart
    chance = torch.zeros(depth)
    chance[: top.indices.shape[1]] = hit.sum(0).float() / apart.sum(0).clamp(min=1).float()
    return chance


@dataclass(frozen=True)
class RankChance:
    """Per rank, the share of validation targets found there: of the run's ranking (`ranked`) and of
    the text similarity to the user's latest item (`by_text`); `similarity`: the requests' (users x
    catalogue) text similarity that `by_text` ranks; `apart`: the ranking's chance at each rank
    where the item there is not the nearest by text, for requests whose nearest is an added item
    (fits before it: none, `ranked` for every request)."""

    ranked: torch.Tensor
    by_text: torch.Tensor
    similarity: torch.Tensor
    apart: torch.Tensor | None = None

    def rows(self, index: list[int]) -> RankChance:
        return replace(self, similarity=self.similarity[index])

    @classmethod
    def from_tables(
        cls, tables: dict[str, list[float]], similarity: torch.Tensor, alone: bool = False, boost: float = 1.0
    ) -> RankChance:
        """The chances a fit saved (`chance_tables`) for requests with this text `similarity`: the
        mix's ranking's, or with `alone` the LLM's alone; `boost` scales the added items' chance
        (`generate.new_item_boost`)."""
        ranked = torch.tensor(tables["llm_alone" if alone else "ranked"])
        apart = tables.get("llm_alone_apart" if alone else "ranked_apart")  # absent from older fits
        return cls(
            ranked,
            boost * torch.tensor(tables["by_text"]),
            similarity,
            torch.tensor(apart) if apart is not None else None,
        )


def chance_tables(ranking: torch.Tensor, llm: torch.Tensor, text: torch.Tensor, targets: list[int]) -> dict:
    """Measured on validation users (rows) with their `targets` (columns): the share of targets at each
    rank of the mix's `ranking` and of the LLM's alone (`llm`), and at each rank of `text` similarity
    to the user's latest item; and the two rankings' chances where their item is not the user's
    nearest by text (an added item nearest by text is never the ranking's). What `from_tables` reads."""
    text = text.masked_fill(llm == NEG, NEG)
    nearest = text.argmax(dim=1)
    tables = {
        "ranked": rank_chance(ranking, targets),
        "llm_alone": rank_chance(llm, targets),
        "by_text": rank_chance(text, targets),
        "ranked_apart": rank_chance_apart(ranking, targets, nearest),
        "llm_alone_apart": rank_chance_apart(llm, targets, nearest),
    }
    return {name: [round(float(v), 6) for v in table] for name, table in tables.items()}


def top_with_new_items(
    scores: torch.Tensor,
    new: torch.Tensor,
    top_k: int,
    slots: int,
    affinity: torch.Tensor | None = None,
    neighbours: int | None = None,
    first: bool = False,
) -> list[list[Scored]]:
    """Each row's top-`top_k` columns of `scores` (users x items, -inf = excluded) with up to `slots`
    of them from the columns `new` marks (a bool mask over items, or users x items). The list is
    ordered by score, or with `first`, the slot items lead it (most similar first)."""
    k = min(top_k, scores.shape[1])
    reserved = min(slots, k)
    new = new.to(scores.device).expand_as(scores)
    rank_by = (
        scores if affinity is None else affinity.to(scores.device).float().masked_fill(scores == NEG, NEG)
    )
    eligible = new & (scores > NEG)
    if affinity is not None and neighbours:
        nth = rank_by.topk(min(neighbours, rank_by.shape[1]), dim=-1).values[:, -1:]
        eligible &= rank_by >= nth
    candidates = rank_by.masked_fill(~eligible, NEG).topk(min(2 * reserved, scores.shape[1]), dim=-1)
    out = []
    for r, row in enumerate(scores):
        best = row.topk(k)
        taken = [i for i, s in zip(best.indices.tolist(), best.values.tolist(), strict=True) if s > NEG]
        present = {i for i in taken if bool(new[r, i])}
        extra = [
            i
            for i, s in zip(candidates.indices[r].tolist(), candidates.values[r].tolist(), strict=True)
            if s > NEG and i not in present
        ][: reserved - len(present)]
        if extra:
            warm = [i for i in taken if i not in present]
            dropped = set(warm[len(warm) - max(0, len(taken) + len(extra) - k) :])  # the lowest-scored
            taken = [i for i in taken if i not in dropped]  # still best first
            taken = [*extra, *taken] if first else sorted([*taken, *extra], key=lambda i: -float(row[i]))
        out.append([Scored(i, float(row[i])) for i in taken])
    return out


def top_by_chance(
    scores: torch.Tensor, new: torch.Tensor, top_k: int, chance: RankChance
) -> list[list[Scored]]:
    """Each row's top-`top_k` by calibrated chance: warm columns (not `new`, a mask over columns) at
    rank j of `scores` among warm columns have chance.ranked[j] (chance.apart[j] in the rows whose
    nearest column by chance.similarity is `new`, when the fit has that table), `new` columns at
    rank r of chance.similarity (columns excluded in `scores`, -inf, left out) chance.by_text[r].
    Equal chances keep the warm item, then the better rank. Scores returned are `scores`' own."""
    k = min(top_k, scores.shape[1])
    depth = min(len(chance.by_text), scores.shape[1])
    # float64 so that the tie-breaking steps (1e-12 a rank, 1e-9 for an added item) stay below the
    # gap between two different chances (multiples of 1 / validation users) and above rounding
    step = torch.arange(max(k, depth), dtype=torch.float64) * 1e-12
    similarity = chance.similarity.to(scores).masked_fill(scores == NEG, NEG)
    text_rank = similarity.topk(depth, dim=1)  # an added item deeper than the table has chance 0

    def table(values: torch.Tensor) -> torch.Tensor:
        padded = torch.zeros(k, dtype=torch.float64)  # a table shorter than k: chance 0 below it
        padded[: min(k, len(values))] = values[:k].double()
        return padded - step[:k]

    warm_top = scores.masked_fill(new, NEG).topk(k, dim=1)
    warm_chance = table(chance.ranked).expand(len(scores), k).clone()
    if chance.apart is not None and depth:
        nearest_is_new = new[text_rank.indices[:, 0]] & (text_rank.values[:, 0] > NEG)
        warm_chance[nearest_is_new] = table(chance.apart)
    warm_chance[warm_top.values == NEG] = NEG
    new_chance = (chance.by_text[:depth].double() - 1e-9 - step[:depth]).expand(len(scores), depth).clone()
    new_chance[~new[text_rank.indices] | (text_rank.values == NEG)] = NEG
    new_top = new_chance.topk(min(k, depth), dim=1)
    columns = torch.cat([warm_top.indices, text_rank.indices.gather(1, new_top.indices)], dim=1)
    best = torch.cat([warm_chance, new_top.values], dim=1).topk(k, dim=1)
    picked = columns.gather(1, best.indices).tolist()
    return [
        [Scored(i, float(row[i])) for i, v in zip(items, values, strict=True) if v > NEG]
        for row, items, values in zip(scores, picked, best.values.tolist(), strict=True)
    ]
