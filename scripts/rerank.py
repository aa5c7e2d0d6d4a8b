"""The hybrid's report: SASRec-CE shortlists, the LLM scores (`llmrec.hybrid`, what
`generate.retriever: sasrec` serves), on the test split, against SASRec alone, with a paired test.

The run's retriever is fitted for a shortlist of --candidates items, reusing the SASRec-CE weights
`llmrec baseline CONFIG` saved (BASELINES_DIR/sasrec/model.pt) when they exist, so the comparison is
against exactly that baseline; the mixing weight is chosen on validation (w = 0 is SASRec itself).
Test metrics of SASRec alone, the LLM alone on the shortlist and the mix, all through
`ranking_metrics`, go to docs/benchmarks/<name>-rerank-metrics-test.json, with a paired bootstrap of
the mix against SASRec alone (per-user NDCG@10), since one split's gain can be noise.

    python scripts/rerank.py scripts/ml100k_full.yaml --run runs/ml100k/run --name ml100k
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from llmrec.config import load_config
from llmrec.evaluate import ranking_metrics
from llmrec.evaluate.metrics import paired_bootstrap, user_ndcg
from llmrec.hybrid import HybridRecommender, fit_retriever, mix
from llmrec.io import write_json
from llmrec.train.run_dir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the config whose baselines_dir holds SASRec-CE's weights")
    parser.add_argument("--run", required=True, help="the trained LLM run")
    parser.add_argument("--name", required=True, help="docs/benchmarks/<name>-rerank-metrics-test.json")
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--sasrec-weights", help="default: the config's BASELINES_DIR/sasrec/model.pt")
    args = parser.parse_args()

    cfg = load_config(args.config)
    weights = Path(args.sasrec_weights or Path(cfg.baselines_dir) / "sasrec" / "model.pt")
    fitted = fit_retriever(
        args.run, shortlist=args.candidates, sasrec_weights=weights if weights.exists() else None
    )
    hybrid = HybridRecommender.from_run(args.run, backend="hf")
    split = RunDir(args.run).load_split()
    users = split.eval_users("test")
    targets = users["test"].tolist()
    t0 = time.time()
    rows = hybrid.score_shortlists(split.histories(users, "test"), args.candidates, True, progress=True)
    test_s = time.time() - t0
    models = {"sasrec": 0.0, "llm_on_shortlist": math.inf, "mix": hybrid.weight}
    lists = {name: [[i for i, _ in top] for top in mix(rows, w, 10)] for name, w in models.items()}
    catalogue = set(split.items["item"])
    result = {name: ranking_metrics(targets, lists[name], catalogue) for name in models}
    recall = sum(t in {c for c, _, _ in r} for t, r in zip(targets, rows, strict=True)) / len(targets)
    diff = [
        user_ndcg(t, a) - user_ndcg(t, b)
        for t, a, b in zip(targets, lists["mix"], lists["sasrec"], strict=True)
    ]
    out = result["mix"] | {
        "split": "test",
        "model": f"SASRec-CE top-{args.candidates} reranked by the LLM, w chosen on valid",
        "weight": fitted["weight"],
        "valid_ndcg@10_by_weight": fitted["valid_ndcg@10_by_weight"],
        "shortlist_recall": round(recall, 4),
        "parts": {k: v for k, v in result.items() if k != "mix"},
        "mix_vs_sasrec": paired_bootstrap(diff),
        "llm_run": args.run,
        "config": args.config,
        "sasrec": fitted["sasrec"],
        "llm_scoring_wall_s": {"fit_and_valid": fitted["wall_s"], "test": round(test_s, 1)},
    }
    path = Path("docs/benchmarks") / f"{args.name}-rerank-metrics-test.json"
    write_json(path, out)
    for name, m in result.items():
        print(f"{name:18s} ndcg@10 {m['ndcg@10']:.4f}  hr@10 {m['hr@10']:.4f}")
    print("mix vs sasrec (paired, per user):", json.dumps(out["mix_vs_sasrec"]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
