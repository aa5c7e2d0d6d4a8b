"""A capped share of each top-K for items added after training (`llmrec items add`).

An added item's row is predicted from its text (llmrec.catalogue.change), never trained, and a ridge
map shrinks towards the average row: left to the plain catalogue softmax, added items rarely reach a
top-10, and the LLM's score of one says little (docs/benchmarks/cold-start.json). `slots` reserves up
to that many places: when fewer added items made the top-K on their own, added items join it in place
of the last warm ones. Which ones: with `affinity` (each item's text similarity to the user's latest
item), the most similar, and only those among the `neighbours` items (of the whole recommendable
catalogue) most similar to it: a rank, not a cosine, so the rule does not depend on the embedding's
scale; without `affinity`, those the LLM scores best.
"""

from __future__ import annotations

import torch

from llmrec.generate.beam import Scored

NEG = float("-inf")
PROFILE_ITEMS = 1  # the user's latest items whose mean text vector the new items are compared with


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
        extra = [i for i, s in zip(candidates.indices[r].tolist(), candidates.values[r].tolist(), strict=True)
                 if s > NEG and i not in present][: reserved - len(present)]  # fmt: skip
        if extra:
            warm = [i for i in taken if i not in present]
            dropped = set(warm[len(warm) - max(0, len(taken) + len(extra) - k) :])  # the lowest-scored
            taken = [i for i in taken if i not in dropped]  # still best first
            taken = [*extra, *taken] if first else sorted([*taken, *extra], key=lambda i: -float(row[i]))
        out.append([Scored(i, float(row[i])) for i in taken])
    return out
