"""The content baseline (item-text similarity to the recent history), on hand-made vectors and
through `llmrec baseline --model content`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_pipeline import runner, write_config

from llmrec.baselines import ContentRecommender
from llmrec.cli import app
from llmrec.data import SplitData
from llmrec.errors import InputError


def toy_split(titles: list[str], valid: list[str]) -> SplitData:
    items = pd.DataFrame({"item": [f"i{n}" for n in range(len(titles))], "title": titles, "text": ""})
    users = pd.DataFrame({"user": ["u0", "u1"], "train": [["i0", "i2"], ["i4", "i1"]], "valid": valid,
                          "test": [None, None]})  # fmt: skip
    return SplitData(items=items, users=users)


# two directions in the plane (and an offset every item shares, which centring removes)
VECTORS = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.95, 0.05], [0.5, 0.5]]) + [5, 5]


def test_content_ranks_by_similarity_to_the_latest_items_and_fits_the_profile():
    split = toy_split(["a", "b", "c", "d", "e", ""], ["i3", "i0"])
    content = ContentRecommender(split, VECTORS, profile=1)
    # u0's latest item is i2 (the second direction): i3 is nearest, then the first direction's items
    assert content.recommend([["i0", "i2"]], k=3) == [["i3", "i1", "i4"]]
    assert content.recommend([["i0", "i2"]], k=6)[0][-1] == "i5"  # no text: ranked after every item with text
    assert "i2" not in content.recommend([["i0", "i2"]], k=6)[0]  # history excluded
    # profile of both items: the mean direction; the fit picks the profile length that ranks validation
    # targets best (u0's i3 needs the latest item only; u1's i0 too)
    summary = content.fit(split, log=lambda _: None)
    assert summary["profile"] == 1 and content.profile == 1
    assert set(summary["valid_ndcg@10_by_profile"]) == {"1", "2", "3", "5", "10", "all"}


def test_content_needs_item_text():
    with pytest.raises(InputError, match="needs item text"):
        ContentRecommender(toy_split([""] * 6, ["i3", "i0"]), VECTORS)


def test_llmrec_baseline_content_writes_metrics_beside_the_others(tmp_path, tiny_backbone):
    config = write_config(tmp_path, tiny_backbone, "atomic")
    result = runner.invoke(app, ["baseline", config, "--model", "content"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads((tmp_path / "baselines" / "content" / "metrics-test.json").read_text())
    assert metrics["model"] == "content" and metrics["users"] == 40 and metrics["valid_rate"] == 1.0
    assert metrics["train"]["profile"] in (1, 2, 3, 5, 10, "all")
    lists = pd.read_parquet(tmp_path / "baselines" / "content" / "lists-test.parquet")
    assert len(lists) == 40 and all(len(items) == 10 for items in lists["items"])
