"""End to end on a tiny random-init model: generic CSVs -> prepare -> train -> evaluate -> recommend."""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import yaml
from conftest import ATOMIC_PROMPTS, write_synthetic_csvs
from typer.testing import CliRunner

from llmrec.cli import app
from llmrec.run_dir import RunDir

runner = CliRunner()


def write_config(tmp_path, backbone, scheme="semantic", overrides: dict | None = None, **train) -> str:
    inter, items = write_synthetic_csvs(tmp_path)
    cfg = {
        "prepared_dir": "prepared",
        "run_dir": "run",
        "data": {
            "format": "generic",
            "interactions": inter.name,
            "items": items.name,
            "columns": {"user": "uid", "item": "iid", "timestamp": "ts", "title": "name", "text": ["genre"]},
        },
        "ids": {"scheme": scheme, "levels": 2, "codebook_size": 8, "embeddings": "both"},
        "prompts": {
            "objective": "next_item",
            "include_titles": True,
            "max_history": 5,
            "max_prompt_tokens": 200,
        },
        "model": {"name": str(backbone), "dtype": "fp32", "lora": {"r": 4, "alpha": 8}},
        "train": {
            "max_steps": 6,
            "batch_size": 4,
            "eval_every": 3,
            "eval_users": 8,
            "save_every": 2,
            **train,
        },
        # no SASRec-CE trained for train's choice (the default path has its own tests, test_load.py)
        "generate": {"num_beams": 10, "top_k": 10, "batch_size": 4, "sasrec_time_share": 0},
    }
    for section, values in (overrides or {}).items():
        cfg.setdefault(section, {}).update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.parametrize(
    ("scheme", "objective"),
    [("semantic", "next_item"), ("title", "next_item"), ("numeric", "next_item"), ("semantic", "every_item"),
     ("title", "every_item"), ("atomic", "every_item")],
)  # fmt: skip
def test_generic_csv_prepare_train_evaluate(tmp_path, tiny_backbone, scheme, objective):
    prompts = {"objective": objective, "template": "item_list.j2", "include_titles": False}
    config = write_config(
        tmp_path, tiny_backbone, scheme, {"prompts": prompts} if objective == "every_item" else {}
    )
    for args in (
        ["prepare", config],
        ["train", config],
        ["evaluate", str(tmp_path / "run"), "--split", "valid"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    run = RunDir(tmp_path / "run")
    for path in (
        run.adapter / "adapter_model.safetensors",
        run.tokenizer / "tokenizer.json",
        run.log,
        run.summary,
    ):
        assert path.exists(), path
    metrics = json.loads(run.metrics("valid").read_text())
    assert metrics["users"] == 40
    assert metrics["train"]["dtype"] == "float32"  # the run records the dtype it trained in
    assert metrics["valid_rate"] == 1.0 and metrics["distinct_rate"] == 1.0
    for key in ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr"):
        assert 0.0 <= metrics[key] <= 1.0
        assert key in metrics["baselines"]["popularity"]
    log = [json.loads(line) for line in run.log.read_text().splitlines()]
    assert any("loss" in rec for rec in log) and any("valid_ndcg@10" in rec for rec in log)

    result = runner.invoke(app, ["recommend", str(run.path), "--user", "u3", "-k", "5", "--json"])
    assert result.exit_code == 0, result.output
    recs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rank"] for r in recs] == [1, 2, 3, 4, 5]
    assert len({r["item"] for r in recs}) == 5 and all(r["title"].startswith("Film ") for r in recs)

    result = runner.invoke(app, ["recommend", str(run.path), "--history", "m1,nope", "--json"])
    assert result.exit_code == 2 and "nope" in result.output


@pytest.mark.process
def test_training_resumes_after_kill(tmp_path, tiny_backbone):
    """`kill -9` mid-run, then the same command again: it continues from the last checkpoint."""
    config = write_config(tmp_path, tiny_backbone, max_steps=400, eval_every=0, save_every=5, log_every=5)
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    run = RunDir(tmp_path / "run")
    cmd = [sys.executable, "-m", "llmrec", "train", config]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not run.checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run.checkpoint.exists() and not run.summary.exists(), "killed before the end"
    done = json.loads((run.checkpoint / "state.json").read_text())["step"]
    assert 0 < done < 400
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    resumed_at = int(re.search(r"resuming from step (\d+)", result.stdout + result.stderr).group(1))
    assert resumed_at >= done
    steps = [json.loads(line)["step"] for line in run.log.read_text().splitlines() if "loss" in line]
    assert steps == list(range(5, 401, 5))  # every logged step exactly once, none lost or repeated
    assert json.loads(run.summary.read_text())["steps"] == 400


@pytest.mark.process
def test_two_cpu_processes_with_accelerate_launch(tmp_path, tiny_backbone):
    """As documented: `accelerate launch --cpu --num_processes 2` trains in two gloo processes."""
    config = write_config(tmp_path, tiny_backbone, max_steps=4, eval_every=2, save_every=2)
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    cmd = ["accelerate", "launch", "--cpu", "--num_processes", "2", "--main_process_port", "29517"]
    cmd += ["-m", "llmrec", "train", config]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    # a failing process's own message comes before the launcher's traceback: show both
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "rror" in line]
    assert result.returncode == 0, "\n".join(errors)[-2000:] + result.stderr[-1500:]
    run = RunDir(tmp_path / "run")
    summary = json.loads(run.summary.read_text())
    assert summary["processes"] == 2 and summary["steps"] == 4
    assert (run.adapter / "adapter_model.safetensors").exists()


def test_bad_input_exits_2_and_writes_nothing(tmp_path, tiny_backbone):
    config = write_config(tmp_path, tiny_backbone)
    with (tmp_path / "interactions.csv").open("a") as f:
        f.write("u1,m1,not-a-time\n")
    result = runner.invoke(app, ["prepare", config])
    assert result.exit_code == 2
    assert "interactions.csv" in result.output and "line" in result.output and "'ts'" in result.output
    assert not (tmp_path / "prepared").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".prepared")]  # no temp leftovers
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("ids:\n  scheme: sequential\n")
    result = runner.invoke(app, ["prepare", str(bad_cfg)])
    assert result.exit_code == 2 and "ids.scheme" in result.output


