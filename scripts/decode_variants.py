"""Diagnostic: one trained run decoded with other settings (beam width, history shown), side by side.

Is the LLM's deficit the model or the search? A wider beam that finds better items says search; a
shorter history that scores better says the prompts differ from what training showed. Every variant
decodes the same users of one split with the same adapter, through `ranking_metrics`, and the results
go to docs/benchmarks/<name>-decode-variants.json.

    python scripts/decode_variants.py runs/ml100k-sasrec-semantic/run --name ml100k-sasrec-semantic \\
        --variant generate.num_beams=50 --variant prompts.max_history=8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from llmrec.config import Config, apply_overrides
from llmrec.evaluate import ranking_metrics
from llmrec.generate import Recommender
from llmrec.io import atomic_path
from llmrec.train.run_dir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--name", required=True, help="docs/benchmarks/<name>-decode-variants.json")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--variant", action="append", default=[], help="dotted.key=value (YAML), repeatable")
    args = parser.parse_args()

    run = RunDir(args.run)
    cfg = run.load_config()
    split = run.load_split()
    users = split.eval_users(args.split)
    histories, targets = split.histories(users, args.split), users[args.split].tolist()
    rec = Recommender.from_run(run.path, backend="hf")
    catalogue = set(rec.item_ids.items)
    results = {}
    for variant in ["run's own settings", *args.variant]:
        overrides = [variant] if "=" in variant else []
        settings = Config.model_validate(apply_overrides(cfg.model_dump(), overrides, run.config))
        decoder = Recommender(
            rec.model, rec.tokenizer, rec.item_ids, rec.titles, settings.prompts, settings.generate
        )
        t0 = time.time()
        lists = decoder.recommend(histories, k=10, progress=True)
        metrics = ranking_metrics(targets, [[r.item for r in row] for row in lists], catalogue)
        results[variant] = metrics | {"generate_wall_s": round(time.time() - t0, 1)}
        print(f"{variant:40s} ndcg@10 {metrics['ndcg@10']:.4f}  hr@10 {metrics['hr@10']:.4f}", flush=True)
    path = Path("docs/benchmarks") / f"{args.name}-decode-variants.json"
    with atomic_path(path) as tmp:
        tmp.write_text(
            json.dumps({"run": args.run, "split": args.split, "variants": results}, indent=2) + "\n"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
