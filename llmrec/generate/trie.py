"""A prefix tree over the catalogue's id token sequences: what may come next, and where an item ends.

Every sequence ends with the end token (EOS after a next-item prompt, the line break in an item
list; `PromptBuilder.end_token_id`), so no id is a prefix of another and a finished beam is one item.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class ItemTrie:
    def __init__(self, sequences: list[list[int]], end_token_id: int) -> None:
        self.end = end_token_id
        self.children: list[dict[int, int]] = [{}]
        self.parent: list[tuple[int, int]] = [(-1, -1)]  # node -> (parent node, token into it)
        self.count: list[int] = [0]  # items below each node
        self.item_at: dict[int, int] = {}  # leaf node -> item index
        self.leaf_of: list[int] = []  # item index -> leaf node
        self.max_depth = 0
        for item, seq in enumerate(sequences):
            path = [*seq, end_token_id]
            node = 0
            self.count[0] += 1
            for tok in path:
                nxt = self.children[node].get(tok)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][tok] = nxt
                    self.children.append({})
                    self.parent.append((node, tok))
                    self.count.append(0)
                node = nxt
                self.count[node] += 1
            if node in self.item_at:
                raise ValueError(f"items {self.item_at[node]} and {item} have the same token sequence")
            self.item_at[node] = item
            self.leaf_of.append(node)
            self.max_depth = max(self.max_depth, len(path))
        # each node's allowed tokens as a tensor, made when a search first reaches it: making them all
        # up front cost most of the build time and memory on large catalogues (catalogue-scaling.json)
        self._allowed: dict[int, torch.Tensor] = {}
        self._none = torch.zeros(0, dtype=torch.long)

    def step(self, node: int, token: int) -> int:
        """The child reached by `token`, or -1 when it leaves the trie."""
        if node < 0:
            return -1
        return self.children[node].get(token, -1)

    def walk(self, tokens: Iterable[int]) -> int:
        node = 0
        for tok in tokens:
            node = self.step(node, int(tok))
        return node

    def blocked(self, excluded_items: Iterable[int]) -> dict[int, set[int]]:
        """For a set of items to leave out: node -> child tokens whose whole subtree is excluded."""
        removed: dict[int, int] = {}
        for item in set(excluded_items):
            node = 0
            for tok in self._path(item):
                node = self.children[node][tok]
                removed[node] = removed.get(node, 0) + 1
        out: dict[int, set[int]] = {}
        for item in set(excluded_items):
            node = 0
            for tok in self._path(item):
                child = self.children[node][tok]
                if removed[child] == self.count[child]:
                    out.setdefault(node, set()).add(tok)
                    break
                node = child
        return out

    def allowed(self, node: int, blocked: dict[int, set[int]] | None = None) -> torch.Tensor:
        """Token ids that may follow `node` (none for -1 or a leaf)."""
        if node < 0:
            return self._none
        toks = self._allowed.get(node)
        if toks is None:
            toks = self._allowed[node] = torch.tensor(sorted(self.children[node]), dtype=torch.long)
        if blocked and node in blocked:
            keep = torch.tensor([int(t) not in blocked[node] for t in toks], dtype=torch.bool)
            toks = toks[keep]
        return toks

    def _path(self, item: int) -> list[int]:
        path, node = [], self.leaf_of[item]
        while node != 0:
            node, tok = self.parent[node]
            path.append(tok)
        return path[::-1]

    def allowed_matrix(
        self, nodes: list[int], blocked: list[dict[int, set[int]] | None]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(cols, valid), both (len(nodes) x the most tokens any of the nodes allows): row r's
        allowed tokens in ascending order, filled with token 0 where `valid` is False. What a search
        gathers from each row's log-probs instead of masking the whole vocabulary."""
        toks = [self.allowed(node, blk) for node, blk in zip(nodes, blocked, strict=True)]
        width = max((len(t) for t in toks), default=0) or 1
        cols = torch.zeros((len(nodes), width), dtype=torch.long)
        valid = torch.zeros((len(nodes), width), dtype=torch.bool)
        for r, t in enumerate(toks):
            cols[r, : len(t)] = t
            valid[r, : len(t)] = True
        return cols, valid

    def mask(
        self, nodes: list[int], vocab_size: int, blocked: list[dict[int, set[int]] | None]
    ) -> torch.Tensor:
        """Additive mask (len(nodes) x vocab): 0 where the trie allows the token, -inf elsewhere."""
        out = torch.full((len(nodes), vocab_size), float("-inf"))
        rows, cols = [], []
        for r, (node, blk) in enumerate(zip(nodes, blocked, strict=True)):
            toks = self.allowed(node, blk)
            rows.append(torch.full((len(toks),), r, dtype=torch.long))
            cols.append(toks)
        if rows:
            out[torch.cat(rows), torch.cat(cols)] = 0.0
        return out
