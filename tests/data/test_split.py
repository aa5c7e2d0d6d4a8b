"""Leave-one-out rules: ordering, ties, repeats, short users."""

from __future__ import annotations

import pandas as pd
from helpers import catalog

from llmrec.data import leave_one_out, newest_items


def test_time_order_ties_in_file_order_and_short_users():
    split = leave_one_out(
        catalog([("a", "x", 5), ("a", "y", 1), ("a", "z", 5), ("a", "w", 9), ("b", "x", 1), ("b", "y", 2)])
    )
    a = split.users.set_index("user").loc["a"]
    assert (a["train"], a["valid"], a["test"]) == (["y", "x"], "z", "w")  # x before z: file order
    b = split.users.set_index("user").loc["b"]
    assert b["train"] == ["x", "y"] and pd.isna(b["valid"]) and pd.isna(b["test"])
    assert split.history(a, "test") == ["y", "x", "z"] and split.history(a, "valid") == ["y", "x"]
    assert split.eval_users("test")["user"].tolist() == ["a"]


def test_repeats_kept_or_deduplicated():
    rows = [("a", "x", 1), ("a", "y", 2), ("a", "x", 3), ("a", "z", 4), ("a", "w", 5)]
    assert leave_one_out(catalog(rows)).users.iloc[0]["train"] == ["x", "y", "x"]
    deduped = leave_one_out(catalog(rows), dedupe=True).users.iloc[0]
    assert (deduped["train"], deduped["valid"], deduped["test"]) == (["x", "y"], "z", "w")


def test_saved_and_loaded(tmp_path):
    split = leave_one_out(catalog([("a", "x", 1), ("a", "y", 2), ("a", "z", 3)]))
    split.save(tmp_path)
    again = type(split).load(tmp_path)
    assert again.users.iloc[0]["train"] == ["x"] and again.users.iloc[0]["test"] == "z"


def test_newest_training_items_by_first_place_or_first_time():
    rows = [("a", "p", 1), ("a", "q", 2), ("a", "r", 3), ("a", "v", 8), ("a", "t", 9),
            ("b", "s", 1), ("b", "r", 2), ("b", "u", 3), ("b", "v", 7), ("b", "t", 8)]  # fmt: skip
    ordered = leave_one_out(catalog(rows))  # an order only: the first place in any training sequence
    first = ordered.training_interactions().groupby("item")["timestamp"].min().to_dict()
    assert first == {"p": 0, "q": 1, "r": 1, "s": 0, "u": 2}  # r: 2nd for b before 3rd for a
    assert newest_items(ordered.training_interactions(), 0.4) == ["u", "r"]  # r before q: later mean
    timed = catalog(rows)
    timed.seconds_per_unit = 60.0
    by_time = leave_one_out(timed).training_interactions()
    assert by_time.groupby("item")["timestamp"].min().to_dict() == {"p": 60, "q": 120, "r": 120, "s": 60,
                                                                   "u": 180}  # fmt: skip
    assert newest_items(by_time, 0.2) == ["u"] and newest_items(by_time, 0) == []
