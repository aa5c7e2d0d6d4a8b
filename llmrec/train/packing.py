"""Packing: short training examples share a row, each attending only to itself.

A user of a product catalogue has ~7 items, a window of 10 tokens; padded to the batch's widest
window, most of a step would be pad. Packed, several windows fill one row of `width` tokens; each
keeps its own positions (0, 1, ...: what the same window gets alone and at inference) and a
block-diagonal causal mask, so no token sees another user's. The loss is the same as unpacked
(tests/test_train.py). Packing is first-fit decreasing, done once before training over the
examples' lengths; a row is assembled when the loader asks for it, so a memory-mapped table of
examples stays on disk. The loop shuffles the rows each epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Example = dict[str, list[int]]


def pack_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """First-fit decreasing: the example indices of each row of at most `width` tokens, rows in the
    order of their first example (deterministic). An example is never split."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    free: list[list[int]] = [[] for _ in range(width + 1)]  # free[c]: rows with exactly c tokens left
    for i in order:
        n = lengths[i]
        if n > width:
            raise ValueError(f"example {i} has {n} tokens, more than the packing width {width}")
        room = next((c for c in range(n, width + 1) if free[c]), None)  # the tightest row it fits
        if room is None:
            rows.append([i])
            free[width - n].append(len(rows) - 1)
            continue
        r = free[room].pop()
        rows[r].append(i)
        free[room - n].append(r)
    return sorted(rows, key=min)


class PackedRows(Sequence):
    """Rows of `examples` (any indexable table: a list, a Hugging Face Dataset) made on access, so a
    memory-mapped table is read a batch at a time: each row the concatenation of its examples, with
    `position_ids` restarting at 0 for each."""

    def __init__(self, examples, rows: list[list[int]]) -> None:
        self.examples, self.rows = examples, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, r: int) -> Example:
        row: Example = {"input_ids": [], "labels": [], "position_ids": []}
        for i in self.rows[r]:
            x = self.examples[i]
            row["input_ids"] += x["input_ids"]
            row["labels"] += x["labels"]
            row["position_ids"] += list(range(len(x["input_ids"])))
            if "gaps" in x:  # time-gap codes (`prompts.time: gaps`)
                row.setdefault("gaps", []).extend(x["gaps"])
        return row


def pack_examples(examples: list[Example], width: int | None = None) -> list[Example]:
    """Rows of at most `width` tokens (default: the longest example) of whole examples, as a list."""
    if not examples:
        return []
    lengths = [len(x["input_ids"]) for x in examples]
    return list(PackedRows(examples, pack_rows(lengths, width or max(lengths))))


def block_causal_mask(position_ids: torch.Tensor, attention_mask: torch.Tensor, dtype: torch.dtype):
    """(batch, 1, L, L) additive mask: a token sees the earlier tokens of its own example (a new
    example starts where the position is 0). Pad (attention_mask 0) sees only itself, so no row of
    the softmax is empty."""
    starts = (position_ids == 0) | (attention_mask == 0)
    segment = starts.long().cumsum(-1)
    length = position_ids.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=position_ids.device).tril()
    allowed = (segment[:, :, None] == segment[:, None, :]) & causal
    mask = torch.zeros(allowed.shape, dtype=dtype, device=position_ids.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
