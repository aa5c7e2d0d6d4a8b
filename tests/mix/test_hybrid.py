"""The hybrid (`generate.mix: hybrid`): SASRec-CE shortlists, the LLM scores, a mix weight
chosen on validation and stored in the run; honoured by train, evaluate, recommend and score."""

from __future__ import annotations

import json
import math
import sys

import pandas as pd
import pytest
from conftest import ATOMIC_PROMPTS as ATOMIC
from pydantic import ValidationError
from test_pipeline import runner, write_config

from llmrec.baselines.sasrec import SasrecRecommender
from llmrec.cli import _mix_option, app
from llmrec.config import GenerateConfig, mix_name
from llmrec.mix import HybridRecommender, mixed_scores
from llmrec.mix.hybrid import WEIGHTS
from llmrec.run_dir import RunDir

SASREC = {"sasrec": {"hidden": 16, "layers": 1, "heads": 1, "max_len": 12, "max_epochs": 3, "patience": 2}}


def test_mix_orders_by_sasrec_llm_or_both():
    rows = [[("a", -1.0, -3.0), ("b", -2.0, -1.0), ("c", -3.0, -2.0)]]
    assert [i for i, _ in mixed_scores(rows, 0.0, 3)[0]] == ["a", "b", "c"]  # SASRec alone
    assert [i for i, _ in mixed_scores(rows, math.inf, 3)[0]] == ["b", "c", "a"]  # the LLM alone
    assert mixed_scores(rows, 1.0, 2)[0] == [("b", -3.0), ("a", -4.0)]  # a: -4, b: -3, c: -5; top 2


def test_mix_config_trains_and_serves_the_hybrid(tmp_path, tiny_backbone):
    config = write_config(
        tmp_path,
        tiny_backbone,
        "atomic",
        ATOMIC | {"generate": {"mix": "hybrid", "shortlist": 12}, "baselines": SASREC},
        max_steps=4,
        eval_every=0,
    )
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    run = RunDir(tmp_path / "run")
    hybrid = json.loads((run.path / "mix" / "hybrid.json").read_text())
    assert hybrid["shortlist"] == 12 and float(hybrid["weight"]) in WEIGHTS
    assert set(hybrid["valid_ndcg@10_by_weight"]) == {str(w) for w in WEIGHTS} and hybrid["valid_users"] == 40
    assert (run.path / "mix" / "sasrec.pt").exists()

    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads(run.metrics("test").read_text())
    assert metrics["mix"] == {"model": "hybrid", "shortlist": 12, "weight": hybrid["weight"]}
    assert metrics["valid_rate"] == 1.0 and metrics["distinct_rate"] == 1.0
    lists = pd.read_parquet(run.path / "lists-test.parquet")
    assert len(lists) == metrics["users"] == 40 and all(len(items) == 10 for items in lists["items"])

    # --mix none on the same run: the LLM alone over the whole catalogue
    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test", "--mix", "none"])
    assert result.exit_code == 0, result.output
    assert json.loads(run.metrics("test").read_text())["mix"] == {"model": "none"}

    # every recommended item comes from SASRec's shortlist, and weight 0 is SASRec's own order
    rec = HybridRecommender.from_run(run.path)
    sasrec = SasrecRecommender(run.load_split(), run.load_config().baselines.sasrec)
    sasrec.load(run.path / "mix" / "sasrec.pt")
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


def test_mix_flag_fits_one_for_a_run_without(tmp_path, tiny_backbone):
    config = write_config(tmp_path, tiny_backbone, "atomic", ATOMIC | {"baselines": SASREC},
                          max_steps=2, eval_every=0)  # fmt: skip
    for args in (["prepare", config], ["train", config]):
        assert runner.invoke(app, args).exit_code == 0
    run = RunDir(tmp_path / "run")
    # mix auto with no SASRec-CE available: no hybrid compared (the content mix is: items have text)
    choice = json.loads((run.path / "mix" / "choice.json").read_text())
    assert choice["chosen"] in ("llm", "content") and set(choice["valid_ndcg@10"]) == {"llm", "content"}
    assert not (run.path / "mix" / "hybrid.json").exists()
    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "valid", "--mix", "hybrid"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert (run.path / "mix" / "hybrid.json").exists()
    assert json.loads(run.metrics("valid").read_text())["mix"]["model"] == "hybrid"
    result = runner.invoke(app, ["evaluate", str(run.path), "--mix", "bm25"])
    assert result.exit_code == 2 and "mix" in result.output


