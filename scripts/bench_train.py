"""Training-step throughput: our objectives (output head only at labelled positions) against a plain
`model(**batch).loss` forward+backward of the same batch, for LoRA and full fine-tuning.

    python scripts/bench_train.py [--model smollm2-135m] [--steps 6] [--batch 16]
        -> docs/benchmarks/train-throughput.json

Two batch shapes: a next-item batch (128-token prompts, 4 labelled tokens each: 3 id tokens + EOS)
with `TokenLoss`, and an atomic-id window batch (128 tokens, every other token an item target) with
`CatalogueLoss`. Token values are random (speed does not depend on them); the model is the real one.
Variants alternate step by step (A B A B ...) so machine drift hits both alike; medians are quoted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from llmrec.backbone import load_model, resize_for_tokenizer, resolve_dtype
from llmrec.config import Config
from llmrec.io import write_json
from llmrec.train.finetune import FullTuning, LoraTuning
from llmrec.train.objectives import CatalogueLoss, TokenLoss

CATALOGUE = 1682  # ML-100K's items, as new tokens


def batch(kind: str, size: int, width: int, vocab: int, items: list[int], seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    # text tokens: those below the first item token
    ids = torch.randint(0, min(items, default=vocab), (size, width), generator=gen)
    labels = torch.full_like(ids, -100)
    if kind == "next_item":
        labels[:, -4:] = ids[:, -4:]
    else:  # atomic window: item token, line break, item token, ...
        picks = torch.tensor(items)[torch.randint(0, len(items), (size, width // 2), generator=gen)]
        ids[:, 0::2] = picks
        labels[:, 2::2] = ids[:, 2::2]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def machine() -> dict:
    """What a timing was measured on (benchmarks compare only figures from one machine)."""
    return {
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def step_seconds(model, data: dict, loss_fn) -> float:
    t0 = time.perf_counter()
    loss = loss_fn(model, data)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--out", default="docs/benchmarks/train-throughput.json")
    args = parser.parse_args()
    torch.manual_seed(0)

    def plain(model, data):
        return model(**data).loss

    results = []
    for tuning in (LoraTuning(), FullTuning()):
        model = load_model(args.model, args.dtype)
        base_vocab = model.get_input_embeddings().weight.shape[0]

        vocab = base_vocab + CATALOGUE
        resize_for_tokenizer(model, range(vocab))  # the resize only needs the new length
        items = list(range(base_vocab, base_vocab + CATALOGUE))
        model = tuning.prepare(model, Config(), items)
        model.train()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        for kind, ours in (
            ("next_item", TokenLoss()),
            ("atomic_window", CatalogueLoss(items, vocab)),
        ):
            data = batch(kind, args.batch, args.width, vocab, items, seed=1)
            targets = int((data["labels"] != -100).sum())
            step_seconds(model, data, ours)  # warm-up
            times = {"plain": [], "ours": []}
            for _ in range(args.steps):
                times["plain"].append(step_seconds(model, data, plain))
                times["ours"].append(step_seconds(model, data, ours))
            tokens = args.batch * args.width
            row = {"finetune": type(tuning).__name__, "batch": kind, "objective": type(ours).__name__,
                   "tokens_per_step": tokens, "targets_per_step": targets, "trainable_params": trainable,
                   "steps": args.steps}  # fmt: skip
            for name, secs in times.items():
                med = statistics.median(secs)
                row[name] = {"median_step_s": round(med, 3), "min_step_s": round(min(secs), 3),
                             "max_step_s": round(max(secs), 3), "tokens_per_s": round(tokens / med, 1),
                             "target_tokens_per_s": round(targets / med, 1)}  # fmt: skip
            row["ours_speedup"] = round(
                statistics.median(p / o for p, o in zip(times["plain"], times["ours"], strict=True)), 3
            )
            print(json.dumps(row))
            results.append(row)
        del model
    write_json(
        Path(args.out),
        {
            "what": "training step (forward + backward, no optimizer step) of the same batch: plain "
            "model(**batch).loss vs llmrec's objective (head only at labelled positions; catalogue rows only "
            "for atomic ids); random token values, real weights",
            "model": args.model,
            "dtype": resolve_dtype(args.dtype),
            "machine": machine(),
            "batch": args.batch,
            "width": args.width,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
