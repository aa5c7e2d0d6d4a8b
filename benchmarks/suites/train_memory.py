"""Training memory: peak resident memory of LoRA and of full fine-tuning, each in a process of its
own, over the same steps (forward, backward, AdamW step) of an atomic-id window batch.

    python -m benchmarks train_memory [--model smollm2-135m] [--batch 16] [--width 128]
        -> results/train_memory/lora-vs-full.json

Peak resident memory (Linux ru_maxrss) after loading the model and after 3 optimizer steps; the
difference is what training adds (gradients, AdamW's two moments, activations). Times are not
measured here (the train_speed suite does, side by side).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from benchmarks.common import ROOT, peak_rss_mib, record
from llmrec.backbone import load_model, resize_for_tokenizer, resolve_dtype
from llmrec.config import Config
from llmrec.train.finetune import FullTuning, LoraTuning
from llmrec.train.objectives import CatalogueLoss

CATALOGUE = 1682  # ML-100K's items, as new tokens


def one(mode: str, model_name: str, dtype: str, size: int, width: int) -> dict:
    """Run in a fresh process: load, prepare `mode`, train 3 steps; report peak memory."""
    model = load_model(model_name, dtype)
    base_vocab = model.get_input_embeddings().weight.shape[0]
    resize_for_tokenizer(model, range(base_vocab + CATALOGUE))
    items = list(range(base_vocab, base_vocab + CATALOGUE))
    loaded = round(peak_rss_mib(), 1)
    tuning = LoraTuning() if mode == "lora" else FullTuning()
    model = tuning.prepare(model, Config(), items)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    loss_fn = CatalogueLoss(items, base_vocab + CATALOGUE)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, base_vocab, (size, width), generator=gen)
    ids[:, 0::2] = torch.tensor(items)[torch.randint(0, CATALOGUE, (size, width // 2), generator=gen)]
    labels = torch.full_like(ids, -100)
    labels[:, 2::2] = ids[:, 2::2]
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    for _ in range(3):
        loss_fn(model, data).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {
        "finetune": mode,
        "trainable_params": sum(p.numel() for p in params),
        "peak_rss_after_load_mib": loaded,
        "peak_rss_training_mib": round(peak_rss_mib(), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--one", choices=["lora", "full"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.model, args.dtype, args.batch, args.width)))
        return
    rows = []
    for mode in ("lora", "full"):
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.suites.train_memory",
            "--one",
            mode,
            "--model",
            args.model,
            "--dtype",
            args.dtype,
            "--batch",
            str(args.batch),
            "--width",
            str(args.width),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    ratio = rows[1]["peak_rss_training_mib"] / rows[0]["peak_rss_training_mib"]
    record(
        "train_memory",
        "lora-vs-full",
        {
            "what": "peak resident memory of one training process: 3 AdamW steps on an atomic-id window "
            "batch (CatalogueLoss), LoRA vs every weight; each mode in a fresh process",
            "catalogue_tokens": CATALOGUE,
            "results": rows,
            "full_over_lora_training_peak": round(ratio, 3),
        },
        {"LoRA peak MiB": rows[0]["peak_rss_training_mib"], "full / LoRA": round(ratio, 3)},
        variant="lora-vs-full",
        config={
            "model": args.model,
            "dtype": resolve_dtype(args.dtype),
            "batch": args.batch,
            "width": args.width,
        },
    )


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
