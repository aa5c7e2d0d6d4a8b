"""Packing: short training examples share a row, each attending only to itself (and to the row's
shared header).

A user of a product catalogue has ~7 items, a window of 10 tokens; padded to the batch's widest
window, most of a step would be pad. Packed, several windows fill one row of `width` tokens; each
keeps its own positions (what the same window gets alone and at inference) and a segment id, and the
mask lets a token see only the earlier tokens of its own segment, so no token sees another user's.

Windows of an item list all begin with the template's header (`Items:`, 3 tokens): on a 5-item
window that is most of the cost. A row of such windows holds the header once, as segment 0 at
positions 0..h-1, and every window continues from position h and may see it. That is exact: the
header comes first and attends only to itself, so its keys and values are the same in every window;
the loss is the one each window has alone (tests/train/test_train.py). Examples without the header
(alignment tasks) are packed in rows of their own without one.

Packing is first-fit decreasing, done once before training over the examples' lengths; a row is
assembled when the loader asks for it, so a memory-mapped table of examples stays on disk. The loop
shuffles the rows each epoch.
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


def plan_rows(
    lengths: Sequence[int], prefixes: Sequence[int], width: int, header: Sequence[int]
) -> tuple[list[list[int]], list[bool]]:
    """Rows of examples (`pack_rows`) and whether each holds the shared `header` once: examples whose
    first `prefixes[i]` tokens are the header (prefix == its length) share it in rows of their own;
    the others are packed as they are."""
    h = len(header)
    shared = [h > 0 and p == h for p in prefixes]
    rows, headed = [], []
    for share in (True, False):
        members = [i for i, s in enumerate(shared) if s == share]
        if not members:
            continue
        cut = h if share else 0
        for row in pack_rows([lengths[i] - cut for i in members], width - cut):
            rows.append([members[j] for j in row])
            headed.append(share)
    return rows, headed


class PackedRows(Sequence):
    """Rows of `examples` (any indexable table: a list, a Hugging Face Dataset) made on access, so a
    memory-mapped table is read a batch at a time: each row the concatenation of its examples, with
    `position_ids` restarting for each and `segment_ids` numbering them from 1; a headed row starts
    with `header` (segment 0) and its examples' own header tokens are left out."""

    def __init__(
        self,
        examples,
        rows: list[list[int]],
        header: Sequence[int] = (),
        headed: Sequence[bool] | None = None,
    ) -> None:
        self.examples, self.rows, self.header = examples, rows, list(header)
        self.headed = list(headed) if headed is not None else [False] * len(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, r: int) -> Example:
        h = len(self.header) if self.headed[r] else 0
        row: Example = {"input_ids": self.header[:h], "labels": [-100] * h, "position_ids": list(range(h)),
                        "segment_ids": [0] * h}  # fmt: skip
        for k, i in enumerate(self.rows[r], start=1):
            x = self.examples[i]
            n = len(x["input_ids"])
            row["input_ids"] += x["input_ids"][h:]
            row["labels"] += x["labels"][h:]
            row["position_ids"] += list(range(h, n))
            row["segment_ids"] += [k] * (n - h)
            if "gaps" in x:  # time-gap codes (`prompts.time: gaps`); the header carries none
                row.setdefault("gaps", [0] * h).extend(x["gaps"][h:])
        return row

    def tokens(self) -> int:
        """Tokens computed per epoch: the rows' lengths (each header once per headed row)."""
        lengths = self.examples["length"] if hasattr(self.examples, "column_names") else None
        if lengths is None:
            lengths = [len(x["input_ids"]) for x in self.examples]
        return sum(
            sum(lengths[i] for i in row) - (len(row) - 1) * len(self.header) * headed
            for row, headed in zip(self.rows, self.headed, strict=True)
        )


def pack_examples(
    examples: list[Example], width: int | None = None, header: Sequence[int] = ()
) -> list[Example]:
    """Rows of at most `width` tokens (default: the longest example) of whole examples, as a list;
    examples that start with `header` share one copy of it per row."""
    if not examples:
        return []
    lengths = [len(x["input_ids"]) for x in examples]
    h = len(header)
    prefixes = [h if h and x["input_ids"][:h] == list(header) else 0 for x in examples]
    rows, headed = plan_rows(lengths, prefixes, width or max(lengths), header)
    return list(PackedRows(examples, rows, header, headed))


def block_causal_mask(segment_ids: torch.Tensor, attention_mask: torch.Tensor, dtype: torch.dtype):
    """(batch, 1, L, L) additive mask: a token sees the earlier tokens of its own segment and of the
    row's shared header (segment 0). Pad (attention_mask 0) sees only itself, so no row of the
    softmax is empty."""
    length = segment_ids.shape[-1]
    index = torch.arange(length, device=segment_ids.device)
    segment = torch.where(attention_mask == 0, -1 - index, segment_ids)  # each pad a segment of its own
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    allowed = ((segment[:, :, None] == segment[:, None, :]) | (segment[:, None, :] == 0)) & causal
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
