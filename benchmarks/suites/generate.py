"""Benchmark: prefill-once beam search vs `model.generate` with the trie logits processor.

Same trained run, same prompts (test users), 20 beams, top-10, same user batch size; bf16 and fp32,
side by side in one process run. Writes results/generate/beam-search.json.

    python -m benchmarks generate --run runs/quickstart/run --users 16
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import record, test_histories
from llmrec.generate import Recommender


def timed(rec: Recommender, histories, reference: bool, k: int) -> tuple[float, list]:
    rec.recommend(histories[:1], k=k, reference=reference)  # warm-up
    t0 = time.perf_counter()
    out = rec.recommend(histories, k=k, reference=reference)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart/run")
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--beams", type=int, default=20)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)

    run, cfg, histories = test_histories(args.run, args.users)
    results = {}
    for dtype in ("bf16", "fp32"):
        rec = Recommender.from_run(run.path, dtype=dtype)
        rec.cfg.num_beams, rec.cfg.batch_size = args.beams, args.batch_size
        fast_s, fast = timed(rec, histories, reference=False, k=args.top_k)
        ref_s, ref = timed(rec, histories, reference=True, k=args.top_k)
        same = sum([r.item for r in a] == [r.item for r in b] for a, b in zip(fast, ref, strict=True))
        overlap = sum(len({r.item for r in a} & {r.item for r in b}) for a, b in zip(fast, ref, strict=True))
        results[dtype] = {
            "prefill_once_users_per_s": round(len(histories) / fast_s, 3),
            "generate_users_per_s": round(len(histories) / ref_s, 3),
            "speedup": round(ref_s / fast_s, 2),
            "identical_top_k_lists": f"{same}/{len(histories)}",
            "mean_overlap_at_k": round(overlap / (len(histories) * args.top_k), 4),
        }
        print(dtype, results[dtype], flush=True)
    report = {
        "what": "users/s of trie-constrained top-k: prefill-once beam search vs "
        "model.generate with the trie logits processor",
        "run": str(run.path),
        "model": cfg.model.name,
        "id_scheme": cfg.ids.scheme,
        "users": len(histories),
        "num_beams": args.beams,
        "top_k": args.top_k,
        "user_batch_size": args.batch_size,
        "results": results,
    }
    summary = {f"{d} speedup": r["speedup"] for d, r in results.items()}
    record("generate", "beam-search", report, summary, dataset=cfg.data.format, variant=cfg.ids.scheme)


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
