"""Time gaps on ML-100K: the default recipe with `prompts.time: none` and `gaps`, three training
seeds each, the LLM alone on the test split, paired per user.

    python scripts/bench_time.py run [--seeds 0 1 2] [--epochs 8]   # resumable: a cell with metrics is kept
    python scripts/bench_time.py report                             # -> docs/benchmarks/time.json

Each cell is one `llmrec train` (settings besides the data: `train.seed`, `prompts.time` and an
epoch cap `--epochs`, the same for both variants, so CPU load changes wall time, never the numbers;
patience 2 on validation NDCG@10 as the default) and one `llmrec evaluate --retriever none`. The
report gives each variant's NDCG@10/HR@10 per seed, their mean and spread, a paired bootstrap over
users of the seed-averaged per-user NDCG@10 (gaps minus none), and NDCG@10 by history length.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from bench_suite import machine  # scripts/ is on the path of a script run from it

from llmrec.evaluate.metrics import paired_bootstrap, user_ndcg

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "runs" / "time"
OUT = ROOT / "docs" / "benchmarks" / "time.json"
VARIANTS = ("none", "gaps")


def llmrec(*args: str) -> None:
    print("+ llmrec " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "llmrec", *args], check=True, cwd=ROOT)


def config(epochs: float) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "config.yaml"
    data = {"format": "movielens", "path": "builtin:ml-100k"}
    cfg = {"prepared_dir": "prepared", "run_dir": "run", "data": data, "train": {"epochs": epochs}}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(seeds: list[int], epochs: float) -> None:
    cfg = config(epochs)
    if not (WORK / "prepared" / "manifest.json").exists():
        llmrec("prepare", str(cfg))
    for seed in seeds:
        for variant in VARIANTS:
            name = f"{variant}-seed{seed}"
            if (WORK / name / "metrics-test.json").exists():
                continue
            sets = [
                "--set",
                f"run_dir={name}",
                "--set",
                f"train.seed={seed}",
                "--set",
                f"prompts.time={variant}",
            ]
            if not (WORK / name / "train_summary.json").exists():
                llmrec("train", str(cfg), *sets)
            llmrec("evaluate", str(WORK / name), "--split", "test", "--retriever", "none")


def per_user(name: str) -> pd.Series:
    lists = pd.read_parquet(WORK / name / "lists-test.parquet")
    values = [user_ndcg(t, list(items)) for t, items in zip(lists["target"], lists["items"], strict=True)]
    return pd.Series(values, index=lists["user"])


def report(seeds: list[int]) -> dict:
    variants = {}
    for variant in VARIANTS:
        metrics = {
            s: json.loads((WORK / f"{variant}-seed{s}" / "metrics-test.json").read_text()) for s in seeds
        }
        ndcg = [metrics[s]["ndcg@10"] for s in seeds]
        train = [metrics[s]["train"] for s in seeds]
        buckets = {}
        for s in seeds:
            for bucket, m in metrics[s]["by_history_length"].items():
                buckets.setdefault(bucket, []).append(m["ndcg@10"])
        variants[variant] = {
            "seeds": seeds,
            "ndcg@10": [round(x, 5) for x in ndcg],
            "hr@10": [round(metrics[s]["hr@10"], 5) for s in seeds],
            "mean_ndcg@10": round(statistics.mean(ndcg), 5),
            "sd_ndcg@10": round(statistics.stdev(ndcg), 5) if len(ndcg) > 1 else None,
            "mean_hr@10": round(statistics.mean(metrics[s]["hr@10"] for s in seeds), 5),
            "ndcg@10_by_history_length": {b: round(statistics.mean(v), 5) for b, v in buckets.items()},
            "users_by_history_length": {
                b: m["users"] for b, m in metrics[seeds[0]]["by_history_length"].items()
            },
            "training": [
                {k: t.get(k) for k in ("epochs_run", "best_epoch", "stop_reason", "train_wall_s")}
                for t in train
            ],  # fmt: skip
        }
    none, gaps = (pd.concat([per_user(f"{v}-seed{s}") for s in seeds], axis=1).mean(axis=1) for v in VARIANTS)
    base, with_time = variants["none"]["mean_ndcg@10"], variants["gaps"]["mean_ndcg@10"]
    spread = max(variants[v]["sd_ndcg@10"] or 0.0 for v in VARIANTS)
    result = {
        "what": "ML-100K, default recipe (atomic ids, every item a target, patience 2 on validation), "
        "LLM alone, test split, all users, history masked; prompts.time none vs gaps; the request's "
        "`now` is the default (last item + the user's median gap), never the target's time",
        "epochs_cap": yaml.safe_load((WORK / "config.yaml").read_text())["train"]["epochs"],
        "variants": variants,
        "gaps_over_none": round(with_time / base, 4),
        "difference": round(with_time - base, 5),
        "largest_seed_sd": round(spread, 5) if len(seeds) > 1 else None,
        # one seed has no spread to compare with: say so rather than compare with 0
        "beyond_seed_spread": abs(with_time - base) > spread if len(seeds) > 1 else None,
        "paired_seed_mean_user_ndcg@10_gaps_minus_none": paired_bootstrap(
            (gaps - none.loc[gaps.index]).to_numpy()
        ),
        "target": "+5% NDCG@10 beyond seed spread",
        "machine": machine(),
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "variants"}, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("run", "report"))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=float, default=8, help="epoch cap (train.epochs), both variants")
    args = parser.parse_args()
    if args.what == "run":
        run(args.seeds, args.epochs)
    report(args.seeds)


if __name__ == "__main__":
    main()
