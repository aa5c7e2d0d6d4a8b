"""Co-occurrence: how strongly two items go together in what users chose.

The relation is item-item co-occurrence in the training data, as a cosine: over users' training
sequences (valid and test targets never count), `relation(a, b) = n(a, b) / sqrt(n(a) * n(b))`,
where n(a) is the number of users who interacted with a and n(a, b) the number who interacted with
both. It is the classic item-based collaborative-filtering similarity: measurable, cheap, and
independent of the LLM, so an explanation can only say "people who chose A also chose B" where
they did. `facts.py` combines it with item attributes to pick what an explanation states.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix


class CooccurrenceEvidence:
    def __init__(self, sequences: list[list[str]], items: list[str]) -> None:
        self.index = {item: n for n, item in enumerate(items)}
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

    def together(self, a: str, b: str) -> int:
        """How many users chose both `a` and `b` in their training sequences."""
        if a not in self.index or b not in self.index:
            return 0
        return int(self.incidence[self.index[a]].multiply(self.incidence[self.index[b]]).sum())
