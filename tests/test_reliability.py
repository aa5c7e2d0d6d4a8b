"""A run folder survives crashes, concurrency and damage, and the server bounds what it accepts: one
test per way a user's machine treats a run (tiny models, the real CLI and server, SIGKILL where the
case is a kill), each checking the exit code or status, the message naming the file or field, and
that the run is still usable afterwards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
import yaml
from helpers import Server
from safetensors.torch import load_file
from test_pipeline import runner

from llmrec.cli import app

pytestmark = pytest.mark.process  # starts processes, servers or engines: the process tier

NEW_ITEMS = "iid,name,genre\nm100,Film 100,comedy\nm101,Film 101,drama\n"


@pytest.fixture
def root(atomic_run, tmp_path) -> Path:
    """A copy of the tiny trained run's folder (config, data, prepared, run) to damage."""
    copy = tmp_path / "copy"
    shutil.copytree(atomic_run.parent, copy)
    return copy


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def llmrec_process(output: Path, *args: str, patch: str = "") -> subprocess.Popen:
    """`llmrec ARGS` in a fresh process, its output into the file `output` (a pipe nobody reads
    could fill and stall it); `patch`: Python run first (a fault to inject)."""
    code = f"import sys\n{patch}\nfrom llmrec.cli import app\napp(sys.argv[1:])"
    with output.open("w") as out:
        return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip


def recommends(run: Path, history: str = "m1,m2,m3") -> list[str]:
    result = cli("recommend", run, "--history", history, "-k", "3", "--json")
    assert result.exit_code == 0, result.output + repr(result.exception)
    return [json.loads(line)["item"] for line in result.stdout.splitlines()]


