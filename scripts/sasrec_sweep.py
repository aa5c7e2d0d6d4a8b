"""SASRec-CE at its best, not at our defaults: a small sweep on the validation split (dropout, max
length, hidden size, one at a time around the config's settings), each setting trained with the
config's seed and early stopping. The setting with the best validation NDCG@10 is the one to put in
the config; test metrics are recorded beside it but never used to choose.

    python scripts/sasrec_sweep.py scripts/ml100k_full.yaml --name ml100k
    python scripts/sasrec_sweep.py scripts/industrial.yaml --name industrial

writes docs/benchmarks/<name>-sasrec-sweep.json (one row per setting: what changed, valid and test
NDCG@10 and HR@10, best epoch, training time; and the chosen setting).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmrec import recipes
from llmrec.config import load_config
from llmrec.io import write_json

VARIANTS = {  # name: changes to baselines.sasrec
    "config": {},
    "dropout 0.5": {"dropout": 0.5},
    "hidden 128": {"hidden": 128},
    "max_len 50": {"max_len": 50},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--name", required=True)
    parser.add_argument("--only", nargs="*", help="run these variants only (names as in VARIANTS)")
    args = parser.parse_args()
    out = Path("docs/benchmarks") / f"{args.name}-sasrec-sweep.json"
    rows = json.loads(out.read_text())["settings"] if out.exists() else {}  # resumable: done ones stay
    base = load_config(args.config)
    for name, changes in VARIANTS.items():
        if name in rows or (args.only and name not in args.only):
            continue
        settings = base.baselines.sasrec.model_copy(update=changes)
        if changes and settings == base.baselines.sasrec:
            continue  # the config already has it
        if changes:
            cfg = base.model_copy(deep=True)
            cfg.baselines.sasrec = settings
            cfg.baselines_dir = str(Path(base.baselines_dir).parent / f"sweep-{name.replace(' ', '-')}")
        else:  # the config's own setting is `llmrec baseline CONFIG`'s run (scripts/baselines.sh)
            cfg = base
        done = Path(cfg.baselines_dir) / "sasrec"
        trained = (done / "metrics-test.json").exists()
        if trained and load_config(done / "config.yaml").baselines.sasrec == settings:
            valid, test = (json.loads((done / f"metrics-{s}.json").read_text()) for s in ("valid", "test"))
        else:
            result = recipes.baseline(cfg, "sasrec")
            valid, test = result["valid"], result["test"]
        rows[name] = {
            "changes": changes,
            "settings": settings.model_dump(),
            "valid_ndcg@10": valid["ndcg@10"],
            "valid_hr@10": valid["hr@10"],
            "test_ndcg@10": test["ndcg@10"],
            "test_hr@10": test["hr@10"],
            "best_epoch": valid["train"]["best_epoch"],
            "train_s": valid["train"]["train_wall_s"],
        }
        if out.exists():  # variants may run in parallel processes: keep what the others wrote
            rows = json.loads(out.read_text())["settings"] | {name: rows[name]}
        chosen = max(rows, key=lambda n: rows[n]["valid_ndcg@10"])
        write_json(out, {"config": args.config, "chosen_on_valid": chosen, "settings": rows})
        print(f"{name}: valid NDCG@10 {valid['ndcg@10']:.4f}, test {test['ndcg@10']:.4f}", flush=True)


if __name__ == "__main__":
    main()
