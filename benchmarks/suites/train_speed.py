"""Training-step throughput: our objectives (output head only at labelled positions) against a plain
`model(**batch).loss` forward+backward of the same batch, for LoRA and full fine-tuning.

    python -m benchmarks train_speed [--model smollm2-135m] [--steps 6] [--batch 16]
        -> results/train_speed/objectives.json
    python -m benchmarks train_speed --layouts [--dataset industrial]
        -> results/train_speed/layouts-DATASET.json
    python -m benchmarks train_speed --layers 30 20 10 [--dataset industrial]
        -> results/train_speed/layers-DATASET.json
    python -m benchmarks train_speed --layers 30 10 --tuned-layers 10 [--dataset industrial]
        -> results/train_speed/tuned-layers-DATASET.json

`--layouts`: the default recipe's training data on real windows (ML-100K, or the data section of
`--dataset`), as it was (each atomic id then a line break, windows of 50 items, prompts left-filled to
32 tokens, one window a row), packed (one token an item, the short header, windows of up to 100
items, packed rows, each window with its own header) and as it is (the same, each row holding the
header once for all its windows): tokens per interaction (the tokens a step computes, pad aside),
rows and steps per epoch, and the median LoRA step (forward + backward, CatalogueLoss) of real
batches of each, alternating; an epoch's time is steps x the median step.

Two batch shapes: a next-item batch (128-token prompts, 4 labelled tokens each: 3 id tokens + EOS)
with `TokenLoss`, and an atomic-id window batch (128 tokens, every other token an item target) with
`CatalogueLoss`. Token values are random (speed does not depend on them); the model is the real one.
Variants alternate step by step (A B A B ...) so machine drift hits both alike; medians are quoted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import record
from benchmarks.data import data_section
from llmrec.backbone import load_model, resize_for_tokenizer, resolve_dtype
from llmrec.config import Config
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


def step_seconds(model, data: dict, loss_fn) -> float:
    t0 = time.perf_counter()
    loss = loss_fn(model, data)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


OLD_TEMPLATE = (  # item_list.j2 before one token an item: an 11-token header, a line break after each id
    "A user interacted with these items, oldest first:\n"
    "{% for item in history -%}\n{{ item.id }}\n{% endfor -%}\n"
)
LAYOUTS = {  # name: prompt settings, pack, one header a row
    "before": ({"item_separator": "line_break", "max_history": 50, "align_to": 32}, False, False),
    "packed": ({}, True, False),  # one token an item, packed rows, a header per window
    "after": ({}, True, True),  # the defaults
}


def layout_data(args, names: tuple[str, ...] = tuple(LAYOUTS)) -> tuple[dict, object, list[int]]:
    """The default recipe's training rows on real windows (ML-100K or `--dataset`) in each layout:
    counts and `args.steps` batches each; with the tokenizer and the item tokens."""
    import tempfile

    from llmrec.backbone import add_tokens, load_tokenizer
    from llmrec.data import leave_one_out, load_catalog
    from llmrec.ids import build_item_ids
    from llmrec.prompts import PromptBuilder, window_examples
    from llmrec.train.loop import collate
    from llmrec.train.packing import pack_examples

    source = (
        data_section(args.dataset) if args.dataset else {"format": "movielens", "path": "builtin:ml-100k"}
    )
    base = Config.model_validate({"data": source})
    split = leave_one_out(load_catalog(base.data))
    interactions = int(split.users["train"].map(len).sum())
    tokenizer = load_tokenizer(args.model)
    ids = build_item_ids(base.ids, split)
    add_tokens(tokenizer, ids.new_tokens)
    catalogue = set(tokenizer.convert_tokens_to_ids(ids.ids))
    old_template = Path(tempfile.mkdtemp()) / "item_list_before.j2"
    old_template.write_text(OLD_TEMPLATE)
    data = {}
    for name, (prompts, pack, share) in ((n, LAYOUTS[n]) for n in names):
        if name == "before":
            prompts = prompts | {"template": str(old_template)}
        cfg = Config.model_validate({"prompts": prompts, "train": {"pack": pack}})
        builder = PromptBuilder(cfg.prompts, tokenizer, ids.id_by_item)
        windows = window_examples(split, builder, None)["items"]
        examples = [
            dict(zip(("input_ids", "labels"), builder.encode_window(list(w)), strict=True)) for w in windows
        ]
        # rows as wide as `train` packs them
        width = max(cfg.prompts.max_prompt_tokens, *(len(x["input_ids"]) for x in examples))
        rows = pack_examples(examples, width, builder.header_ids if share else ()) if pack else examples
        tokens = sum(len(x["input_ids"]) for x in rows)
        batches = [
            collate(rows[i : i + args.batch], tokenizer.pad_token_id)
            for i in range(0, args.batch * args.steps, args.batch)
        ]
        steps = len(rows) // args.batch
        computed = steps * statistics.mean(b["input_ids"].numel() for b in batches)  # pad included
        data[name] = {
            "prompts": cfg.prompts.model_dump(include={"item_separator", "max_history", "align_to"}),
            "pack": pack,
            "header_once_a_row": share,
            "windows": len(examples),
            "rows": len(rows),
            "tokens": tokens,
            "tokens_per_interaction": round(tokens / interactions, 3),
            "computed_tokens_per_interaction": round(computed / interactions, 3),
            "item_targets": sum(t in catalogue for x in examples for t in x["labels"]),
            "steps_per_epoch": steps,
            "batches": batches,
        }
    return data, tokenizer, tokenizer.convert_tokens_to_ids(ids.ids)


def layouts(args) -> dict:
    """Tokens per interaction and epoch time of the default recipe's data, before and after."""
    data, tokenizer, items = layout_data(args)
    model = load_model(args.model, args.dtype)
    resize_for_tokenizer(model, tokenizer)
    model = LoraTuning().prepare(model, Config(), items)
    model.train()
    loss = CatalogueLoss(items, len(tokenizer))
    times = {name: [] for name in data}
    for name in data:  # warm-up
        step_seconds(model, data[name]["batches"][0], loss)
    for n in range(args.steps):
        for name in data:
            times[name].append(step_seconds(model, data[name]["batches"][n], loss))
    out = {}
    for name, row in data.items():
        batches = row.pop("batches")
        med = statistics.median(times[name])
        # item targets: a line break after an id is labelled too but certain, and CatalogueLoss skips it
        targets_per_step = statistics.mean(
            int(torch.isin(b["labels"], torch.tensor(items)).sum()) for b in batches
        )
        out[name] = row | {
            "median_step_s": round(med, 3),
            "step_s": [round(t, 3) for t in times[name]],
            "item_targets_per_s": round(targets_per_step / med, 1),
            "epoch_s": round(row["steps_per_epoch"] * med, 1),
        }
        print(name, json.dumps(out[name]))
    out["epoch_speedup"] = round(out["before"]["epoch_s"] / out["after"]["epoch_s"], 3)
    out["epoch_speedup_over_packed"] = round(out["packed"]["epoch_s"] / out["after"]["epoch_s"], 3)
    out["item_targets_per_s_ratio"] = round(
        out["after"]["item_targets_per_s"] / out["before"]["item_targets_per_s"], 3
    )
    return out


