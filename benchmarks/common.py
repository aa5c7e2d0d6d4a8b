"""What every benchmark shares: the result schema, the machine and run records, and small helpers
(run an `llmrec` command, time a call, peak memory). A suite builds a `Result` and calls `save`;
`benchmarks.render` reads nothing but the files `save` wrote."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "runs" / "benchmarks"  # what suites train and prepare (not committed)
SCHEMA_VERSION = 1
LIBRARIES = ("llmrec", "torch", "transformers", "peft", "accelerate", "vllm", "bitsandbytes")

Summary = dict[str, float | int | str | None]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunInfo(_Strict):
    suite: str
    dataset: str | None = Field(description="a name from benchmarks/datasets.yaml, or what was synthesised")
    variant: str = Field(
        "default", description="a config under benchmarks/configs/variants, or the suite's own"
    )
    seed: int | None = None
    commit: str | None = Field(
        description="the checkout measured; None only for results older than the schema"
    )
    command: str = Field(description="what reproduces the file")
    config: dict[str, Any] | None = Field(None, description="the resolved settings the cell ran with")
    date: str | None = None
    status: Literal["current", "superseded"] = Field(
        "current", description="superseded: measured on a recipe or code path since replaced; kept as history"
    )
    note: str | None = None


class Machine(_Strict):
    cpu: str | None = None
    isa: str | None = Field(None, description="'AVX-512 BF16', 'AVX2' or as torch reports it")
    threads: int | None = None
    gpu: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)


class Result(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    run: RunInfo
    machine: Machine
    data: dict[str, Any] | None = Field(None, description="where the data came from: source, checksums")
    metrics: dict[str, Any]
    summary: Summary = Field(description="the few numbers benchmarks.render shows for this file")
    timings: dict[str, float | None] = Field(default_factory=dict, description="seconds")


def cpu_isa() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx512_bf16" in flags:
        return "AVX-512 BF16"
    return "AVX2" if "avx2" in flags else platform.machine()


def machine() -> Machine:
    """The machine a figure was measured on: benchmarks compare only figures from one machine."""
    import torch

    emulated = os.environ.get("ATEN_CPU_CAPABILITY")  # AVX2 emulated on an AVX-512 machine
    isa = cpu_isa() + (f", torch capability {emulated} (emulated)" if emulated else "")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    versions = {}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    model = _cpu_model()
    return Machine(cpu=model, isa=isa, threads=torch.get_num_threads(), gpu=gpu, versions=versions)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "llmrec"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else None


def run_info(
    suite: str,
    dataset: str | None,
    variant: str = "default",
    seed: int | None = None,
    config: dict | None = None,
    note: str | None = None,
) -> RunInfo:
    """This invocation's record: the exact command is the one the user typed."""
    command = (
        "python -m benchmarks " + shlex.join(sys.argv[1:])
        if sys.argv[0].endswith("__main__.py")
        else shlex.join(sys.argv)
    )
    return RunInfo(
        suite=suite,
        dataset=dataset,
        variant=variant,
        seed=seed,
        commit=commit(),
        command=command,
        config=config,
        date=dt.date.today().isoformat(),
        note=note,
    )


def result_path(suite: str, name: str) -> Path:
    return RESULTS / suite / f"{name}.json"


def save(result: Result, name: str, folder: Path | None = None) -> Path:
    """benchmarks/results/SUITE/NAME.json (or FOLDER/NAME.json), validated, written whole: a killed run
    leaves the old file."""
    path = folder / f"{name}.json" if folder else result_path(result.run.suite, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}", flush=True)
    return path


def load_results(root: Path = RESULTS) -> dict[Path, Result]:
    """Every result file, validated against the schema (a file that does not validate raises, naming it)."""
    out = {}
    for path in sorted(root.rglob("*.json")):
        try:
            out[path] = Result.model_validate_json(path.read_text())
        except ValueError as err:
            raise SystemExit(f"{path}: not a benchmark result: {err}") from err
    return out


def llmrec(*args: str, cwd: Path = ROOT) -> float:
    """Run one `llmrec` command (as a user would, in its own process); its wall seconds."""
    print("+ llmrec " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llmrec", *args], check=True, cwd=cwd)
    return time.perf_counter() - t0


def test_histories(run_dir: str | Path, users: int):
    """A trained run, its config and its first `users` test users' histories: what the speed suites
    decode."""
    from llmrec.data import SplitData
    from llmrec.run_dir import RunDir

    run = RunDir(run_dir)
    cfg = run.load_config()
    split = SplitData.load(cfg.prepared_dir)
    return run, cfg, split.histories(split.eval_users("test").head(users), "test")


def peak_rss_mib() -> float:
    """This process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def record(
    suite: str,
    name: str,
    metrics: dict[str, Any],
    summary: Summary,
    *,
    dataset: str | None = None,
    variant: str = "default",
    seed: int | None = None,
    config: dict | None = None,
    timings: dict[str, float | None] | None = None,
    data: dict | None = None,
    folder: Path | None = None,
) -> Path:
    """Save one measurement of this invocation on this machine as benchmarks/results/SUITE/NAME.json."""
    result = Result(
        run=run_info(suite, dataset, variant, seed, config),
        machine=machine(),
        data=data,
        metrics=metrics,
        summary=summary,
        timings=timings or {},
    )
    return save(result, name, folder)