def test_set_overrides_settings_and_names_bad_ones(tmp_path, tiny_backbone):
    from llmrec.config import load_config

    config = write_config(tmp_path, tiny_backbone)
    cfg = load_config(config, ["ids.scheme=title", "baselines.sasrec.heads=1", "run_dir=other/run"])
    assert cfg.ids.scheme == "title" and cfg.baselines.sasrec.heads == 1
    assert cfg.run_dir == str((tmp_path / "other" / "run").resolve())  # as if written in the file
    assert load_config(config).ids.scheme == "semantic"  # the file itself is untouched
    for override, named in (("ids.scheme", "key=value"), ("ids.scheme=sequential", "ids.scheme")):
        result = runner.invoke(app, ["prepare", config, "--set", override])
        assert result.exit_code == 2 and named in result.output, result.output
        assert "config.yaml" in result.output
    assert not (tmp_path / "prepared").exists()


def test_training_is_reproducible_whatever_ran_before(tmp_path, tiny_backbone):
    """Same config, same adapter, even when the process consumed random numbers in between."""
    from safetensors.torch import load_file

    config = write_config(tmp_path, tiny_backbone, max_steps=2, eval_every=0)
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    adapters = []
    for attempt in range(2):
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        torch.rand(1000 * (attempt + 1))  # e.g. a model conversion initialising weights first
        assert runner.invoke(app, ["train", config]).exit_code == 0
        adapters.append(load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))
    assert adapters[0].keys() == adapters[1].keys()
    assert all(torch.equal(adapters[0][k], adapters[1][k]) for k in adapters[0])


