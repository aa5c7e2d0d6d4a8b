"""Offline batch scoring: rows = users x K, atomic shards, resume after kill -9, per-user errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import require_vllm
from test_pipeline import runner, write_config

from llmrec.cli import app


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_vllm_backbone):  # a backbone both backends can load
    tmp = tmp_path_factory.mktemp("score")
    config = write_config(tmp, tiny_vllm_backbone, max_steps=2, eval_every=0)
    for args in (["prepare", config], ["train", config]):
        assert runner.invoke(app, args).exit_code == 0
    return tmp / "run"


def test_score_split_to_parquet_and_jsonl(trained_run, tmp_path):
    for out in (tmp_path / "recs.parquet", tmp_path / "recs.jsonl"):
        args = [
            "score",
            str(trained_run),
            "--split",
            "test",
            "--out",
            str(out),
            "-k",
            "5",
            "--shard-size",
            "7",
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        frame = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_json(out, lines=True)
        assert list(frame.columns) == ["user", "rank", "item", "title", "score"]
        assert len(frame) == 40 * 5 and not frame.duplicated(["user", "rank"]).any()
        assert not frame.duplicated(["user", "item"]).any()
        assert (frame.groupby("user")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_unknown_users_go_to_errors_file_or_fail_strict(trained_run, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("u1\nghost\nu2\n")
    out = tmp_path / "recs.parquet"
    result = runner.invoke(
        app, ["score", str(trained_run), "--users", str(users), "--out", str(out), "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(pd.read_parquet(out)["user"].unique()) == ["u1", "u2"]
    errors = [json.loads(line) for line in (tmp_path / "recs.parquet.errors.jsonl").read_text().splitlines()]
    assert errors == [{"user": "ghost", "error": "unknown user 'ghost'"}]
    strict_out = tmp_path / "strict.parquet"
    result = runner.invoke(app, ["score", str(trained_run), "--users", str(users), "--out", str(strict_out),
                                 "--strict"])  # fmt: skip
    assert result.exit_code == 2 and "ghost" in result.output and not strict_out.exists()


@pytest.mark.process
@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_resume_after_kill_never_duplicates_or_drops(trained_run, tmp_path, backend):
    if backend == "vllm":
        require_vllm()
    users = tmp_path / "users.txt"
    # 40 users, each listed 10 times: scored once each (40 shards of one user), never twice
    users.write_text("".join(f"u{i % 40}\n" for i in range(400)))
    out = tmp_path / "recs.parquet"
    cmd = [sys.executable, "-m", "llmrec", "score", str(trained_run), "--users", str(users)]
    cmd += ["--out", str(out), "-k", "4", "--shard-size", "1", "--backend", backend]
    manifest = tmp_path / "recs.parquet.parts" / "manifest.json"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and len(json.loads(manifest.read_text())["done"]) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = json.loads(manifest.read_text())["done"]
    assert 0 < len(done_before) < 40 and not out.exists()
    first = tmp_path / "recs.parquet.parts" / "shard-00000.parquet"
    stamp = first.stat().st_mtime_ns
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert first.stat().st_mtime_ns == stamp  # finished shards are not redone
    frame = pd.read_parquet(out)
    assert len(frame) == 40 * 4
    assert frame.groupby("user").size().eq(4).all()  # each of the 40 users once, with its top 4


@pytest.mark.process
def test_ray_data_pipeline_scores_every_user(trained_run, tmp_path):
    """The many-machine path, on a local Ray instance: same rows as the single-machine scorer."""
    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    from llmrec.score.ray_pipeline import score_with_ray

    users = pd.DataFrame({"user": ["u1", "u2", "u3"], "history": [["m1", "m2"], ["m5"], ["m7", "m8", "m9"]]})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        score_with_ray(trained_run, users, tmp_path / "ray-out", k=3, backend="hf", batch_size=2)
    finally:
        ray.shutdown()
    frame = pd.read_parquet(tmp_path / "ray-out")
    assert len(frame) == 3 * 3 and sorted(frame["user"].unique()) == ["u1", "u2", "u3"]
    assert not frame.duplicated(["user", "rank"]).any()


def test_explain_adds_grounded_reasons_to_recommend_and_score(trained_run, tmp_path):
    users = pd.read_parquet(trained_run.parent / "prepared" / "users.parquet")
    row = users[users["test"].notna()].iloc[0]
    history = {*row["train"], row["valid"], row["test"]}
    result = runner.invoke(app, ["recommend", str(trained_run), "--user", row["user"], "-k", "3",
                                 "--json", "--explain"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 3
    for line in lines:
        assert line["reason"] and line["title"] in line["reason"]
        assert {e["item"] for e in line["evidence"]} <= history

    out = tmp_path / "explained.parquet"
    args = ["score", str(trained_run), "--split", "test", "--out", str(out), "-k", "2", "--limit", "6",
            "--explain"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["user", "rank", "item", "title", "score", "reason", "evidence"]
    assert len(frame) == 12 and frame["reason"].str.len().gt(0).all()
    # every reason names the item and states a fact about this user: a history item it names (from
    # the user's own history), an attribute recurring in their recent items, or that no single one
    # leads to it
    histories = {
        u: {*t, v, x} for u, t, v, x in users[["user", "train", "valid", "test"]].itertuples(index=False)
    }
    for r in frame.to_dict("records"):
        assert r["title"] in r["reason"]
        assert {e["item"] for e in r["evidence"]} <= histories[r["user"]]
        named = [e for e in r["evidence"] if e["title"] in r["reason"]]
        assert named or " of the last " in r["reason"] or "history as a whole" in r["reason"], r["reason"]


def test_rerank_scores_exactly_the_shortlist(trained_run):
    from llmrec.generate import Recommender

    rec = Recommender.from_run(trained_run, dtype="fp32", backend="hf")
    users = pd.read_parquet(trained_run.parent / "prepared" / "users.parquet")
    histories = [list(t) for t in users["train"][:3]]
    full = rec.recommend(histories, k=10)
    catalogue = rec.item_ids.items
    for history, top in zip(histories, full, strict=True):
        others = [i for i in catalogue if i not in history and i not in {r.item for r in top}][:4]
        shortlist = [top[9].item, *others, top[0].item, top[4].item]
        out = rec.recommend([history], k=len(shortlist), candidates=[shortlist])[0]
        assert sorted(r.item for r in out) == sorted(shortlist)
        exact = {r.item: r.score for r in top}
        for r in out:
            if r.item in exact:  # the same log-prob the unrestricted search gave it
                assert abs(r.score - exact[r.item]) < 1e-4
        assert [r.item for r in out if r.item in exact] == [top[0].item, top[4].item, top[9].item]
