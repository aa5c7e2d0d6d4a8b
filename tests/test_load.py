"""One way to load a run (`llmrec.load`), and `train` building what the default needs: a config with
only its data section trains SASRec-CE for the validation choice, and every entry point (Python,
CLI, server, plain and Ray scoring) serves the choice."""

from __future__ import annotations

import json
import os

import httpx
import pandas as pd
import pytest
import yaml
from conftest import write_synthetic_csvs
from helpers import Server
from test_pipeline import runner

import llmrec
from llmrec.cli import app
from llmrec.generate import Recommender
from llmrec.mix import ContentMixRecommender, HybridRecommender
from llmrec.mix.hybrid import MIX_BY_CHOICE
from llmrec.run_dir import RunDir


def data_only_config(folder, backbone) -> str:
    """The data section, and only what a test must add to it: the tiny model and a tiny budget."""
    inter, items = write_synthetic_csvs(folder)
    cfg = {
        "data": {
            "format": "generic",
            "interactions": inter.name,
            "items": items.name,
            "columns": {"user": "uid", "item": "iid", "timestamp": "ts", "title": "name", "text": ["genre"]},
        },
        "model": {"name": str(backbone), "dtype": "fp32"},
        "train": {"max_steps": 4, "batch_size": 4, "eval_every": 0, "eval_users": 8},
        "generate": {"sasrec_min_minutes": 0.01},  # the floor a test can afford: 0.6 s
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, tiny_backbone):
    folder = tmp_path_factory.mktemp("default-run")
    config = data_only_config(folder, tiny_backbone)
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    return folder, config


def test_train_trains_sasrec_and_chooses_among_the_llm_the_hybrid_and_the_mix(default_run):
    folder, config = default_run
    run = RunDir(folder / "runs" / "default")
    sasrec = folder / "baselines" / "sasrec"
    # the same files as `llmrec baseline --model sasrec`, in baselines_dir
    for name in ("model.pt", "split.json", "config.yaml", "metrics-valid.json", "metrics-test.json"):
        assert (sasrec / name).is_file(), name
    choice = json.loads((run.path / "mix" / "choice.json").read_text())
    assert set(choice["valid_ndcg@10"]) == {"llm", "hybrid", "content"}
    best = max(choice["valid_ndcg@10"], key=lambda k: (choice["valid_ndcg@10"][k], k == "llm"))
    assert choice["chosen"] == best
    # capped at generate.sasrec_time_share (0.25) of the LLM's training time, never below
    # generate.sasrec_min_minutes; it stops itself in time
    llm_s = json.loads(run.summary.read_text())["train_wall_s"]
    trained = choice["sasrec"]
    assert trained["trained"] == str(sasrec / "model.pt")
    assert trained["cap_s"] == pytest.approx(max(0.25 * llm_s, 0.6), abs=0.03)  # both rounded
    assert trained["train_wall_s"] <= trained["cap_s"] + 1.0 or trained["epochs_run"] == 1
    capped = yaml.safe_load((sasrec / "config.yaml").read_text())["baselines"]["sasrec"]["max_minutes"]
    assert capped * 60 == pytest.approx(trained["cap_s"], abs=0.01)

    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads(run.metrics("test").read_text())
    assert metrics["mix"]["model"] == MIX_BY_CHOICE[choice["chosen"]]
    assert metrics["mix"]["chosen_on_validation"]["chosen"] == choice["chosen"]
    expected = {"popularity", "sasrec"} | ({"llm_alone"} if choice["chosen"] != "llm" else set())
    assert set(metrics["baselines"]) == expected
    # SASRec-CE's row is the baseline's own test metrics: the same weights on the same users
    own = json.loads((sasrec / "metrics-test.json").read_text())
    assert metrics["baselines"]["sasrec"]["ndcg@10"] == pytest.approx(own["ndcg@10"])
    if "llm_alone" in metrics["baselines"]:
        runner.invoke(app, ["evaluate", str(run.path), "--split", "test", "--mix", "none"])
        alone = json.loads(run.metrics("test").read_text())
        assert metrics["baselines"]["llm_alone"]["ndcg@10"] == pytest.approx(alone["ndcg@10"])


