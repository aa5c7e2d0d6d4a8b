"""Seeds: each ML-100K recipe compared against SASRec-CE over its training seeds, from the committed
metrics files (one per seed, written by the command named for the recipe), into
docs/benchmarks/ml100k-seeds.json. A seed whose file is missing is listed as missing, never filled in.

    python scripts/seeds_report.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

DOCS = Path("docs/benchmarks")


def seed_file(stem: str, seed: int) -> str:
    """Seed 0 is a recipe's plain row; other seeds add `-seedN` to the name (scripts/ml100k_full.sh)."""
    return f"{stem}-metrics-test.json" if seed == 0 else f"{stem}-seed{seed}-metrics-test.json"


RECIPES = {
    # name: (command with {seed}, file stem)
    "llm-atomic-lora-2epochs": (
        "bash scripts/ml100k_full.sh atomic --epochs 2 --seed {seed}",
        "ml100k-atomic-2epochs",
    ),
    "llm-sasrec-semantic-lora-400steps": (
        "bash scripts/ml100k_full.sh sasrec-semantic --seed {seed}",
        "ml100k-sasrec-semantic",
    ),
}
SASREC = ("bash scripts/baselines.sh ml100k --seed {seed}", "ml100k-sasrec")
SEEDS = (0, 1, 2)


def summarise(command: str, stem: str) -> dict:
    row: dict = {
        "command": command,
        "seeds": [],
        "ndcg@10": [],
        "hr@10": [],
        "train_s": [],
        "missing_seeds": [],
    }
    for seed in SEEDS:
        path = DOCS / seed_file(stem, seed)
        if not path.exists():
            row["missing_seeds"].append(seed)
            continue
        m = json.loads(path.read_text())
        assert m["users"] == 943, f"{path}: {m['users']} users"
        row["seeds"].append(seed)
        row["ndcg@10"].append(m["ndcg@10"])
        row["hr@10"].append(m["hr@10"])
        train = m.get("train", {})
        row["train_s"].append(train.get("train_wall_s", train.get("fit_wall_s")))
    for key in ("ndcg@10", "hr@10"):
        values = row[key]
        row[f"mean_{key}"] = statistics.mean(values) if values else None
        row[f"sd_{key}"] = statistics.stdev(values) if len(values) > 1 else None
    return row


def main() -> None:
    recipes = {name: summarise(*spec) for name, spec in RECIPES.items()}
    sasrec = summarise(*SASREC)
    ranked = [n for n, r in recipes.items() if r["mean_ndcg@10"] is not None]
    best = max(ranked, key=lambda n: recipes[n]["mean_ndcg@10"]) if ranked else None
    out = {"users": 943, "recipes": recipes, "sasrec": sasrec, "best": best}
    if best is not None and sasrec["mean_ndcg@10"]:
        out["best_over_sasrec_mean_ndcg@10"] = recipes[best]["mean_ndcg@10"] / sasrec["mean_ndcg@10"]
    (DOCS / "ml100k-seeds.json").write_text(json.dumps(out, indent=2) + "\n")
    for name, row in (*recipes.items(), ("sasrec-ce", sasrec)):
        mean, sd = row["mean_ndcg@10"], row["sd_ndcg@10"]
        print(f"{name}: seeds {row['seeds']} NDCG@10 {row['ndcg@10']} mean {mean} sd {sd}")


if __name__ == "__main__":
    main()
