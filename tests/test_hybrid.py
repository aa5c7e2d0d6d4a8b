"""The hybrid (`generate.retriever: sasrec`): SASRec-CE shortlists, the LLM scores, a mix weight
chosen on validation and stored in the run; honoured by train, evaluate, recommend and score."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from conftest import ATOMIC_PROMPTS as ATOMIC
from test_pipeline import runner, write_config

from llmrec.baselines.sasrec import SasrecRecommender
from llmrec.cli import app
from llmrec.hybrid import HybridRecommender, mix
from llmrec.hybrid.shortlist import WEIGHTS
from llmrec.train.run_dir import RunDir

SASREC = {"sasrec": {"hidden": 16, "layers": 1, "heads": 1, "max_len": 12, "max_epochs": 3, "patience": 2}}


def test_mix_orders_by_sasrec_llm_or_both():
    rows = [[("a", -1.0, -3.0), ("b", -2.0, -1.0), ("c", -3.0, -2.0)]]
    assert [i for i, _ in mix(rows, 0.0, 3)[0]] == ["a", "b", "c"]  # SASRec alone
    assert [i for i, _ in mix(rows, math.inf, 3)[0]] == ["b", "c", "a"]  # the LLM alone
    assert mix(rows, 1.0, 2)[0] == [("b", -3.0), ("a", -4.0)]  # a: -4, b: -3, c: -5; top 2


def test_retriever_config_trains_and_serves_the_hybrid(tmp_path, tiny_backbone):
    config = write_config(
        tmp_path,
        tiny_backbone,
        "atomic",
        ATOMIC | {"generate": {"retriever": "sasrec", "shortlist": 12}, "baselines": SASREC},
        max_steps=4,
        eval_every=0,
    )
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    run = RunDir(tmp_path / "run")
    hybrid = json.loads((run.path / "retriever" / "hybrid.json").read_text())
    assert hybrid["shortlist"] == 12 and float(hybrid["weight"]) in WEIGHTS
    assert set(hybrid["valid_ndcg@10_by_weight"]) == {str(w) for w in WEIGHTS} and hybrid["valid_users"] == 40
    assert (run.path / "retriever" / "sasrec.pt").exists()

    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads(run.metrics("test").read_text())
    assert metrics["retriever"] == {"model": "sasrec", "shortlist": 12, "weight": hybrid["weight"]}
    assert metrics["valid_rate"] == 1.0 and metrics["distinct_rate"] == 1.0
    lists = pd.read_parquet(run.path / "lists-test.parquet")
    assert len(lists) == metrics["users"] == 40 and all(len(items) == 10 for items in lists["items"])

    # --retriever none on the same run: the LLM alone over the whole catalogue
    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test", "--retriever", "none"])
    assert result.exit_code == 0, result.output
    assert json.loads(run.metrics("test").read_text())["retriever"] == {"model": "none"}

    # every recommended item comes from SASRec's shortlist, and weight 0 is SASRec's own order
    rec = HybridRecommender.from_run(run.path)
    sasrec = SasrecRecommender(run.load_split(), run.load_config().baselines.sasrec)
    sasrec.load(run.path / "retriever" / "sasrec.pt")
    history = [["m1", "m2", "m3"]]
    shortlist = set(sasrec.recommend(history, 12)[0])
    assert {r.item for r in rec.recommend(history, k=5)[0]} <= shortlist
    rec.weight = 0.0
    assert [r.item for r in rec.recommend(history, k=5)[0]] == sasrec.recommend(history, 5)[0]

    result = runner.invoke(app, ["recommend", str(run.path), "--history", "m1,m2,m3", "-k", "5", "--json"])
    assert result.exit_code == 0, result.output
    items = [json.loads(line)["item"] for line in result.stdout.splitlines()]
    assert len(set(items)) == 5 and set(items) <= shortlist

    out = tmp_path / "recs.parquet"
    result = runner.invoke(app, ["score", str(run.path), "--split", "test", "--out", str(out), "-k", "3"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) == 40 * 3


def test_retriever_flag_fits_one_for_a_run_without(tmp_path, tiny_backbone):
    config = write_config(tmp_path, tiny_backbone, "atomic", ATOMIC | {"baselines": SASREC},
                          max_steps=2, eval_every=0)  # fmt: skip
    for args in (["prepare", config], ["train", config]):
        assert runner.invoke(app, args).exit_code == 0
    run = RunDir(tmp_path / "run")
    # retriever auto with no SASRec-CE available: no hybrid compared (the content mix is: items have text)
    choice = json.loads((run.path / "retriever" / "choice.json").read_text())
    assert choice["chosen"] in ("llm", "content") and set(choice["valid_ndcg@10"]) == {"llm", "content"}
    assert not (run.path / "retriever" / "hybrid.json").exists()
    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "valid", "--retriever", "sasrec"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert (run.path / "retriever" / "hybrid.json").exists()
    assert json.loads(run.metrics("valid").read_text())["retriever"]["model"] == "sasrec"
    result = runner.invoke(app, ["evaluate", str(run.path), "--retriever", "bm25"])
    assert result.exit_code == 2 and "retriever" in result.output


def test_fit_retriever_scores_the_shortlist_it_is_asked_for(tmp_path, tiny_backbone, monkeypatch):
    from llmrec.hybrid import fit_retriever

    config = write_config(tmp_path, tiny_backbone, "atomic", ATOMIC | {"baselines": SASREC},
                          max_steps=2, eval_every=0)  # fmt: skip
    for args in (["prepare", config], ["train", config]):
        assert runner.invoke(app, args).exit_code == 0
    asked, score = [], HybridRecommender.score_shortlists

    def recording(self, histories, n, *args, **kwargs):
        asked.append(n)
        return score(self, histories, n, *args, **kwargs)

    monkeypatch.setattr(HybridRecommender, "score_shortlists", recording)
    fitted = fit_retriever(tmp_path / "run", shortlist=7, log=lambda _: None)
    assert asked == [7]  # the validation sweep ranks the shortlist it was asked for
    assert fitted["shortlist"] == 7  # the config's generate.shortlist is 50
    rec = HybridRecommender.from_run(tmp_path / "run")
    assert rec.shortlist == 7 and len(rec.score_shortlists([["m1", "m2"]], 7, True)[0]) == 7


def test_auto_retriever_is_chosen_on_validation_and_honoured_everywhere(tmp_path, tiny_backbone):
    """With a SASRec-CE from `llmrec baseline`, `train` ranks the LLM alone and the hybrid on the same
    validation users and stores the better; evaluate, recommend, score and serve then use it unless
    --retriever says otherwise."""
    from llmrec.generate import Recommender
    from llmrec.serve.app import Engine

    config = write_config(tmp_path, tiny_backbone, "atomic", ATOMIC | {"baselines": SASREC},
                          max_steps=2, eval_every=0)  # fmt: skip
    for args in (["prepare", config], ["baseline", config, "--model", "sasrec"], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    run = RunDir(tmp_path / "run")
    choice_file = run.path / "retriever" / "choice.json"
    choice = json.loads(choice_file.read_text())
    assert choice["chosen"] in ("llm", "hybrid", "content") and choice["valid_users"] == 8  # train.eval_users
    best = max(choice["valid_ndcg@10"], key=lambda k: (choice["valid_ndcg@10"][k], k == "llm"))
    assert choice["chosen"] == best and choice["retriever_weights"].endswith("baselines/sasrec/model.pt")
    assert json.loads((run.path / "retriever" / "hybrid.json").read_text())["valid_users"] == 8
    # the content mix was offered the same SASRec-CE as a third term
    mix = json.loads((run.path / "retriever" / "content_mix.json").read_text())
    assert mix["sasrec_weights"] == choice["retriever_weights"] and "sasrec_weight" in mix
    # train passes its best validation NDCG@10 as the LLM-alone side: what ranking those users again gives
    from llmrec.hybrid import choose_retriever

    again = choose_retriever(run.path, log=lambda _: None)
    assert again["valid_ndcg@10"]["llm"] == pytest.approx(choice["valid_ndcg@10"]["llm"], abs=1e-6)

    history = ["m1", "m2", "m3", "m4"]
    expected = {
        "llm": [r.item for r in Recommender.from_run(run.path).recommend([history], k=5)[0]],
        "hybrid": [r.item for r in HybridRecommender.from_run(run.path).recommend([history], k=5)[0]],
    }
    assert expected["llm"] != expected["hybrid"]  # else this test could not tell them apart
    for chosen, model in (("hybrid", "sasrec"), ("llm", "none")):
        choice_file.write_text(json.dumps(choice | {"chosen": chosen}))
        result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test"])
        assert result.exit_code == 0, result.output
        metrics = json.loads(run.metrics("test").read_text())
        assert metrics["retriever"]["model"] == model
        assert metrics["retriever"]["chosen_on_validation"]["chosen"] == chosen
        lists = pd.read_parquet(run.path / "lists-test.parquet")
        result = runner.invoke(app, ["recommend", str(run.path), "--history", ",".join(history), "-k", "5",
                                     "--json"])  # fmt: skip
        assert [json.loads(line)["item"] for line in result.stdout.splitlines()] == expected[chosen]
        out = tmp_path / f"recs-{chosen}.parquet"
        result = runner.invoke(app, ["score", str(run.path), "--split", "test", "--out", str(out)])
        assert result.exit_code == 0, result.output
        scored = pd.read_parquet(out).sort_values(["user", "rank"]).groupby("user")["item"].apply(list)
        assert all(scored[u] == list(items) for u, items in zip(lists["user"], lists["items"], strict=True))
        engine = Engine(run.path, None, None)
        assert isinstance(engine.rec, HybridRecommender) == (chosen == "hybrid")
    # the run chose the LLM alone: --retriever sasrec still gives the hybrid
    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test", "--retriever", "sasrec"])
    assert result.exit_code == 0
    assert json.loads(run.metrics("test").read_text())["retriever"]["model"] == "sasrec"
