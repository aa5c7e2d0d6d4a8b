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


def paired_bootstrap(diff: Sequence[float], resamples: int = 10_000, seed: int = 0) -> dict:
    """A per-user difference (ours minus theirs, e.g. NDCG@10): its mean, a bootstrap 95% interval of
    the mean (percentile, users resampled with replacement) and a two-sided p-value (how often the
    resampled mean lands on the other side of zero, doubled). One split's gain can be noise; this says
    how much."""
    import numpy as np

    d = np.asarray(diff, dtype=float)
    if not d.any():  # the same lists: no difference and nothing to resample
        return {"mean": 0.0, "bootstrap_95": [0.0, 0.0], "p": 1.0, "users_better": 0, "users_worse": 0,
                "users": len(d)}  # fmt: skip
    rng = np.random.default_rng(seed)
    means = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(resamples)])
    low, high = np.percentile(means, [2.5, 97.5])
    other_side = (means <= 0).mean() if d.mean() > 0 else (means >= 0).mean()
    return {
        "mean": round(float(d.mean()), 5),
        "bootstrap_95": [round(float(low), 5), round(float(high), 5)],
        "p": round(float(min(1.0, 2 * other_side)), 4),
        "users_better": int((d > 0).sum()),
        "users_worse": int((d < 0).sum()),
        "users": len(d),
    }


HISTORY_BUCKETS = ((1, 2), (3, 5), (6, 10), (11, 20), (21, None))


def by_history_length(
    targets: Sequence[str], ranked: Sequence[Sequence[str]], catalogue: set[str], lengths: Sequence[int]
) -> dict[str, dict[str, float]]:
    """`ranking_metrics` for users grouped by how many items their history holds (1-2, 3-5, 6-10,
    11-20, 21+; empty groups left out), so that cold users' numbers are not averaged away."""
    out = {}
    for low, high in HISTORY_BUCKETS:
        picked = [n for n, length in enumerate(lengths) if length >= low and (high is None or length <= high)]
        if picked:
            name = f"{low}-{high}" if high is not None else f"{low}+"
            m = ranking_metrics([targets[n] for n in picked], [ranked[n] for n in picked], catalogue)
            out[name] = {k: m[k] for k in ("hr@10", "ndcg@10", "mrr", "users")}
    return out


def by_domain(
    targets: Sequence[str],
    ranked: Sequence[Sequence[str]],
    domains: Sequence[str],
    catalogues: dict[str, set[str]],
) -> dict[str, dict[str, float]]:
    """`ranking_metrics` per domain of a run over several (`data.sources`): each user counts in the
    domain their data came from, against that domain's items; the domains' users together are the
    whole, so the whole's means are the users-weighted means of these."""
    out = {}
    for domain, catalogue in catalogues.items():
        picked = [n for n, d in enumerate(domains) if d == domain]
        if picked:
            out[domain] = ranking_metrics(
                [targets[n] for n in picked], [ranked[n] for n in picked], catalogue
            )
    return out
