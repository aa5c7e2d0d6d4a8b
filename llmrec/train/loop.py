"""The fine-tuning loop, with Accelerate. What trains (`finetune.py`: LoRA or every weight) and the
loss (`objectives.py`: next tokens, or a softmax over the catalogue) are chosen before it.

Accelerate owns device placement, mixed precision, gradient accumulation and the multi-process
path (`accelerate launch --cpu --num_processes 2 -m llmrec train ...`). The loss covers only the
target id tokens and their end token (EOS, or the line break of an item list). Every `save_every`
steps the resumable state is written atomically, so a killed run continues where it stopped; the
adapter with the best validation NDCG@10 is kept.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
)

from llmrec.config import Config, TrainConfig
from llmrec.errors import InputError
from llmrec.io import atomic_path, write_json
from llmrec.model.time_gaps import gap_context
from llmrec.prompts import encode_prompts
from llmrec.run_dir import RunDir
from llmrec.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from llmrec.train.finetune import FullTuning, LoraTuning
from llmrec.train.objectives import CatalogueLoss, TokenLoss

Example = dict[str, list[int]]


def encode_examples(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], target_tokens: list[list[int]], align_to: int = 1
) -> list[Example]:
    """input_ids = prompt (aligned as at inference) + id tokens + EOS; labels mask the prompt with -100."""
    prompt_ids = encode_prompts(tokenizer, prompts, align_to)
    out = []
    for p, t in zip(prompt_ids, target_tokens, strict=True):
        answer = [*t, tokenizer.eos_token_id]
        out.append({"input_ids": p + answer, "labels": [-100] * len(p) + answer})
    return out


def collate(batch: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors; packed rows (`packing.PackedRows`) also carry their `position_ids` and
    `segment_ids`, and time-gap examples their `gaps` (0 on the pad)."""
    width = max(len(x["input_ids"]) for x in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    packed = "position_ids" in batch[0]
    positions = torch.zeros((len(batch), width), dtype=torch.long)
    segments = torch.zeros((len(batch), width), dtype=torch.long)
    for r, x in enumerate(batch):
        n = len(x["input_ids"])
        ids[r, :n] = torch.tensor(x["input_ids"])
        labels[r, :n] = torch.tensor(x["labels"])
        mask[r, :n] = 1
        if packed:
            positions[r, :n] = torch.tensor(x["position_ids"])
            segments[r, :n] = torch.tensor(x["segment_ids"])
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if "gaps" in batch[0]:
        gaps = torch.zeros((len(batch), width), dtype=torch.long)
        for r, x in enumerate(batch):
            gaps[r, : len(x["gaps"])] = torch.tensor(x["gaps"])
        out["gaps"] = gaps
    return out | {"position_ids": positions, "segment_ids": segments} if packed else out


def patience_stops(tc: TrainConfig, stale: int, step: int) -> bool:
    """Whether early stopping ends training now: `tc.patience` validations in a row without a better
    NDCG@10, and at least `tc.min_steps` steps trained (earlier validations are too noisy to stop on)."""
    return bool(tc.patience) and stale >= tc.patience and step >= tc.min_steps


def fit(
    cfg: Config,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    run: RunDir,
    validate: Callable[[PreTrainedModel], dict[str, float]] | None = None,
    *,
    tuning: LoraTuning | FullTuning,
    objective: TokenLoss | CatalogueLoss,
    info: dict | None = None,
) -> dict:
    """Train `model` (already prepared by `tuning`) on `objective`; returns a summary.
    `validate(model)` returns metrics including 'ndcg@10'; the best weights go to RUN_DIR/<tuning.folder>
    and are loaded back into `model` when training stops. `info` joins the summary (what the data was)."""
    tc = cfg.train
    # cpu=True without CUDA makes torchrun-started processes (`accelerate launch --multi_gpu`,
    # `torchrun --nproc_per_node N`) one multi-CPU (gloo) job instead of N independent runs.
    tracking = tc.log_with != "none"
    accelerator = Accelerator(
        gradient_accumulation_steps=tc.grad_accum,
        cpu=not torch.cuda.is_available(),
        log_with=tc.log_with if tracking else None,
        project_dir=run.path / "tracking",
    )
    if accelerator.num_processes == 1 and os.environ.get("MASTER_ADDR") and "WORLD_SIZE" not in os.environ:
        accelerator.print(
            "note: started by a launcher that asked for several processes but started one; training in "
            "one process. For N CPU processes use `accelerate launch --cpu --num_processes N -m llmrec "
            "train ...` or `torchrun --nproc_per_node N -m llmrec train ...`."
        )
    if accelerator.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # processes share the cores: don't oversubscribe them (an explicit OMP_NUM_THREADS wins)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // accelerator.num_processes))
    set_seed(tc.seed)
    # Per process, an epoch is a whole number of optimizer steps (the remainder is dropped), so a
    # resumed run can skip to exactly where it stopped.
    batches_per_epoch = max(1, len(examples) // (tc.batch_size * accelerator.num_processes))
    steps_per_epoch = max(1, batches_per_epoch // tc.grad_accum)
    total = tc.max_steps if tc.max_steps is not None else max(1, math.ceil(tc.epochs * steps_per_epoch))
    if tc.eval_every == "epoch":
        eval_every = steps_per_epoch * math.ceil(tc.eval_min_gap / steps_per_epoch)
    else:
        eval_every = tc.eval_every
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    warmup = min(tc.warmup_steps, total // 10 + 1)
    if tc.schedule == "cosine":
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, total)
    else:
        scheduler = get_constant_schedule_with_warmup(optimizer, warmup)
    model, optimizer = accelerator.prepare(model, optimizer)

    step, best, best_metrics, elapsed_before, stale, stop_reason = 0, -1.0, {}, 0.0, 0, ""
    best_step, validated_at = 0, -1
    if has_checkpoint(run.checkpoint):
        weights, optimizer_state, scheduler_state, state = load_checkpoint(run.checkpoint)
        tuning.load_state(accelerator.unwrap_model(model), weights)
        optimizer.optimizer.load_state_dict(optimizer_state)
        scheduler.load_state_dict(scheduler_state)
        step, best, best_metrics = state["step"], state["best"], state.get("best_metrics", {})
        elapsed_before, stale = state.get("elapsed", 0.0), state.get("stale", 0)
        best_step, validated_at = state.get("best_step", 0), state.get("validated_at", -1)
        if patience_stops(tc, stale, step):
            total, stop_reason = step, "patience"  # it had stopped early; a larger budget does not undo that
        accelerator.print(f"resuming from step {step} of {total}")
    if accelerator.is_main_process and (torn := _truncate_log(run.log, step)):
        lines = ", ".join(map(str, torn[:5]))
        accelerator.print(f"warning: {run.log}: dropped {len(torn)} torn line(s) (line {lines}), left by a "
                          "write that was cut short")  # fmt: skip
    if tracking:
        accelerator.init_trackers(run.path.name, config=tracker_config(cfg))

    def log(record: dict) -> None:
        """One line of RUN_DIR/train_log.jsonl, and the same numbers to the tracker (train.log_with)."""
        _log(run.log, record)
        if tracking:
            numbers = {k: v for k, v in record.items() if k != "step" and isinstance(v, int | float)}
            accelerator.log(numbers, step=record["step"])

    def save_state() -> None:
        if not accelerator.is_main_process:
            return
        state = {
            "step": step,
            "best": best,
            "best_metrics": best_metrics,
            "best_step": best_step,
            "validated_at": validated_at,
            "elapsed": elapsed_before + time.time() - start,
            "stale": stale,
        }
        save_checkpoint(run.checkpoint, tuning.state(accelerator.unwrap_model(model)),
                        optimizer.optimizer.state_dict(), scheduler.state_dict(), state)  # fmt: skip

    def run_validation() -> None:
        nonlocal best, best_metrics, stale, best_step, validated_at
        validated_at = step
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            metrics = validate(unwrapped) if validate else {}
            unwrapped.train()
            log({"step": step, "epoch": round(step / steps_per_epoch, 2),
                 **{f"valid_{k}": v for k, v in metrics.items()}})  # fmt: skip
            score = metrics.get("ndcg@10", 0.0)
            best_path = run.path / tuning.folder
            stale = 0 if validate is None or score > best else stale + 1
            if stale == 0 or not best_path.exists():
                best, best_metrics, best_step = score, metrics, step
                with atomic_path(best_path, kind=tuning.kind) as tmp:
                    tuning.save(unwrapped, tmp, tokenizer)
            accelerator.print(f"step {step}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        accelerator.wait_for_everyone()
        # every process must stop at the same step: the main one decides
        stale = int(accelerator.gather(torch.tensor([stale], device=accelerator.device))[0])

    def out_of_time() -> bool:
        if tc.max_minutes is None:
            return False
        late = elapsed_before + time.time() - start > tc.max_minutes * 60
        # every process must stop at the same step: the main one decides
        return bool(accelerator.gather(torch.tensor([int(late)], device=accelerator.device))[0])

    model.train()
    start = time.time()
    tokens = 0
    bar = tqdm(
        total=total, initial=step, desc="training", unit="step", disable=not accelerator.is_local_main_process
    )
    pad_id = tokenizer.pad_token_id
    if 0 < step < total and out_of_time():  # resumed with its time already spent
        stop_reason, total = "max_minutes", step
    if step == 0 < total and cfg.model.start_from is not None and validate is not None:
        # a run started from another is validated before it trains: where tuning on this domain
        # only loses (a few users, say), the best weights stay the ones it started from
        run_validation()
    while step < total:
        epoch, within = divmod(step, steps_per_epoch)
        order = torch.randperm(
            len(examples), generator=torch.Generator().manual_seed(tc.seed + epoch)
        ).tolist()
        loader = DataLoader(
            InOrder(examples, order),  # read as the loader asks: a memory-mapped table stays on disk
            batch_size=tc.batch_size,
            drop_last=len(examples) >= tc.batch_size * accelerator.num_processes,  # else no batch at all
            collate_fn=lambda b: collate(b, pad_id),
        )
        loader = accelerator.prepare_data_loader(loader)
        loader = accelerator.skip_first_batches(loader, within * tc.grad_accum)
        for batch in loader:
            with accelerator.accumulate(model), gap_context(model, batch.get("gaps")):
                loss = objective(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad()
            tokens += int(batch["attention_mask"].sum()) * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if accelerator.is_main_process and (step % tc.log_every == 0 or step == total):
                secs = time.time() - start
                log(
                    {
                        "step": step,
                        "loss": round(loss.item(), 4),
                        "lr": scheduler.get_last_lr()[0],
                        "tokens_per_s": round(tokens / max(secs, 1e-9), 1),
                        "elapsed_s": round(secs, 1),
                    },
                )
            if eval_every and step % eval_every == 0 and step < total:
                run_validation()
                if patience_stops(tc, stale, step):
                    stop_reason = "patience"
                    accelerator.print(
                        f"stopping early at step {step}: no better validation NDCG@10 in {stale} evaluations"
                    )
                    total = step
            if step < total and out_of_time():
                stop_reason = "max_minutes"
                accelerator.print(f"stopping at step {step}: train.max_minutes ({tc.max_minutes}) reached")
                total = step
            if step % tc.save_every == 0 or step == total:
                save_state()
            if step >= total or step % steps_per_epoch == 0:
                break
    bar.close()
    if not stop_reason:
        stop_reason = "max_steps" if tc.max_steps is not None else "epochs"
    if validated_at != step:
        run_validation()
    save_state()
    if accelerator.is_main_process:
        log({"step": step, "stop_reason": stop_reason, "best_step": best_step})
    accelerator.print(
        f"training stopped ({STOP_REASONS[stop_reason]}) at step {step}; the best weights (step {best_step}, "
        f"validation NDCG@10 {best:.4f}) are in {run.path / tuning.folder}"
    )
    if best_step != step and (run.path / tuning.folder).exists():
        tuning.load_saved(accelerator.unwrap_model(model), run.path / tuning.folder)
    summary = {
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "epochs_run": round(step / steps_per_epoch, 2),
        "best_step": best_step,
        "best_epoch": round(best_step / steps_per_epoch, 2),
        "stop_reason": stop_reason,
        "stopped_early": stop_reason == "patience",
        "examples": len(examples),
        "batch_size": tc.batch_size,
        "grad_accum": tc.grad_accum,
        "processes": accelerator.num_processes,
        "dtype": str(accelerator.unwrap_model(model).dtype).removeprefix("torch."),
        "finetune": type(tuning).__name__,
        "objective": type(objective).__name__,
        "trainable_params": sum(p.numel() for p in params),
        "train_wall_s": round(elapsed_before + time.time() - start, 1),
        "best_valid": best_metrics,
        **(info or {}),
    }
    if accelerator.is_main_process:
        write_json(run.summary, summary)
    if tracking:
        accelerator.end_training()
    return summary


TRACKER_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def check_tracker(cfg: Config) -> None:
    """Before any model loads: the package train.log_with needs is installed."""
    package = TRACKER_PACKAGES.get(cfg.train.log_with)
    if package and importlib.util.find_spec(package) is None:
        raise InputError(
            f"train.log_with: {cfg.train.log_with} needs the {package} package: pip install "
            f"'llmrec[tracking]' (tensorboard) or pip install {package}",
            field="train.log_with",
        )


def tracker_config(cfg: Config) -> dict:
    """The run's settings as the flat scalars trackers record as hyperparameters."""
    flat = {}
    for section in ("ids", "prompts", "model", "train"):
        for key, value in getattr(cfg, section).model_dump(mode="json").items():
            if isinstance(value, bool | int | float | str):
                flat[f"{section}.{key}"] = value
    return flat


STOP_REASONS = {
    "patience": "validation NDCG@10 stopped improving",
    "max_minutes": "the wall-time cap, train.max_minutes",
    "epochs": "the epoch cap, train.epochs",
    "max_steps": "train.max_steps",
}


class InOrder(torch.utils.data.Dataset):
    """`examples` (a list, packed rows, a Hugging Face Dataset) read in `order`, one at a time."""

    def __init__(self, examples: Sequence[Example], order: list[int]) -> None:
        self.examples, self.order = examples, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, n: int) -> Example:
        return self.examples[self.order[n]]


def _log(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, step: int) -> list[int]:
    """After a resume, drop log lines written after the checkpoint (they will be redone), and any
    torn line (what a full disk or a power cut leaves at the end): their line numbers are returned."""
    if not path.exists():
        return []
    keep, torn = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            torn.append(number)
            continue
        if isinstance(record, dict) and record.get("step", 0) <= step:
            keep.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep))
    return torn
