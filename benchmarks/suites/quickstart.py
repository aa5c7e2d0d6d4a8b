"""`llmrec quickstart` timed as a user runs it, in a fresh folder, on an AVX2-only CPU or emulated on
an AVX-512 one (torch and oneDNN limited to AVX2, so `model.dtype: auto` picks fp32 as there).

    python -m benchmarks quickstart [--emulate-avx2] [--config CONFIG]   -> results/quickstart/NAME.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import record

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks quickstart", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--emulate-avx2", action="store_true")
    parser.add_argument("--config", type=Path, help="a config instead of the built-in quickstart's")
    parser.add_argument("--name", help="result file name (default: built-in or the config's stem, + -avx2)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="quickstart-"))
    env = os.environ | (AVX2 if args.emulate_avx2 else {})
    command = [sys.executable, "-m", "llmrec", "quickstart"]
    if args.config:
        command += ["--config", str(args.config.resolve())]
    t0 = time.perf_counter()
    subprocess.run(command, check=True, cwd=work, env=env)
    seconds = time.perf_counter() - t0
    if args.config:
        run = args.config.parent / yaml.safe_load(args.config.read_text())["run_dir"]
    else:
        run = work / "runs" / "quickstart" / "run"
    m = json.loads((run / "metrics-test.json").read_text())
    chosen = m["mix"].get("chosen_on_validation", {})
    rows = {"chosen": m["ndcg@10"]} | {f"{k}": m["baselines"][k]["ndcg@10"] for k in m["baselines"]}
    metrics = {
        "rows_ndcg@10": rows,
        "chosen": chosen.get("chosen", "llm"),
        "dtype": m["train"]["dtype"],
        "steps": m["train"]["steps"],
        "test_users": m["users"],
        "sasrec_for_choice": chosen.get("sasrec"),
    }
    summary = {"total s": round(seconds), "chosen": metrics["chosen"]} | {
        f"{k} ndcg@10": round(v, 4) for k, v in rows.items()
    }
    name = args.name or (args.config.stem if args.config else "built-in") + (
        "-avx2" if args.emulate_avx2 else ""
    )
    record(
        "quickstart",
        name,
        metrics,
        summary,
        dataset="ml100k",
        variant="avx2 emulated" if args.emulate_avx2 else "native",
        timings={"total_s": round(seconds, 1), "train_wall_s": m["train"]["train_wall_s"]},
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