def test_the_old_names_of_the_mixes_still_work_and_say_so(tmp_path, monkeypatch, capsys):
    """`generate.retriever` (sasrec) is now `generate.mix` (hybrid), `retriever_weights` is
    `sasrec_weights`, `--retriever` is `--mix`, and a run's `retriever/` folder is read as `mix/`."""
    with pytest.warns(FutureWarning, match="generate.retriever is now generate.mix"):
        cfg = GenerateConfig.model_validate({"retriever": "sasrec", "retriever_weights": "b/sasrec/model.pt"})
    assert (cfg.mix, cfg.sasrec_weights) == ("hybrid", "b/sasrec/model.pt")
    with pytest.raises(ValidationError, match="old name of `mix`"):
        GenerateConfig.model_validate({"retriever": "content", "mix": "content"})
    with pytest.warns(FutureWarning, match="now called `hybrid`"):
        assert mix_name(None, retriever="sasrec") == "hybrid"
    old = tmp_path / "old-run"
    (old / "retriever").mkdir(parents=True)
    assert RunDir(old).mix_dir == old / "retriever"
    assert RunDir(tmp_path / "new-run").mix_dir == tmp_path / "new-run" / "mix"
    monkeypatch.setattr(sys, "argv", ["llmrec", "evaluate", "RUN", "--retriever", "sasrec"])
    with pytest.warns(FutureWarning):
        assert _mix_option("sasrec") == "hybrid"
    assert "--retriever is now --mix" in capsys.readouterr().err


def test_fit_hybrid_scores_the_shortlist_it_is_asked_for(tmp_path, tiny_backbone, monkeypatch):
    from llmrec.mix import fit_hybrid

    config = write_config(tmp_path, tiny_backbone, "atomic", ATOMIC | {"baselines": SASREC},
                          max_steps=2, eval_every=0)  # fmt: skip
    for args in (["prepare", config], ["train", config]):
        assert runner.invoke(app, args).exit_code == 0
    asked, score = [], HybridRecommender.score_shortlists

    def recording(self, histories, n, *args, **kwargs):
        asked.append(n)
        return score(self, histories, n, *args, **kwargs)

    monkeypatch.setattr(HybridRecommender, "score_shortlists", recording)
    fitted = fit_hybrid(tmp_path / "run", shortlist=7, log=lambda _: None)
    assert asked == [7]  # the validation sweep ranks the shortlist it was asked for
    assert fitted["shortlist"] == 7  # the config's generate.shortlist is 50
    rec = HybridRecommender.from_run(tmp_path / "run")
    assert rec.shortlist == 7 and len(rec.score_shortlists([["m1", "m2"]], 7, True)[0]) == 7


def test_auto_mix_is_chosen_on_validation_and_honoured_everywhere(tmp_path, tiny_backbone):
    """With a SASRec-CE from `llmrec baseline`, `train` ranks the LLM alone and the hybrid on the same
    validation users and stores the better; evaluate, recommend, score and serve then use it unless
    --mix says otherwise."""
    from llmrec.generate import Recommender
    from llmrec.serve.app import Engine

    config = write_config(tmp_path, tiny_backbone, "atomic", ATOMIC | {"baselines": SASREC},
                          max_steps=2, eval_every=0)  # fmt: skip
    for args in (["prepare", config], ["baseline", config, "--model", "sasrec"], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    run = RunDir(tmp_path / "run")
    choice_file = run.path / "mix" / "choice.json"
    choice = json.loads(choice_file.read_text())
    assert choice["chosen"] in ("llm", "hybrid", "content") and choice["valid_users"] == 8  # train.eval_users
    best = max(choice["valid_ndcg@10"], key=lambda k: (choice["valid_ndcg@10"][k], k == "llm"))
    assert choice["chosen"] == best and choice["sasrec_weights"].endswith("baselines/sasrec/model.pt")
    assert json.loads((run.path / "mix" / "hybrid.json").read_text())["valid_users"] == 8
    # the content mix was offered the same SASRec-CE as a third term
    mix = json.loads((run.path / "mix" / "content_mix.json").read_text())
    assert mix["sasrec_weights"] == choice["sasrec_weights"] and "sasrec_weight" in mix
    # train passes its best validation NDCG@10 as the LLM-alone side: what ranking those users again gives
    from llmrec.mix import choose_mix

    again = choose_mix(run.path, log=lambda _: None)
    assert again["valid_ndcg@10"]["llm"] == pytest.approx(choice["valid_ndcg@10"]["llm"], abs=1e-6)

    history = ["m1", "m2", "m3", "m4"]
    expected = {
        "llm": [r.item for r in Recommender.from_run(run.path).recommend([history], k=5)[0]],
        "hybrid": [r.item for r in HybridRecommender.from_run(run.path).recommend([history], k=5)[0]],
    }
    assert expected["llm"] != expected["hybrid"]  # else this test could not tell them apart
    for chosen, model in (("hybrid", "hybrid"), ("llm", "none")):
        choice_file.write_text(json.dumps(choice | {"chosen": chosen}))
        result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test"])
        assert result.exit_code == 0, result.output
        metrics = json.loads(run.metrics("test").read_text())
        assert metrics["mix"]["model"] == model
        assert metrics["mix"]["chosen_on_validation"]["chosen"] == chosen
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
    # the run chose the LLM alone: --mix hybrid still gives the hybrid
    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test", "--mix", "hybrid"])
    assert result.exit_code == 0
    assert json.loads(run.metrics("test").read_text())["mix"]["model"] == "hybrid"
