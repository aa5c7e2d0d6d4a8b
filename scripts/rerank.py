"""Lever: SASRec-CE candidates reranked by the fine-tuned LLM (the LlamaRec recipe), on one split.

SASRec (the baseline's saved weights, or a fresh fit) shortlists N items per user; the LLM scores
every shortlisted item exactly (`Recommender.recommend(candidates=...)`: constrained beam search
restricted to the shortlist, beam = N); the final score is `sasrec_logit + w * llm_logprob`, with
`w` chosen on the validation split (w = 0 is SASRec itself, so validation can only pick a mix that
helped there). Test metrics for SASRec alone, the LLM alone on the shortlist, and the mix, all
through `ranking_metrics`, are written to docs/benchmarks/<name>-rerank-metrics-test.json, with a
paired comparison of the mix against SASRec alone (per-user NDCG@10: bootstrap 95% interval of the
mean difference and a paired t-test), since one split's gain can be noise.

    python scripts/rerank.py scripts/ml100k_full.yaml --run runs/ml100k/run --name ml100k
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from llmrec.config import load_config
from llmrec.evaluate import ranking_metrics
from llmrec.evaluate.metrics import user_ndcg
from llmrec.evaluate.sasrec import SasrecRecommender
from llmrec.generate import Recommender
from llmrec.io import atomic_path
from llmrec.train.run_dir import RunDir

WEIGHTS = [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, float("inf")]


def shortlist_scores(sasrec, rec, split, name, n):
    users = split.eval_users(name)
    histories = split.histories(users, name)
    logits = sasrec.logits(histories)
    top = torch.topk(logits, n, dim=-1)
    candidates = [[sasrec.items[j] for j in row] for row in top.indices.tolist()]
    t0 = time.time()
    llm = rec.recommend(histories, k=n, candidates=candidates, progress=True)
    llm_s = time.time() - t0
    rows = []
    for cands, s_scores, recs in zip(candidates, top.values.tolist(), llm, strict=True):
        by_item = {r.item: r.score for r in recs}
        floor = min(by_item.values()) - 1.0 if by_item else -100.0  # never happens: the beam is exhaustive
        rows.append([(c, s, by_item.get(c, floor)) for c, s in zip(cands, s_scores, strict=True)])
    return users[name].tolist(), rows, llm_s


def mix(rows, w: float, k: int = 10) -> list[list[str]]:
    def key(row):
        _, sasrec, llm = row
        return (llm, sasrec) if w == float("inf") else (sasrec + w * llm, llm)

    return [[c for c, _, _ in sorted(r, key=key, reverse=True)[:k]] for r in rows]


def paired_comparison(targets: list[str], ours: list[list[str]], base: list[list[str]]) -> dict:
    """Per-user NDCG@10 of `ours` minus `base`: mean, bootstrap 95% interval, paired t-test p-value."""
    diff = np.array([user_ndcg(t, a) - user_ndcg(t, b) for t, a, b in zip(targets, ours, base, strict=True)])
    if not diff.any():  # the same lists (validation chose w = 0): no difference, and nothing to resample
        low, high, p = 0.0, 0.0, 1.0
    else:
        boot = stats.bootstrap((diff,), np.mean, n_resamples=10_000, rng=np.random.default_rng(0))
        (low, high), p = boot.confidence_interval, stats.ttest_1samp(diff, 0.0).pvalue
    return {
        "mean_ndcg@10_gain": round(float(diff.mean()), 5),
        "bootstrap_95": [round(float(low), 5), round(float(high), 5)],
        "ttest_p": round(float(p), 4),
        "users_better": int((diff > 0).sum()),
        "users_worse": int((diff < 0).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--run", required=True, help="the trained LLM run")
    parser.add_argument("--name", required=True, help="docs/benchmarks/<name>-rerank-metrics-test.json")
    parser.add_argument("--candidates", type=int, default=20)
    args = parser.parse_args()

    cfg = load_config(args.config)
    # the split the LLM run was prepared on (every run of one dataset shares it), so that a run can
    # be reranked without the config's own prepared folder
    split = RunDir(args.run).load_split()
    catalogue = set(split.items["item"])
    sasrec = SasrecRecommender(split, cfg.baselines.sasrec)
    weights = Path(cfg.baselines_dir) / "sasrec" / "model.pt"
    if weights.exists():
        sasrec.load(weights)
    else:
        sasrec.fit(split, cfg.generate.exclude_history)
        sasrec.save(weights)
    rec = Recommender.from_run(args.run, backend="hf")

    valid_targets, valid_rows, valid_s = shortlist_scores(sasrec, rec, split, "valid", args.candidates)
    sweep = {
        str(w): ranking_metrics(valid_targets, mix(valid_rows, w), catalogue)["ndcg@10"] for w in WEIGHTS
    }
    best_w = max(WEIGHTS, key=lambda w: (sweep[str(w)], -w))
    print("valid ndcg@10 by weight:", json.dumps(sweep), "-> w =", best_w, flush=True)

    test_targets, test_rows, test_s = shortlist_scores(sasrec, rec, split, "test", args.candidates)
    models = {"sasrec": 0.0, "llm_on_shortlist": float("inf"), "mix": best_w}
    lists = {name: mix(test_rows, w) for name, w in models.items()}
    result = {name: ranking_metrics(test_targets, lists[name], catalogue) for name in models}
    recall = sum(t in {c for c, _, _ in r} for t, r in zip(test_targets, test_rows, strict=True))
    out = result["mix"] | {
        "split": "test",
        "model": f"SASRec-CE top-{args.candidates} reranked by the LLM, w chosen on valid",
        "weight": best_w,
        "valid_ndcg@10_by_weight": sweep,
        "shortlist_recall": round(recall / len(test_targets), 4),
        "parts": {k: v for k, v in result.items() if k != "mix"},
        "mix_vs_sasrec": paired_comparison(test_targets, lists["mix"], lists["sasrec"]),
        "llm_run": args.run,
        "config": args.config,
        "llm_scoring_wall_s": {"valid": round(valid_s, 1), "test": round(test_s, 1)},
    }
    path = Path("docs/benchmarks") / f"{args.name}-rerank-metrics-test.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, indent=2) + "\n")
    for name, m in result.items():
        print(f"{name:18s} ndcg@10 {m['ndcg@10']:.4f}  hr@10 {m['hr@10']:.4f}")
    print("mix vs sasrec (paired, per user):", json.dumps(out["mix_vs_sasrec"]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
