"""End to end on a tiny random-init model: generic CSVs -> prepare -> train -> evaluate -> recommend."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import write_synthetic_csvs
from typer.testing import CliRunner

from llmrec.cli import app
from llmrec.train.run_dir import RunDir

runner = CliRunner()


def write_config(tmp_path, backbone, scheme="semantic", **train) -> str:
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
        "prompts": {"max_history": 5, "max_prompt_tokens": 200},
        "model": {"name": str(backbone), "dtype": "fp32", "lora": {"r": 4, "alpha": 8}},
        "train": {"max_steps": 6, "batch_size": 4, "eval_every": 3, "eval_users": 8, "save_every": 2, **train},
        "generate": {"num_beams": 10, "top_k": 10, "batch_size": 4},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.parametrize("scheme", ["semantic", "title", "numeric"])
def test_generic_csv_prepare_train_evaluate(tmp_path, tiny_backbone, scheme):
    config = write_config(tmp_path, tiny_backbone, scheme)
    for args in (["prepare", config], ["train", config], ["evaluate", str(tmp_path / "run"), "--split", "valid"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    run = RunDir(tmp_path / "run")
    for path in (run.adapter / "adapter_model.safetensors", run.tokenizer / "tokenizer.json", run.log, run.summary):
        assert path.exists(), path
    metrics = json.loads(run.metrics("valid").read_text())
    assert metrics["users"] == 40
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


def test_training_resumes_after_interruption(tmp_path, tiny_backbone):
    """A run stopped after its step-4 checkpoint continues from there instead of restarting."""
    config = write_config(tmp_path, tiny_backbone, max_steps=4, eval_every=0)
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    assert runner.invoke(app, ["train", config]).exit_code == 0
    # Ask for more steps: training must pick up at step 4 (the saved state), not at 0.
    cfg = yaml.safe_load(open(config))
    cfg["train"]["max_steps"] = 6
    yaml.safe_dump(cfg, open(config, "w"))
    result = runner.invoke(app, ["train", config])
    assert result.exit_code == 0, result.output
    assert "resuming from step 4" in result.output
    steps = [json.loads(line).get("step") for line in RunDir(tmp_path / "run").log.read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6
    summary = json.loads(RunDir(tmp_path / "run").summary.read_text())
    assert summary["steps"] == 6