def test_full_finetuning_round_trips_and_atomic_ranks_in_one_pass(tmp_path, tiny_backbone):
    """model.finetune: full saves a plain model folder; reloaded, it gives the same top-K as in memory;
    atomic ids rank the whole catalogue exactly (every item scored, history excluded)."""
    from llmrec.generate import Recommender

    prompts = {"objective": "every_item", "template": "item_list.j2", "include_titles": False}
    config = write_config(
        tmp_path, tiny_backbone, "atomic", {"prompts": prompts, "model": {"finetune": "full"}}, lr=1e-3
    )
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    run = RunDir(tmp_path / "run")
    assert (run.full_model / "model.safetensors").exists() and not run.adapter.exists()
    summary = json.loads(run.summary.read_text())
    assert summary["finetune"] == "FullTuning" and summary["objective"] == "CatalogueLoss"
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(run.full_model)  # no merge step, no llmrec code
    rec = Recommender.from_run(run.path)
    assert plain.get_input_embeddings().weight.shape[0] == len(rec.tokenizer)  # item rows included
    history = ["m1", "m2", "m3"]
    top = rec.recommend([history], k=30)[0]
    assert len(top) == 27 and not {r.item for r in top} & set(history)  # the rest of the catalogue
    scores = [r.score for r in top]
    assert scores == sorted(scores, reverse=True)
    every = rec.recommend([history], k=30, exclude_history=False)[0]
    assert abs(sum(math.exp(r.score) for r in every) - 1) < 1e-4  # a softmax over the catalogue
    again = Recommender.from_run(run.path).recommend([history], k=5)[0]
    assert [r.item for r in again] == [r.item for r in top[:5]]


def test_alignment_tasks_mix_into_training(tmp_path, tiny_backbone):
    """train.tasks adds text -> id and id -> text examples (items have titles) to the next-item ones."""
    prompts = {"objective": "every_item", "template": "item_list.j2", "include_titles": False}
    tasks = {"text_to_id": 0.5, "id_to_text": 0.25}
    config = write_config(tmp_path, tiny_backbone, "atomic", {"prompts": prompts}, tasks=tasks, eval_every=0)
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    result = runner.invoke(app, ["train", config])
    assert result.exit_code == 0, result.output + repr(result.exception)
    import datasets

    windows = len(datasets.load_from_disk(str(tmp_path / "prepared" / "examples-train")))
    summary = json.loads(RunDir(tmp_path / "run").summary.read_text())
    assert summary["examples"] == windows + round(0.5 * windows) + round(0.25 * windows)
    assert (RunDir(tmp_path / "run").path / "examples-encoded.arrow").exists()  # encoded on disk, mapped
    assert math.isfinite(json.loads(RunDir(tmp_path / "run").log.read_text().splitlines()[0])["loss"])


def test_prepared_examples_are_a_dataset_that_datasets_reads_alone(tmp_path, tiny_backbone):
    """`datasets.load_from_disk` reads every prepared split without llmrec: the training windows and
    the evaluation prompts, as `prepare` built them."""
    import datasets

    config = write_config(tmp_path, tiny_backbone, "atomic", ATOMIC_PROMPTS)
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    train = datasets.load_from_disk(str(tmp_path / "prepared" / "examples-train"))
    assert train.column_names == ["user", "items", "times", "before"] and len(train) > 0  # data with times
    users = pd.read_parquet(tmp_path / "prepared" / "users.parquet")
    first = users.iloc[0]
    windows = [w for u, w in zip(train["user"], train["items"], strict=True) if u == first["user"]]
    assert sorted(i for w in windows for i in w[1:]) == sorted(first["train"][1:])  # each target once
    for name in ("valid", "test"):
        table = datasets.load_from_disk(str(tmp_path / "prepared" / f"examples-{name}"))
        assert table.column_names == ["user", "prompt", "target"] and len(table) == 40
