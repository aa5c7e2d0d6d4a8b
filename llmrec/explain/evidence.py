"""Evidence for a recommendation: the user's history items most related to the recommended item.

The relation is item-item co-occurrence in the training data, as a cosine: over users' training
sequences (valid and test targets never count), `relation(a, b) = n(a, b) / sqrt(n(a) * n(b))`,
where n(a) is the number of users who interacted with a and n(a, b) the number who interacted with
both. It is the classic item-based collaborative-filtering similarity: measurable, cheap, and
independent of the LLM, so an explanation can only cite items that really co-occur with the
recommended one. Ties go to the more recent history item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix


@dataclass
class Evidence:
    item: str
    title: str
    relation: float  # co-occurrence cosine with the recommended item, in (0, 1]


class CooccurrenceEvidence:
    def __init__(self, sequences: list[list[str]], items: list[str], titles: dict[str, str]) -> None:
        self.index = {item: n for n, item in enumerate(items)}
        self.titles = titles
        rows, cols = [], []
        for user, seq in enumerate(sequences):
            for n in {self.index[i] for i in seq if i in self.index}:
                rows.append(user)
                cols.append(n)
        ones = np.ones(len(rows), dtype=np.float32)
        # item x user incidence (binary: repeats do not count twice)
        self.incidence = csr_matrix((ones, (cols, rows)), shape=(len(items), len(sequences)))
        self.norm = np.sqrt(np.asarray(self.incidence.sum(axis=1)).ravel())

    def relations(self, item: str, history: list[str]) -> np.ndarray:
        """Co-occurrence cosine between `item` and each history item (0 for unknown or unseen)."""
        if item not in self.index or not history:
            return np.zeros(len(history))
        known = np.array([self.index.get(h, -1) for h in history])
        rows = np.maximum(known, 0)  # unknown items read row 0; their relation is zeroed below
        target = self.index[item]
        counts = np.asarray((self.incidence[rows] @ self.incidence[target].T).todense()).ravel()
        denom = self.norm[rows] * self.norm[target]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(denom > 0, counts / denom, 0.0)
        return np.where(known >= 0, rel, 0.0)

    def select(self, item: str, history: list[str], k: int) -> list[Evidence]:
        """Up to `k` distinct history items with the highest relation > 0 to `item`, best first."""
        latest: dict[str, int] = {h: pos for pos, h in enumerate(history) if h != item}
        candidates = list(latest)
        rel = self.relations(item, candidates)
        order = sorted(range(len(candidates)), key=lambda n: (-rel[n], -latest[candidates[n]]))
        return [
            Evidence(candidates[n], self.titles.get(candidates[n], ""), round(float(rel[n]), 4))
            for n in order[:k]
            if rel[n] > 0
        ]
