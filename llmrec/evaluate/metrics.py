"""Full-ranking metrics from top-K lists: an item the model did not return is a miss.

Because the lists are generated over the whole catalogue, this is full ranking (no sampled
negatives). HR@k and NDCG@k with one relevant item; MRR over the returned list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CUTOFFS = (1, 5, 10)


def _ndcg_at_rank(rank: int, k: int) -> float:
    """NDCG@k with a single relevant item found at 1-based `rank`."""
    return 1.0 / math.log2(rank + 1) if rank <= k else 0.0


def user_ndcg(target: str, ranked: Sequence[str], k: int = 10) -> float:
    """One user's NDCG@k (the per-user term `ranking_metrics` averages); 0 if the target is absent."""
    items = list(ranked)
    return _ndcg_at_rank(items.index(target) + 1, k) if target in items else 0.0


def ranking_metrics(
    targets: Sequence[str], ranked: Sequence[Sequence[str]], catalogue: set[str]
) -> dict[str, float]:
    """Means over users of hr@{1,5,10}, ndcg@{5,10}, mrr; plus valid_rate (returned ids that are
    catalogue items) and distinct_rate (returned ids not repeated within a user's list)."""
    if len(targets) != len(ranked):
        raise ValueError("one ranked list per target")
    n = len(targets)
    sums = {f"hr@{k}": 0.0 for k in CUTOFFS} | {"ndcg@5": 0.0, "ndcg@10": 0.0, "mrr": 0.0}
    returned = valid = distinct = 0
    for target, items in zip(targets, ranked, strict=True):
        returned += len(items)
        valid += sum(i in catalogue for i in items)
        distinct += len(set(items))
        if target not in items:
            continue
        rank = list(items).index(target) + 1
        for k in CUTOFFS:
            sums[f"hr@{k}"] += rank <= k
        for k in (5, 10):
            sums[f"ndcg@{k}"] += _ndcg_at_rank(rank, k)
        sums["mrr"] += 1.0 / rank
    out = {key: value / max(n, 1) for key, value in sums.items()}
    out["valid_rate"] = valid / returned if returned else 0.0
    out["distinct_rate"] = distinct / returned if returned else 0.0
    out["users"] = n
    return out
