"""Time-gap embeddings (`prompts.time: gaps` with item-list prompts): two small learned tables, one
row per gap bucket (`llmrec.prompts.time`), added to the input embedding of the tokens that carry a
gap code, so a history's times reach the model without a token of their own.

Both tables start at zero (step 0 is exactly the model without time) and row 0 ("no gap": headers,
text, the fill) stays zero. The codes travel beside the input ids (a batch's `gaps`, a prompt's
`gap_codes`); `gap_context` hands them to a forward hook on the input embedding for one forward
pass, as the anchored rows do. The tables are saved beside the best weights
(`RUN_DIR/adapter/time_gaps.safetensors`, or `model/`), kept in the resumable checkpoint, and
attached again when a run is loaded (`attach_saved`).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from llmrec.io import atomic_path
from llmrec.prompts.time import BUCKETS

GAPS_FILE = "time_gaps.safetensors"  # beside the best weights (adapter/ or model/)


class TimeGapEmbedding(torch.nn.Module):
    """codes -> before[code % BUCKETS] + after[code // BUCKETS] (`llmrec.prompts.time.gap_code`)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.before = torch.nn.Embedding(BUCKETS, width, padding_idx=0)
        self.after = torch.nn.Embedding(BUCKETS, width, padding_idx=0)
        with torch.no_grad():
            self.before.weight.zero_()
            self.after.weight.zero_()
        self.codes: torch.Tensor | None = None  # this forward pass's codes (`gap_context`)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.before(codes % BUCKETS) + self.after(codes // BUCKETS)


def attach(model, gaps: TimeGapEmbedding) -> None:
    """Make `gaps` part of `model` (`model.time_gaps`: its parameters train with the rest) and add
    its rows to the input embeddings while `gap_context` holds codes."""
    model.time_gaps = gaps

    def add_gaps(module, args, output):
        if gaps.codes is None:  # no times: the model as trained without them at these tokens
            return output
        if gaps.codes.shape != args[0].shape:
            raise RuntimeError(f"gap codes {tuple(gaps.codes.shape)} do not match the input ids "
                               f"{tuple(args[0].shape)}")  # fmt: skip
        weight = gaps.before.weight
        return output + gaps(gaps.codes.to(weight.device)).to(output.dtype)

    model.get_input_embeddings().register_forward_hook(add_gaps)


def gap_context(model, codes: torch.Tensor | None):
    """A context in which `model`'s forward passes add the gap rows of `codes` (same shape as the
    input ids); a no-op for a model without time gaps or without codes."""
    inner = getattr(model, "module", model)  # DistributedDataParallel
    gaps = getattr(inner, "time_gaps", None)
    if gaps is None or codes is None:
        return nullcontext()
    return _holding(gaps, codes)


@contextmanager
def _holding(gaps: TimeGapEmbedding, codes: torch.Tensor):
    gaps.codes = codes
    try:
        yield
    finally:
        gaps.codes = None


def save_gaps(gaps: TimeGapEmbedding, folder: Path) -> None:
    with atomic_path(folder / GAPS_FILE) as tmp:
        save_file({k: v.detach().contiguous() for k, v in gaps.state_dict().items()}, str(tmp))


def attach_saved(model, folder: Path) -> bool:
    """Attach the tables saved in `folder` (a run's best weights) to a loaded model; False if none."""
    path = Path(folder) / GAPS_FILE
    if not path.exists():
        return False
    gaps = TimeGapEmbedding(model.get_input_embeddings().weight.shape[1])
    gaps.load_state_dict(load_file(str(path)))
    attach(model, gaps.to(model.get_input_embeddings().weight.device))
    return True


class TimedTuning:
    """A fine-tuning mode (`finetune.LoraTuning`/`FullTuning`, or `anchored.AnchoredTuning`) plus the
    time-gap tables: in the checkpoint state, saved and loaded beside the weights."""

    PREFIX = "time_gaps."

    def __init__(self, inner, width: int) -> None:
        self.inner, self.gaps = inner, TimeGapEmbedding(width)
        self.folder, self.kind = inner.folder, inner.kind

    def validator(self, validate):
        """The inner mode's (`AnchoredTuning` writes its rows in before validating)."""
        return self.inner.validator(validate)

    def prepare(self, model, cfg, new_token_ids: list[int]):
        model = self.inner.prepare(model, cfg, new_token_ids)
        weight = model.get_input_embeddings().weight
        attach(model, self.gaps.to(device=weight.device))
        return model

    def state(self, model) -> dict:
        mine = {self.PREFIX + k: v.detach().clone() for k, v in self.gaps.state_dict().items()}
        return self.inner.state(model) | mine

    def load_state(self, model, state: dict) -> None:
        self.gaps.load_state_dict({k.removeprefix(self.PREFIX): v for k, v in state.items()
                                   if k.startswith(self.PREFIX)})  # fmt: skip
        self.inner.load_state(model, {k: v for k, v in state.items() if not k.startswith(self.PREFIX)})

    def save(self, model, folder: Path, tokenizer) -> None:
        self.inner.save(model, folder, tokenizer)
        save_gaps(self.gaps, folder)

    def load_saved(self, model, folder: Path) -> None:
        self.gaps.load_state_dict(load_file(str(folder / GAPS_FILE)))
        self.inner.load_saved(model, folder)
