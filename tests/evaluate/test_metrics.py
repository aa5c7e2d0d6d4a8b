"""Full-ranking metrics and the popularity baseline, on hand-computed cases."""

from __future__ import annotations

import math

import pytest
from helpers import catalog

from llmrec.baselines import Popularity
from llmrec.data import leave_one_out
from llmrec.evaluate import ranking_metrics
from llmrec.evaluate.metrics import by_history_length, paired_bootstrap, user_ndcg


def test_ranking_metrics_hand_computed():
    m = ranking_metrics(["a", "b", "c"], [["a", "x"], ["x", "y", "b"], ["x"]], {"a", "b", "c", "x", "y"})
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["hr@5"] == pytest.approx(2 / 3) and m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(4)) / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 3) / 3)
    assert m["valid_rate"] == 1.0 and m["distinct_rate"] == 1.0 and m["users"] == 3


def test_user_ndcg_is_one_users_share_of_the_mean():
    lists = [["a", "b"], ["c", "d", "e"], ["x"] * 10 + ["f"]]
    targets = ["b", "e", "f"]
    assert user_ndcg("b", lists[0]) == pytest.approx(1 / math.log2(3))
    assert user_ndcg("f", lists[2]) == 0.0  # 11th place is outside the top 10
    mean = sum(user_ndcg(t, items) for t, items in zip(targets, lists, strict=True)) / 3
    assert ranking_metrics(targets, lists, set("abcdefx"))["ndcg@10"] == pytest.approx(mean)


def test_metrics_by_history_length_split_users_into_buckets():
    targets = ["a", "b", "c", "d"]
    lists = [["a"], ["x"], ["c"], ["x", "d"]]
    buckets = by_history_length(targets, lists, set("abcdx"), lengths=[1, 2, 4, 30])
    assert list(buckets) == ["1-2", "3-5", "21+"]  # empty buckets are left out
    assert buckets["1-2"]["users"] == 2 and buckets["1-2"]["hr@10"] == 0.5
    assert buckets["3-5"]["ndcg@10"] == 1.0
    assert buckets["21+"]["ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_paired_bootstrap_sees_a_real_gain_and_no_gain():
    gain = paired_bootstrap([0.1] * 50 + [0.0] * 50)
    assert gain["mean"] == 0.05 and gain["p"] < 0.01 and gain["bootstrap_95"][0] > 0
    assert gain["users_better"] == 50 and gain["users_worse"] == 0 and gain["users"] == 100
    noise = paired_bootstrap([0.1, -0.1] * 50)
    assert noise["p"] > 0.5 and noise["bootstrap_95"][0] < 0 < noise["bootstrap_95"][1]
    assert paired_bootstrap([0.0] * 10)["p"] == 1.0


def test_valid_and_distinct_rates_detect_bad_lists():
    m = ranking_metrics(["a"], [["a", "a", "ghost", "b"]], {"a", "b"})
    assert m["valid_rate"] == 0.75 and m["distinct_rate"] == 0.75


def test_popularity_excludes_history():
    split = leave_one_out(
        catalog(
            [
                ("u", "x", 1),
                ("u", "y", 2),
                ("u", "z", 3),
                ("u", "w", 4),
                ("v", "x", 1),
                ("v", "q", 2),
                ("v", "r", 3),
            ]
        )
    )
    pop = Popularity(split)
    assert pop.ranking[0] == "x"
    assert pop.recommend(["x"], 2)[0] != "x"
    assert pop.recommend(["x"], 2, exclude_history=False)[0] == "x"
    assert len(pop.ranking) == len(split.items)
