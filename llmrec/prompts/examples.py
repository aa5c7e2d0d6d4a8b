"""Prompt datasets: (prompt, target) examples for training and for each evaluation split."""

from __future__ import annotations

import pandas as pd
from tqdm.auto import tqdm

from llmrec.data import SplitData
from llmrec.prompts.template import PromptBuilder


def training_examples(split: SplitData, builder: PromptBuilder, max_per_user: int) -> pd.DataFrame:
    """Every prefix of each training sequence predicts its next item; the `max_per_user` most recent
    targets of each user are kept (recent behaviour matters most, and long users would dominate)."""
    rows = []
    for user, seq in tqdm(
        zip(split.users["user"], split.users["train"], strict=True),
        total=len(split.users),
        desc="training prompts",
    ):
        for t in range(max(1, len(seq) - max_per_user), len(seq)):
            rows.append((user, builder.render(seq[:t]), seq[t]))
    return pd.DataFrame.from_records(rows, columns=["user", "prompt", "target"])


def eval_examples(split: SplitData, builder: PromptBuilder, which: str) -> pd.DataFrame:
    users = split.eval_users(which)
    rows = [
        (row["user"], builder.render(split.history(row, which)), row[which])
        for _, row in tqdm(users.iterrows(), total=len(users), desc=f"{which} prompts")
    ]
    return pd.DataFrame.from_records(rows, columns=["user", "prompt", "target"])
