"""Seeds: each ML-100K recipe compared against SASRec-CE over its training seeds, from the committed
metrics files (one per seed, written by the command named for the recipe), into
docs/benchmarks/ml100k-seeds.json. A seed whose file is missing is listed as missing, never filled in.
Each recipe is also compared with SASRec-CE user by user (docs/benchmarks/lists/, each user's
top-10): a paired bootstrap of the per-user NDCG@10 difference, each user's NDCG@10 averaged over
the seeds whose lists were kept on each side, and the same per seed pair; "best" is the recipe with
the highest mean, "best_llm_alone" the best without SASRec-CE's help.

    python scripts/seeds_report.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
from paired_report import user_ndcgs as user_ndcgs_of

from llmrec.evaluate.metrics import paired_bootstrap

DOCS = Path("docs/benchmarks")


def seed_file(stem: str, seed: int, kind: str = "metrics") -> str:
    """Seed 0 is a recipe's plain row; other seeds add `-seedN` where the stem says `{seed}` (or at
    its end), as scripts/ml100k_full.sh and scripts/baselines.sh name them. kind: metrics or lists."""
    tag = "" if seed == 0 else f"-seed{seed}"
    name = stem.format(seed=tag) if "{seed}" in stem else stem + tag
    return f"{name}-{kind}-test.json" if kind == "metrics" else f"{name}-{kind}-test.parquet"


RECIPES = {
    # name: (command with {seed}, metrics file stem, lists file stem)
    "llm-atomic-lora-2epochs": (
        "bash scripts/ml100k_full.sh atomic --epochs 2 --seed {seed}",
        "ml100k-atomic-2epochs",
        "ml100k-atomic-2epochs",
    ),
    "llm-sasrec-semantic-lora-400steps": (
        "bash scripts/ml100k_full.sh sasrec-semantic --seed {seed}",
        "ml100k-sasrec-semantic",
        "ml100k-sasrec-semantic",
    ),
    # the hybrid: SASRec-CE (seed 0) shortlists 50, the atomic-id LLM of each seed scores, w from valid
    "hybrid-sasrec50-llm-atomic-lora-2epochs": (
        "python scripts/rerank.py scripts/ml100k_full.yaml --run runs/ml100k-atomic-2epochs{seed}/run "
        "--name ml100k-atomic-2epochs{seed} --candidates 50",
        "ml100k-atomic-2epochs{seed}-rerank",
        "ml100k-atomic-2epochs-hybrid",
    ),
}
SASREC = ("bash scripts/baselines.sh ml100k --seed {seed}", "ml100k-sasrec", "ml100k-sasrec")
SEEDS = (0, 1, 2)


def summarise(command: str, stem: str, lists_stem: str) -> dict:
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


def user_ndcgs(stem: str, seed: int) -> pd.Series | None:
    """Per-user NDCG@10 of one seed's run, indexed by user; None if its lists were not kept."""
    path = DOCS / "lists" / seed_file(stem, seed, "lists")
    return user_ndcgs_of(path) if path.exists() else None


def paired(stem: str, base_stem: str) -> dict | None:
    """Ours against SASRec-CE user by user, over the seeds whose lists were kept on each side."""
    ours = {seed: v for seed in SEEDS if (v := user_ndcgs(stem, seed)) is not None}
    theirs = {seed: v for seed in SEEDS if (v := user_ndcgs(base_stem, seed)) is not None}
    if not ours or not theirs:
        return None
    mean_ours = sum(ours.values()) / len(ours)
    mean_theirs = (sum(theirs.values()) / len(theirs)).loc[mean_ours.index]
    return {
        "metric": "per-user NDCG@10, ours minus SASRec-CE; bootstrap over users (10,000 resamples)",
        "seeds": {"ours": sorted(ours), "sasrec": sorted(theirs)},
        "seed_means": paired_bootstrap((mean_ours - mean_theirs).to_numpy()),
        "per_seed": {
            str(seed): paired_bootstrap((ours[seed] - theirs[seed].loc[ours[seed].index]).to_numpy())
            for seed in SEEDS
            if seed in ours and seed in theirs
        },
    }


def main() -> None:
    recipes = {name: summarise(*spec) for name, spec in RECIPES.items()}
    sasrec = summarise(*SASREC)
    for name, (_, _, lists_stem) in RECIPES.items():
        recipes[name]["paired_vs_sasrec"] = paired(lists_stem, SASREC[2])
    recipes["hybrid-sasrec50-llm-atomic-lora-2epochs"]["note"] = (
        "every seed's LLM scores the shortlist of SASRec-CE seed 0 (runs/ml100k/baselines/sasrec/model.pt)"
    )
    ranked = [n for n, r in recipes.items() if r["mean_ndcg@10"] is not None]
    best = max(ranked, key=lambda n: recipes[n]["mean_ndcg@10"]) if ranked else None
    alone = [n for n in ranked if n.startswith("llm-")]
    best_alone = max(alone, key=lambda n: recipes[n]["mean_ndcg@10"]) if alone else None
    out = {"users": 943, "recipes": recipes, "sasrec": sasrec, "best": best, "best_llm_alone": best_alone}
    if best is not None and sasrec["mean_ndcg@10"]:
        for key, name in (("best", best), ("best_llm_alone", best_alone)):
            out[f"{key}_over_sasrec_mean_ndcg@10"] = recipes[name]["mean_ndcg@10"] / sasrec["mean_ndcg@10"]
            out[f"{key}_vs_sasrec_paired"] = recipes[name]["paired_vs_sasrec"]
    (DOCS / "ml100k-seeds.json").write_text(json.dumps(out, indent=2) + "\n")
    for name, row in (*recipes.items(), ("sasrec-ce", sasrec)):
        mean, sd = row["mean_ndcg@10"], row["sd_ndcg@10"]
        print(f"{name}: seeds {row['seeds']} NDCG@10 {row['ndcg@10']} mean {mean} sd {sd}")


if __name__ == "__main__":
    main()
