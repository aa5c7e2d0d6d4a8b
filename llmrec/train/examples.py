"""Training examples as token ids, in a memory-mapped Hugging Face Dataset.

`encode_training` turns a prepared table (item-list windows, or prompt/target pairs) into
`input_ids`, `labels`, `length` and `prefix` (how many leading tokens are the item list's header,
which packed rows share: `packing.plan_rows`) columns (and `gaps`, each token's time-gap code, with
`prompts.time: gaps` on windows with times) with a batched `Dataset.map` that writes its result to
an Arrow file in the run folder, so the encoded examples of a large log live on disk, not in Python
lists; the loop reads rows as it needs them (`packing.PackedRows`). Alignment examples join as a
second table of the same columns.
"""

from __future__ import annotations

import math
from pathlib import Path

from datasets import Dataset, Features, Sequence, Value, concatenate_datasets
from transformers import PreTrainedTokenizerBase

from llmrec.ids import ItemIds, id_token_ids
from llmrec.prompts import PromptBuilder
from llmrec.train.loop import encode_examples

FEATURES = Features(
    {
        "input_ids": Sequence(Value("int32")),
        "labels": Sequence(Value("int32")),
        "length": Value("int32"),
        "prefix": Value("int32"),
    }  # fmt: skip
)
TIMED_FEATURES = Features({**FEATURES, "gaps": Sequence(Value("int32"))})


def timed_windows(table: Dataset, builder: PromptBuilder) -> bool:
    """Whether the windows of `table` are encoded with time-gap codes (the option is on and the
    prepared windows kept their times)."""
    return builder.timed and "times" in table.column_names


def encode_training(
    table: Dataset,
    builder: PromptBuilder,
    tokenizer: PreTrainedTokenizerBase,
    ids: ItemIds,
    cache_file: Path,
    align_to: int = 1,
) -> Dataset:
    """The encoded examples (every_item windows when the table has `items`, else prompt -> target)."""

    timed = timed_windows(table, builder)

    def encode(batch: dict) -> dict:
        if timed:
            triples = [
                builder.encode_window(list(w), list(t), None if b is None or math.isnan(b) else b)
                for w, t, b in zip(batch["items"], batch["times"], batch["before"], strict=True)
            ]
            out = {"input_ids": [x[0] for x in triples], "labels": [x[1] for x in triples],
                   "gaps": [x[2] for x in triples]}  # fmt: skip
        elif "items" in batch:
            pairs = [builder.encode_window(list(w)) for w in batch["items"]]
            out = {"input_ids": [p[0] for p in pairs], "labels": [p[1] for p in pairs]}
        else:
            targets = id_token_ids(tokenizer, [ids.id_of(t) for t in batch["target"]])
            encoded = encode_examples(tokenizer, batch["prompt"], targets, align_to)
            out = {"input_ids": [x["input_ids"] for x in encoded], "labels": [x["labels"] for x in encoded]}
        # an item list's window starts with the header unless it was left-filled (prompts.align_to > 1)
        header = builder.header_ids if "items" in batch else None
        prefix = [len(header) if header and x[: len(header)] == header else 0 for x in out["input_ids"]]
        return out | {"length": [len(x) for x in out["input_ids"]], "prefix": prefix}

    cache_file.unlink(missing_ok=True)  # encoded for this run's settings, never another's
    return table.map(
        encode, batched=True, batch_size=1000, remove_columns=table.column_names,
        features=TIMED_FEATURES if timed else FEATURES,
        cache_file_name=str(cache_file), load_from_cache_file=False, desc="encoding training examples",
    )  # fmt: skip


def with_examples(encoded: Dataset, extra: list[dict]) -> Dataset:
    """`encoded` followed by in-memory examples (alignment tasks) of the same columns."""
    if not extra:
        return encoded
    if "gaps" in encoded.column_names:  # alignment examples carry no times
        extra = [x | {"gaps": [0] * len(x["input_ids"])} for x in extra]
    extra = [x | {"length": len(x["input_ids"]), "prefix": 0} for x in extra]
    rows = Dataset.from_list(extra, features=encoded.features)
    return concatenate_datasets([encoded, rows])
