"""Scale: the default recipe's prepare, training and scoring on synthetic logs of 100k, 1M and 10M
interactions (results/scale/synthetic.json).

Each size is a synthetic log written as Parquet: users with 5 or more interactions each (about 50 on
average, geometric lengths), items drawn by Zipf popularity (exponent 1) from a catalogue of
min(100k, interactions / 100) items with short titles, timestamps in order. Every stage is the
`llmrec` command a user runs, in its own process, so wall time and peak RSS (the process's maximum
resident set, from wait4) are the command's alone:

- prepare: `llmrec prepare` (import, leave-one-out split, ids, prompt datasets on disk);
- train: `llmrec train` for `--steps` optimizer steps (no validation until the end, on 50 users):
  the training log's tokens/s over those steps, and the setup before the first step (model load,
  encoding the prepared examples into the run's Arrow file);
- score: `llmrec score` of the first `--score-users` users to Parquet: users/s over the whole
  command, model load included, and its peak RSS.

The sizes differ in catalogue too (1k to 100k items), and the catalogue softmax and trainable item
rows cost compute of their own; so a control row, the smallest log over the largest size's catalogue
(`same_catalogue`), isolates what the data's size costs: training tokens/s at the largest size over
the control's says whether streaming the examples from disk costs anything.

    python -m benchmarks scale [--sizes 100000 1000000 10000000] [--steps 20] [--score-users 200]

Results are resumable per size and stage (runs/benchmarks/scale/N/*.json); the report is rewritten each time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from benchmarks import common

WORK = Path(os.environ.get("SCALE_WORK", common.WORK / "scale"))
SIZES = (100_000, 1_000_000, 10_000_000)


def catalogue_size(interactions: int) -> int:
    return min(100_000, max(1_000, interactions // 100))


def synthetic_log(folder: Path, interactions: int, n_items: int, seed: int = 0) -> dict:
    """interactions.parquet (user, item, timestamp) and items.parquet (item, title) in `folder`."""
    rng = np.random.default_rng(seed)
    lengths = 5 + rng.geometric(1 / 46, size=interactions // 20)  # more users than needed, then cut
    ends = np.cumsum(lengths)
    users = int(np.searchsorted(ends, interactions)) + 1
    lengths = lengths[:users]
    lengths[-1] -= int(ends[users - 1] - interactions)
    if lengths[-1] < 5:  # the last user takes what is left, merged into the one before if too short
        lengths[-2] += lengths[-1]
        lengths = lengths[:-1]
    popularity = 1.0 / np.arange(1, n_items + 1)
    items = rng.choice(n_items, size=interactions, p=popularity / popularity.sum())
    user = np.repeat(np.arange(len(lengths)), lengths)
    table = pa.table(
        {
            "user": pa.array([f"u{u}" for u in user]),
            "item": pa.array([f"i{i}" for i in items]),
            "timestamp": pa.array(np.arange(interactions, dtype=np.int64)),
        }
    )
    pq.write_table(table, folder / "interactions.parquet")
    pq.write_table(
        pa.table(
            {"item": [f"i{i}" for i in range(n_items)], "title": [f"Product {i}" for i in range(n_items)]}
        ),
        folder / "items.parquet",
    )
    return {"interactions": interactions, "users": len(lengths), "items": n_items}


def write_config(folder: Path) -> Path:
    config = {
        "prepared_dir": "prepared",
        "run_dir": "run",
        "data": {
            "format": "generic",
            "interactions": "interactions.parquet",
            "items": "items.parquet",
            "columns": {"user": "user", "item": "item", "timestamp": "timestamp", "title": "title"},
        },
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def timed(args: list[str], log: Path) -> dict:
    """Run one llmrec command in its own process: wall seconds and that process's peak RSS in MiB."""
    print("$ llmrec", " ".join(args), flush=True)
    started = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llmrec", *args], stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak RSS), not all children's
    if code := os.waitstatus_to_exitcode(status):
        raise SystemExit(f"llmrec {' '.join(args)} failed ({code}); see {log}")
    return {"wall_s": round(time.time() - started, 1), "peak_mib": round(usage.ru_maxrss / 1024)}


