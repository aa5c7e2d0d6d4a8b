"""The popularity baseline: the most frequent training items, minus the user's own history."""

from __future__ import annotations

from collections import Counter

from llmrec.data import SplitData


class Popularity:
    def __init__(self, split: SplitData) -> None:
        counts = Counter(item for seq in split.users["train"] for item in seq)
        # Items never seen in training rank last, in catalogue order: every item gets a place.
        self.ranking = [i for i, _ in counts.most_common()] + [
            i for i in split.items["item"] if i not in counts
        ]
        self.item_domains = split.item_domains() or {}

    def recommend(
        self, history: list[str], k: int, exclude_history: bool = True, domain: str | None = None
    ) -> list[str]:
        """The `k` most popular items not in `history` (if excluded); with several domains, of `domain`."""
        seen = set(history) if exclude_history else set()
        out = []
        for item in self.ranking:
            if item not in seen and (domain is None or self.item_domains.get(item) == domain):
                out.append(item)
                if len(out) == k:
                    break
        return out
