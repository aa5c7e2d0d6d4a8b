"""Prompt datasets: training examples ((prompt, target) pairs, or item-list windows for the
every_item objective) and (prompt, target) examples for each evaluation split, kept on disk as
Hugging Face Datasets (`save_examples`, `load_examples`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from datasets import Dataset, load_from_disk
from tqdm.auto import tqdm

from llmrec.data import SplitData
from llmrec.errors import InputError
from llmrec.prompts.template import PromptBuilder


def training_examples(split: SplitData, builder: PromptBuilder, max_per_user: int | None) -> pd.DataFrame:
    """Every prefix of each training sequence predicts its next item; the `max_per_user` most recent
    targets of each user are kept (recent behaviour matters most, and long users would dominate);
    None keeps every one. With times, a prompt's request time is its target's."""
    rows = []
    all_times = split.users["train_t"] if split.timed else [None] * len(split.users)
    for user, seq, times in tqdm(
        zip(split.users["user"], split.users["train"], all_times, strict=True),
        total=len(split.users),
        desc="training prompts",
    ):
        for t in range(max(1, len(seq) - (max_per_user or len(seq))), len(seq)):
            stamps, now = (None, None) if times is None else (times[:t], times[t])
            rows.append((user, builder.render(seq[:t], stamps, now), seq[t]))
    return pd.DataFrame.from_records(rows, columns=["user", "prompt", "target"])


def window_examples(split: SplitData, builder: PromptBuilder, max_per_user: int | None) -> pd.DataFrame:
    """every_item objective: each training sequence cut into windows, from the most recent back, in
    which every item after the first is a target that sees the items before it in the window. A
    window's last target sees exactly the history a prompt would show (`builder.shown`), so training
    contexts are never longer than inference ones; consecutive windows share one item, so each item
    but a user's first is a target once. The `max_per_user` most recent targets of a user are kept
    (None: all). With times (`split.timed`), a window also keeps its items' `times` and `before`,
    the time of the item before it (NaN for a user's first window), so `prompts.time` can be chosen
    when training."""
    rows = []
    all_times = split.users["train_t"] if split.timed else [None] * len(split.users)
    for user, seq, times in tqdm(
        zip(split.users["user"], split.users["train"], all_times, strict=True),
        total=len(split.users),
        desc="training windows",
    ):
        first, end = max(1, len(seq) - (max_per_user or len(seq))), len(seq)
        while end > first:
            start = max(first, end - max(1, builder.shown(seq[: end - 1])))
            row = (user, list(seq[start - 1 : end]))
            if times is not None:
                row += (list(times[start - 1 : end]), times[start - 2] if start >= 2 else float("nan"))
            rows.append(row)
            end = start
    columns = ["user", "items", "times", "before"] if split.timed else ["user", "items"]
    return pd.DataFrame.from_records(rows, columns=columns)


def eval_examples(split: SplitData, builder: PromptBuilder, which: str) -> pd.DataFrame:
    users = split.eval_users(which)
    rows = [
        (row["user"], builder.render(split.history(row, which)), row[which])
        for _, row in tqdm(users.iterrows(), total=len(users), desc=f"{which} prompts")
    ]
    return pd.DataFrame.from_records(rows, columns=["user", "prompt", "target"])


def save_examples(frame: pd.DataFrame, folder: Path) -> None:
    """One split's examples as a Hugging Face Dataset on disk (`datasets.load_from_disk(folder)` reads
    it back with no llmrec code): Arrow files, memory-mapped when read."""
    Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(folder))


def load_examples(prepared: Path, name: str) -> Dataset:
    """A prepared split's examples (`examples-<name>/`), or the Parquet table older prepared folders hold."""
    path = examples_path(prepared, name)
    if path is None:
        raise InputError(f"no examples-{name} here: run `llmrec prepare CONFIG` first", path=prepared)
    if path.is_dir():
        return load_from_disk(str(path))
    return Dataset.from_pandas(pd.read_parquet(path), preserve_index=False)


def examples_path(prepared: Path, name: str) -> Path | None:
    """Where a prepared split's examples are (a Dataset folder, or an older Parquet file); None if absent."""
    folder = Path(prepared) / f"examples-{name}"
    return next((p for p in (folder, folder.with_suffix(".parquet")) if p.exists()), None)