def test_train_again_reuses_sasrec_trained_on_the_same_split_and_replaces_one_from_other_data(default_run):
    folder, config = default_run
    run = RunDir(folder / "runs" / "default")
    stamp = folder / "baselines" / "sasrec" / "split.json"
    assert runner.invoke(app, ["train", config]).exit_code == 0  # resumes a finished run: the choice again
    choice = json.loads((run.path / "mix" / "choice.json").read_text())
    assert choice["sasrec"] == {"reused": str(folder / "baselines" / "sasrec" / "model.pt")}
    fingerprint = json.loads(stamp.read_text())["fingerprint"]

    stamp.write_text(json.dumps({"fingerprint": "another-split"}))  # weights from other data
    assert runner.invoke(app, ["train", config]).exit_code == 0
    assert "trained" in json.loads((run.path / "mix" / "choice.json").read_text())["sasrec"]
    assert json.loads(stamp.read_text())["fingerprint"] == fingerprint

    stamp.unlink()  # weights from before the stamp: reused when they load for this catalogue
    assert runner.invoke(app, ["train", config]).exit_code == 0
    assert "reused" in json.loads((run.path / "mix" / "choice.json").read_text())["sasrec"]


def top_k_by_user(rows: pd.DataFrame, users: list[str]) -> dict[str, list[str]]:
    ranked = rows.sort_values(["user", "rank"]).groupby("user")["item"].apply(list)
    return {u: ranked[u] for u in users}


@pytest.mark.process
def test_every_entry_point_serves_the_runs_choice(default_run, tmp_path):
    """llmrec.load, `recommend --json`, the server, `score` and the Ray pipeline give the same top-K
    for the same users, and that top-K is the chosen mix's, not the LLM alone's."""
    folder, _ = default_run
    run = RunDir(folder / "runs" / "default")
    chosen = json.loads((run.path / "mix" / "choice.json").read_text())["chosen"]
    assert chosen != "llm", "the tiny run must choose a mix for this test to tell the paths apart"
    rec = llmrec.load(run.path)
    assert isinstance(rec, {"hybrid": HybridRecommender, "content": ContentMixRecommender}[chosen])

    split = run.load_split()
    users = split.eval_users("test")["user"].tolist()[:6]
    known = {row["user"]: row for _, row in split.users.iterrows()}
    histories = {u: split.full_history(known[u]) for u in users}  # what `score --users` and `--user` read
    k = 5
    lists = rec.recommend([histories[u] for u in users], k=k)
    expected = {u: [r.item for r in row] for u, row in zip(users, lists, strict=True)}
    alone = Recommender.from_run(run.path).recommend([histories[u] for u in users], k=k)
    assert [[r.item for r in row] for row in alone] != list(expected.values())  # the paths can be told apart

    for user in users[:3]:
        cli = runner.invoke(app, ["recommend", str(run.path), "--user", user, "-k", str(k), "--json"])
        assert cli.exit_code == 0, cli.output
        assert [json.loads(line)["item"] for line in cli.stdout.splitlines()] == expected[user]

    ids = tmp_path / "users.txt"
    ids.write_text("\n".join(users) + "\n")
    out = tmp_path / "recs.parquet"
    result = runner.invoke(
        app, ["score", str(run.path), "--users", str(ids), "--out", str(out), "-k", str(k)]
    )
    assert result.exit_code == 0, result.output
    scored = pd.read_parquet(out).sort_values(["user", "rank"]).groupby("user")["item"].apply(list)
    assert {u: scored[u] for u in users} == expected

    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    from llmrec.score.ray_pipeline import score_with_ray

    frame = pd.DataFrame({"user": users, "history": [histories[u] for u in users]})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        score_with_ray(run.path, frame, tmp_path / "ray-out", k=k, backend="hf", batch_size=4)
    finally:
        ray.shutdown()
    by_ray = (
        pd.read_parquet(tmp_path / "ray-out")
        .sort_values(["user", "rank"])
        .groupby("user")["item"]
        .apply(list)
    )
    assert {u: by_ray[u] for u in users} == expected

    server = Server(run.path)
    try:
        for user in users:
            served = httpx.post(server.url + "/recommend", json={"user": user, "k": k})
            assert served.status_code == 200, served.text
            assert [r["item"] for r in served.json()["items"]] == expected[user]
    finally:
        server.stop()