def forward_seconds(model, data: dict, loss_fn) -> float:
    """The same batch through the same path as the step (the loss included), without gradients."""
    t0 = time.perf_counter()
    with torch.no_grad():
        loss_fn(model, data)
    return time.perf_counter() - t0


def layer_costs(args) -> dict:
    """The default recipe's LoRA step (packed rows, CatalogueLoss) with the backbone cut to each of
    `args.layers` first layers (`model.layers`) and, on the whole body, with LoRA on only the top
    `args.tuned_layers` (`model.tuned_layers`), steps alternating between the settings: median step,
    tokens/s, an epoch's seconds, the body's forward FLOPs per token (2 x its non-embedding weights,
    attention aside) and the step over a forward pass of the same batch (the forward floor)."""
    data, tokenizer, items = layout_data(args, ("after",))
    row = data["after"]
    batches = row.pop("batches")
    settings = {str(n): {"layers": n} for n in args.layers}
    settings |= {f"top {n} tuned": {"tuned_layers": n} for n in args.tuned_layers or ()}
    models = {}
    for label, model_settings in settings.items():
        model = load_model(args.model, args.dtype, layers=model_settings.get("layers"))
        resize_for_tokenizer(model, tokenizer)
        body = sum(p.numel() for p in model.get_decoder().layers.parameters())
        cfg = Config.model_validate({"model": model_settings})
        models[label] = (LoraTuning().prepare(model, cfg, items).train(), body)
    loss = CatalogueLoss(items, len(tokenizer))
    steps = {n: [] for n in models}
    forward = {n: [] for n in models}
    for model, _ in models.values():  # warm-up
        step_seconds(model, batches[0], loss)
    for i in range(args.steps):
        for n, (model, _) in models.items():
            steps[n].append(step_seconds(model, batches[i], loss))
            forward[n].append(forward_seconds(model, batches[i], loss))
    tokens = statistics.mean(b["input_ids"].numel() for b in batches)
    out = {"rows": row, "layers": {}}
    for n, (_, body) in models.items():
        step, fwd = statistics.median(steps[n]), statistics.median(forward[n])
        out["layers"][n] = {
            "median_step_s": round(step, 3),
            "tokens_per_s": round(tokens / step, 1),
            "epoch_s": round(row["steps_per_epoch"] * step, 1),
            "body_forward_gflop_per_token": round(2 * body / 1e9, 3),
            "forward_s": round(fwd, 3),
            "step_over_forward": round(step / fwd, 2),
        }
        print(n, json.dumps(out["layers"][n]), flush=True)
    full = str(max(args.layers))
    for n in out["layers"]:
        out["layers"][n]["speedup_over_all"] = round(
            out["layers"][full]["median_step_s"] / out["layers"][n]["median_step_s"], 2
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layouts", action="store_true", help="before/after the one-token, packed layout")
    parser.add_argument("--dataset", help="--layouts: a benchmark data set (default: the built-in ML-100K)")
    parser.add_argument(
        "--layers", type=int, nargs="+", help="the step with the backbone cut to these layers"
    )
    parser.add_argument(
        "--tuned-layers",
        type=int,
        nargs="+",
        help="with --layers (the largest: the whole body): the "
        "step with LoRA on only these top layers of the whole body",
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    settings = {"model": args.model, "dtype": resolve_dtype(args.dtype), "batch": args.batch}
    if args.layers:
        result = layer_costs(args)
        tuned = args.tuned_layers or []
        record(
            "train_speed",
            ("tuned-layers-" if tuned else "layers-")
            + (args.dataset or "ml100k")
            + ("-avx2" if os.environ.get("ATEN_CPU_CAPABILITY") == "avx2" else ""),
            result,
            {f"{n} layers step s": v["median_step_s"] for n, v in result["layers"].items()}
            | {f"{n} layers speedup": v["speedup_over_all"] for n, v in result["layers"].items()},
            dataset=args.dataset or "ml100k",
            variant="layers " + " ".join(map(str, args.layers)) + "".join(f", top {n} tuned" for n in tuned),
            config=settings | {"steps": args.steps},
        )
        return
    if args.layouts:
        result = layouts(args)
        record(
            "train_speed",
            f"layouts-{args.dataset or 'ml100k'}",
            result,
            {
                "epoch speedup": result["epoch_speedup"],
                "tokens/interaction": result["after"]["tokens_per_interaction"],
                "median step s": result["after"]["median_step_s"],
            },
            dataset=args.dataset or "ml100k",
            variant="layouts",
            config=settings | {"steps": args.steps},
        )
        return

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
            row = {
                "finetune": type(tuning).__name__,
                "batch": kind,
                "objective": type(ours).__name__,
                "tokens_per_step": tokens,
                "targets_per_step": targets,
                "trainable_params": trainable,
                "steps": args.steps,
            }
            for name, secs in times.items():
                med = statistics.median(secs)
                row[name] = {
                    "median_step_s": round(med, 3),
                    "min_step_s": round(min(secs), 3),
                    "max_step_s": round(max(secs), 3),
                    "tokens_per_s": round(tokens / med, 1),
                    "target_tokens_per_s": round(targets / med, 1),
                }
            row["ours_speedup"] = round(
                statistics.median(p / o for p, o in zip(times["plain"], times["ours"], strict=True)), 3
            )
            print(json.dumps(row))
            results.append(row)
        del model
    lora = [r for r in results if r["finetune"] == "LoraTuning"]
    record(
        "train_speed",
        "objectives",
        {
            "what": "training step (forward + backward, no optimizer step) of the same batch: plain "
            "model(**batch).loss vs llmrec's objective (head only at labelled positions; catalogue rows only "
            "for atomic ids); random token values, real weights",
            "results": results,
        },
        {f"LoRA {r['batch']} speedup": r["ours_speedup"] for r in lora},
        dataset=None,
        variant="objectives",
        config=settings | {"width": args.width},
    )


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