def refused_everywhere(run: Path, *words: str) -> None:
    """`recommend`, `evaluate` and `serve` on a run that cannot load exit 2 at once, each naming what
    is wrong (every one of `words`), with no traceback."""
    for args in (["recommend", run, "--history", "m1"], ["evaluate", run]):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert all(w in result.output for w in words) and "Traceback" not in result.output, result.output
    proc = subprocess.run([sys.executable, "-m", "llmrec", "serve", str(run), "--port", "0"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and all(w in out for w in words), out


def test_a_second_train_on_a_run_at_work_is_refused_and_the_first_resumes_cleanly(root):
    config, run, output = root / "config.yaml", root / "run", root / "first.log"
    (run / "run.lock").unlink(missing_ok=True)  # the copied run's lock names the fixture's process
    first = llmrec_process(output, "train", config, "--set", "train.max_steps=100000",
                           "--set", "train.save_every=25", "--set", "train.log_every=1")  # fmt: skip

    def logged_steps() -> list[int]:
        lines = (run / "train_log.jsonl").read_text().splitlines()
        return [json.loads(line)["step"] for line in lines if line.endswith("}") and '"loss"' in line]

    deadline = time.time() + 180
    while max(logged_steps()) < 60:  # training (past a checkpoint), not still loading
        assert first.poll() is None and time.time() < deadline, output.read_text()
        time.sleep(0.2)
    second = cli("train", config, "--set", "train.max_steps=100000")
    assert second.exit_code == 2, second.output
    assert f"process {first.pid}" in second.output and "run.lock" in second.output
    first.kill()  # SIGKILL mid-training
    first.wait()
    resumed_from = json.loads((run / "checkpoint" / "state.json").read_text())["step"]
    assert resumed_from >= 25
    result = cli(
        "train", config, "--set", f"train.max_steps={resumed_from + 10}", "--set", "train.log_every=1"
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    steps = logged_steps()
    assert steps == sorted(set(steps)) and steps[-1] == resumed_from + 10  # none logged twice
    assert set(range(5, resumed_from + 11)) <= set(steps)  # none lost
    assert len(recommends(run)) == 3


def test_a_torn_log_line_is_dropped_with_a_warning(root):
    log = root / "run" / "train_log.jsonl"
    with log.open("a") as f:
        f.write('{"step": 3, "loss": 1.')  # a power cut mid-write
    result = cli("train", root / "config.yaml", "--set", "train.max_steps=6")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "torn line" in result.output and "train_log.jsonl" in result.output
    assert all(json.loads(line) for line in log.read_text().splitlines())
    assert len(recommends(root / "run")) == 3


def test_a_damaged_checkpoint_is_a_clear_error_that_says_how_to_start_over(root):
    weights = root / "run" / "checkpoint" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = cli("train", root / "config.yaml", "--set", "train.max_steps=6")
    assert result.exit_code == 2
    assert "weights.safetensors" in result.output and "damaged" in result.output
    assert "delete" in result.output and "Traceback" not in result.output
    shutil.rmtree(root / "run" / "checkpoint")  # what the message says
    assert cli("train", root / "config.yaml", "--set", "train.max_steps=6").exit_code == 0


def test_weights_only_as_a_pickle_are_refused_by_our_policy(root):
    adapter = root / "run" / "adapter"
    safe = adapter / "adapter_model.safetensors"
    torch.save(load_file(safe), adapter / "adapter_model.bin")
    shutil.move(safe, root / "kept.safetensors")
    result = cli("recommend", root / "run", "--history", "m1,m2", "--json")
    assert result.exit_code == 2
    assert "adapter_model.bin" in result.output and "safetensors only" in result.output
    assert "Traceback" not in result.output
    shutil.move(root / "kept.safetensors", safe)  # with the safetensors file back it loads (the .bin unread)
    assert len(recommends(root / "run")) == 3


def test_a_catalogue_change_killed_after_its_commit_is_finished_by_the_next_load(root):
    items = root / "new_items.csv"
    items.write_text(NEW_ITEMS)
    # SIGKILL right after the first file of the committed change is renamed into place
    kill = ("import os, signal\nreal = os.replace\n"
            "def replace(a, b):\n    real(a, b)\n"
            "    if os.path.basename(str(b)) == 'tokenizer': os.kill(os.getpid(), signal.SIGKILL)\n"
            "os.replace = replace")  # fmt: skip
    proc = llmrec_process(root / "add.log", "items", "add", root / "run", items, patch=kill)
    assert proc.wait(timeout=300) == -9, (root / "add.log").read_text()
    assert (root / "run" / ".catalogue-change").exists()  # half renamed: the ids are not in place yet
    assert len(recommends(root / "run", "m100,m1")) == 3  # loading finished the change: m100 is known
    assert not (root / "run" / ".catalogue-change").exists()
    again = cli("items", "add", root / "run", items)
    assert again.exit_code == 2 and "already in the catalogue" in again.output
    assert not [p.name for p in (root / "run").iterdir() if p.name.startswith(".") and p.name != ".llmrec"]


def test_a_catalogue_change_killed_before_its_commit_leaves_the_old_catalogue(root):
    items = root / "new_items.csv"
    items.write_text(NEW_ITEMS)
    kill = ("import os, signal\nreal = os.replace\n"
            "def replace(a, b):\n"
            "    if os.path.basename(str(b)) == 'COMMITTED': os.kill(os.getpid(), signal.SIGKILL)\n"
            "    real(a, b)\n"
            "os.replace = replace")  # fmt: skip
    proc = llmrec_process(root / "add.log", "items", "add", root / "run", items, patch=kill)
    assert proc.wait(timeout=300) == -9, (root / "add.log").read_text()
    unknown = cli("recommend", root / "run", "--history", "m100,m1", "--json")
    assert unknown.exit_code == 2 and "m100" in unknown.output  # not in the catalogue: rolled back
    assert not (root / "run" / ".catalogue-change").exists()
    assert cli("items", "add", root / "run", items).exit_code == 0  # and the change can be made again
    assert len(recommends(root / "run", "m100,m1")) == 3


def test_a_truncated_adapter_is_named_by_every_command_and_the_server_exits(root):
    adapter = root / "run" / "adapter" / "adapter_model.safetensors"
    whole = adapter.read_bytes()
    adapter.write_bytes(whole[: len(whole) // 2])
    refused_everywhere(root / "run", "adapter_model.safetensors", "damaged")
    adapter.write_bytes(whole)
    assert len(recommends(root / "run")) == 3


def test_a_setting_this_version_does_not_know_names_the_file_and_field(root):
    config = root / "run" / "config.yaml"
    original = config.read_text()
    raw = yaml.safe_load(original)
    raw["generate"]["beam_magic"] = 3
    config.write_text(yaml.safe_dump(raw))
    refused_everywhere(root / "run", "config.yaml", "generate.beam_magic")
    config.write_text(original)
    assert len(recommends(root / "run")) == 3


def test_a_missing_items_table_is_named_and_the_server_exits(root):
    items = root / "run" / "items.parquet"
    shutil.move(items, root / "kept.parquet")
    refused_everywhere(root / "run", "items.parquet", "missing")
    shutil.move(root / "kept.parquet", items)
    assert len(recommends(root / "run")) == 3


def test_the_server_limits_bodies_and_can_require_a_key(atomic_run, monkeypatch):
    monkeypatch.setenv("LLMREC_API_KEY", "s3cret")  # the environment variable, as vLLM's VLLM_API_KEY
    server = Server(atomic_run, "--max-body-bytes", "65536")
    try:
        url = server.url + "/recommend"
        assert httpx.get(server.url + "/healthz").status_code == 200  # probes stay open
        assert httpx.get(server.url + "/readyz").status_code == 200
        assert httpx.get(server.url + "/metrics").status_code == 200
        body = {"history": ["m1", "m2"], "k": 3}
        assert httpx.post(url, json=body).status_code == 401
        wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401 and wrong.json()["field"] == "authorization"
        key = {"Authorization": "Bearer s3cret"}
        assert httpx.post(url, json=body, headers=key).status_code == 200
        big = json.dumps({"history": ["m1"] * 3_000_000, "k": 3}).encode()  # ~17 MB
        too_big = httpx.post(url, content=big, headers=key | {"Content-Type": "application/json"})
        assert too_big.status_code == 413 and "65536" in too_big.json()["detail"]

        def chunks():  # no Content-Length: counted as it arrives
            for start in range(0, len(big), 1 << 16):
                yield big[start : start + (1 << 16)]

        streamed = httpx.post(url, content=chunks(), headers=key | {"Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert httpx.post(url, json=body, headers=key).status_code == 200  # still serving
    finally:
        server.stop()
