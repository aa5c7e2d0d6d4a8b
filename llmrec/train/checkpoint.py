"""The resumable training checkpoint, without pickle: tensors in safetensors, the rest in JSON.

RUN_DIR/checkpoint/ holds `weights.safetensors` (what the fine-tuning mode trains), `optimizer.safetensors`
(AdamW's per-parameter moments and step counts, keyed `<param index>.<name>`), and `state.json`
(the optimizer's parameter groups, the scheduler's state, the step, the best validation so far).
Loading one runs no code from the run folder, whoever wrote it: a run folder can be shared, copied
from a colleague or a bucket. A checkpoint of an older llmrec (`checkpoint/state.pt`, a pickle) is
refused with a message, never unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llmrec.errors import InputError
from llmrec.io import atomic_path

LEGACY = "state.pt"


def save_checkpoint(folder: Path, weights: dict, optimizer: dict, scheduler: dict, state: dict) -> None:
    """Write the checkpoint folder atomically (a kill mid-write leaves the previous one)."""
    moments = {
        f"{index}.{name}": value.detach().contiguous()
        for index, values in optimizer["state"].items()
        for name, value in values.items()
        if isinstance(value, torch.Tensor)
    }
    scalars = {
        str(index): {name: value for name, value in values.items() if not isinstance(value, torch.Tensor)}
        for index, values in optimizer["state"].items()
    }
    meta = {"param_groups": optimizer["param_groups"], "optimizer_scalars": scalars, "scheduler": scheduler,
            **state}  # fmt: skip
    with atomic_path(folder, kind="checkpoint") as tmp:
        tmp.mkdir()
        save_file({k: v.detach().contiguous() for k, v in weights.items()}, tmp / "weights.safetensors")
        save_file(moments, tmp / "optimizer.safetensors")
        (tmp / "state.json").write_text(json.dumps(meta, indent=1) + "\n")


def has_checkpoint(folder: Path) -> bool:
    return (folder / "state.json").exists() or (folder / LEGACY).exists()


def load_checkpoint(folder: Path) -> tuple[dict, dict, dict, dict]:
    """(weights, optimizer state dict, scheduler state dict, the rest) as `save_checkpoint` got them."""
    if (folder / LEGACY).exists() and not (folder / "state.json").exists():
        raise InputError(
            "this run's checkpoint was written by an older llmrec as a pickle, which llmrec no longer "
            "loads from a run folder (unpickling runs code). Its best weights (adapter/ or model/) still "
            "evaluate and recommend; to train on, delete the checkpoint folder and train again",
            path=folder / LEGACY,
        )
    name = "state.json"
    try:
        meta = json.loads((folder / name).read_text())
        name = "weights.safetensors"
        weights = load_file(folder / name)
        name = "optimizer.safetensors"
        moments = load_file(folder / name)
        name = "state.json"
        optimizer_state: dict[int, dict] = {}
        for index, scalars in meta.pop("optimizer_scalars").items():
            optimizer_state[int(index)] = dict(scalars)
        for key, value in moments.items():
            index, part = key.split(".", 1)
            optimizer_state.setdefault(int(index), {})[part] = value
        optimizer = {"state": optimizer_state, "param_groups": meta.pop("param_groups")}
        return weights, optimizer, meta.pop("scheduler"), meta
    except (OSError, ValueError, KeyError, AttributeError, SafetensorError) as exc:
        # written atomically, so damage came from outside (a full disk, a copy cut short, an edit)
        raise InputError(
            f"the training checkpoint is damaged ({type(exc).__name__}: {exc}). To train again from the "
            f"start, delete {folder} (the best weights so far stay in adapter/ or model/ until training "
            "saves better ones), or train into a new run_dir",
            path=folder / name,
        ) from exc