def stage(folder: Path, name: str, run) -> dict:
    """A stage's result, measured once (kept in folder/NAME.json)."""
    path = folder / f"{name}.json"
    if not path.exists():
        path.write_text(json.dumps(run(), indent=1))
    return json.loads(path.read_text())


def measure(size: int, steps: int, score_users: int, n_items: int | None = None) -> dict:
    """One size's stages; `n_items`: the catalogue (default `catalogue_size(size)`)."""
    n_items = n_items or catalogue_size(size)
    folder = WORK / (str(size) if n_items == catalogue_size(size) else f"{size}-items{n_items}")
    folder.mkdir(parents=True, exist_ok=True)
    data = stage(folder, "data", lambda: synthetic_log(folder, size, n_items))
    config = write_config(folder)
    prepare = stage(folder, "prepare", lambda: timed(["prepare", str(config)], folder / "prepare.log"))

    def train() -> dict:
        sets = [
            f"train.max_steps={steps}",
            "train.eval_every=0",
            "train.eval_users=50",
            "train.log_every=1",
            f"train.save_every={steps}",
            "generate.mix=none",
        ]
        result = timed(["train", str(config), *[x for s in sets for x in ("--set", s)]], folder / "train.log")
        log = [json.loads(line) for line in (folder / "run" / "train_log.jsonl").read_text().splitlines()]
        steps_logged = [r for r in log if "tokens_per_s" in r]
        summary = json.loads((folder / "run" / "train_summary.json").read_text())
        last = steps_logged[-1]
        # tokens/s after the first step (it pays one-off allocation): tokens between steps 1 and N
        first = steps_logged[0]
        rate = (last["tokens_per_s"] * last["elapsed_s"] - first["tokens_per_s"] * first["elapsed_s"]) / max(
            last["elapsed_s"] - first["elapsed_s"], 1e-9
        )
        return result | {
            "steps": summary["steps"],
            "tokens_per_s": round(rate, 1),
            "setup_s": round(result["wall_s"] - summary["train_wall_s"], 1),
            "examples": summary["examples"],
            "tokens_per_interaction": summary["tokens_per_interaction"],
        }

    trained = stage(folder, "train", train)

    def score() -> dict:
        out = folder / "recs.parquet"
        out.unlink(missing_ok=True)
        args = [
            "score",
            str(folder / "run"),
            "--out",
            str(out),
            "--split",
            "test",
            "--limit",
            str(score_users),
        ]
        result = timed(args, folder / "score.log")
        return result | {"users": score_users, "users_per_s": round(score_users / result["wall_s"], 2)}

    scored = stage(folder, "score", score)
    return {
        **data,
        "prepare_s": prepare["wall_s"],
        "prepare_peak_mib": prepare["peak_mib"],
        "train_tokens_per_s": trained["tokens_per_s"],
        "train_setup_s": trained["setup_s"],
        "train_peak_mib": trained["peak_mib"],
        "train_examples": trained["examples"],
        "tokens_per_interaction": trained["tokens_per_interaction"],
        "score_users_per_s": scored["users_per_s"],
        "score_peak_mib": scored["peak_mib"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="*", type=int, default=list(SIZES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--score-users", type=int, default=200)
    args = parser.parse_args(argv)
    sizes = [measure(n, args.steps, args.score_users) for n in args.sizes]
    result = {
        "sizes": sizes,
        "steps": args.steps,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    if len(sizes) > 1:
        result["train_tokens_per_s_largest_over_smallest"] = round(
            sizes[-1]["train_tokens_per_s"] / sizes[0]["train_tokens_per_s"], 3
        )
        largest, smallest = max(args.sizes), min(args.sizes)
        if catalogue_size(largest) != catalogue_size(smallest):
            control = measure(smallest, args.steps, args.score_users, catalogue_size(largest))
            result["same_catalogue"] = control
            result["train_tokens_per_s_largest_over_same_catalogue"] = round(
                sizes[-1]["train_tokens_per_s"] / control["train_tokens_per_s"], 3
            )
    print(json.dumps(result, indent=2))
    summary = {f"{s['interactions']:,} train tokens/s": s["train_tokens_per_s"] for s in sizes}
    summary["largest / same catalogue"] = result.get("train_tokens_per_s_largest_over_same_catalogue")
    common.record("scale", "synthetic", result, summary, dataset="synthetic", variant="sizes")


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
