"""Residual k-means: item embeddings to fixed-length code tuples, made collision-free."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from llmrec.errors import InputError


def residual_kmeans(
    emb: np.ndarray, levels: int, codebook_size: int, seed: int = 0
) -> tuple[np.ndarray, list]:
    """Codes (n_items x levels) and, per level, (centroids, residual that level clustered)."""
    residual = emb.astype(np.float64)
    codes = np.zeros((len(emb), levels), dtype=np.int64)
    stages = []
    for level in range(levels):
        km = KMeans(n_clusters=min(codebook_size, len(emb)), n_init=3, random_state=seed + level).fit(
            residual
        )
        codes[:, level] = km.labels_
        stages.append((km.cluster_centers_, residual.copy()))
        residual = residual - km.cluster_centers_[km.labels_]
    return codes, stages


def resolve_collisions(
    codes: np.ndarray, stages: list, codebook_size: int, taken: set[tuple[int, ...]] | None = None
) -> np.ndarray:
    """Make every code tuple unique (and unlike the `taken` ones: items already placed): a colliding
    item moves to the nearest free code of the last level under the same prefix; if that prefix is
    full, it also moves at the level above."""
    codes = codes.copy()
    levels = codes.shape[1]
    used: set[tuple[int, ...]] = set(taken or ())
    order = np.lexsort(codes.T[::-1])
    for i in order:
        key = tuple(int(c) for c in codes[i])
        if key not in used:
            used.add(key)
            continue
        new = _nearest_free(i, key, stages, used, levels, codebook_size)
        if new is None:
            raise InputError(
                f"cannot give item #{i} a unique semantic id: raise ids.codebook_size or ids.levels",
                field="ids.codebook_size",
            )
        codes[i] = new
        used.add(new)
    return codes


def _ranked(i: int, level: int, stages: list, codebook_size: int) -> list[int]:
    centers, residual = stages[level]
    dist = ((centers - residual[i]) ** 2).sum(1)
    ranked = list(np.argsort(dist))
    # Codes beyond the fitted centroids (levels with fewer clusters) are still valid tokens.
    return ranked + [c for c in range(codebook_size) if c >= len(centers)]


def _nearest_free(i, key, stages, used, levels, codebook_size):
    last = levels - 1
    for code in _ranked(i, last, stages, codebook_size):
        cand = (*key[:last], int(code))
        if cand not in used:
            return cand
    if levels < 2:
        return None
    for upper in _ranked(i, last - 1, stages, codebook_size):
        for code in range(codebook_size):
            cand = (*key[: last - 1], int(upper), code)
            if cand not in used:
                return cand
    return None
