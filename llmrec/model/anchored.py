"""Text-anchored item rows (`model.item_rows: anchored`): an atomic item's embedding row, which is
also its output row (the head is tied), is a trained map of its frozen text vectors plus a bounded
trainable id delta, instead of a free row that only starts from its text.

Why: free rows drift from the text during training, so the similarity of consecutive items' text,
the strongest signal on text-rich catalogues, is lost, and a new item's row can only be guessed
(ArtemF42/let-it-go: a norm-bounded delta on a frozen text embedding beat a content baseline on cold
items; free fine-tuning from a text init drifted and lost).

An item's text features are [its pooled backbone text vector (centred on the catalogue, unit length,
scaled like a row), the mean of its title's token rows (today's starting row)], both from the base
model before training. The map starts as [0, I]: at step 0 a row is exactly the free recipe's
starting row, and training learns how much of the pooled vector to use. The delta is clipped to
`delta_bound` x the mean starting-row norm, and at each step it is dropped for a seeded
`delta_dropout` share of the items, so the text path alone must rank (it is all a new item has).
The newest `withhold_newest` share of training items never has a delta: dropout hides deltas at
random, but added items are new ones, and the newest items in training are the closest stand-ins for
them, so the map learns to rank those by their text alone.
Items without text have no anchor: their delta is the whole row, unbounded (a free row).

During training the rows are computed once per step and replace the item tokens' input embeddings
(a forward hook) and their output rows (the catalogue softmax). For validation, saving and serving
they are written into the ordinary item rows (peft's trainable tokens, or the embedding in full
fine-tuning), so adapters, vLLM and `llmrec items add` see a normal model; `RUN_DIR/item_anchor.safetensors`
keeps the map, the deltas and the text normalisation, from which `items add` makes a new item's row.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmrec.backbone import mean_token_rows
from llmrec.config import AnchorSettings
from llmrec.io import atomic_path

ANCHOR_FILE = "item_anchor.safetensors"  # beside the best weights (adapter/ or model/)


def text_features(
    pooled: np.ndarray, token_rows: torch.Tensor, has_text: torch.Tensor, centre: torch.Tensor, scale: float
) -> torch.Tensor:
    """[pooled text vector, centred and scaled to `scale`, mean token row] per item; zeros without text."""
    pooled = torch.as_tensor(pooled, dtype=torch.float32) - centre
    pooled = torch.nn.functional.normalize(pooled, dim=-1) * scale
    return torch.cat([pooled, token_rows.float()], dim=1) * has_text.unsqueeze(1)


class ItemAnchor(torch.nn.Module):
    """Item rows = map(text features) + clip(delta); `features` is a non-persistent buffer (made from
    the text again when a run loads), the rest is the state a checkpoint keeps."""

    def __init__(self, features: torch.Tensor, has_text: torch.Tensor, width: int, bound: float,
                 dropout: float, seed: int, initial_rows: torch.Tensor, centre: torch.Tensor | None = None,
                 scale: float = 1.0, withheld: torch.Tensor | None = None) -> None:  # fmt: skip
        """`centre`, `scale`: how `text_features` normalised the pooled vectors (kept for new items);
        `withheld`: items with text whose delta stays zero (remade from the split, like `features`)."""
        super().__init__()
        self.register_buffer("features", features.float(), persistent=False)
        self.register_buffer("has_text", has_text.bool())
        withheld = torch.zeros_like(self.has_text) if withheld is None else withheld.bool() & self.has_text
        self.register_buffer("withheld", withheld, persistent=False)
        self.register_buffer("bound", torch.tensor(float(bound)))
        pooled_width = features.shape[1] - width
        self.register_buffer("centre", torch.zeros(pooled_width) if centre is None else centre.float())
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))  # seeds each step's dropout
        self.map = torch.nn.Linear(features.shape[1], width)
        with torch.no_grad():  # [0, I]: the starting rows are the mean token rows, as in the free recipe
            self.map.weight.zero_()
            self.map.weight[:, features.shape[1] - width :] = torch.eye(width)
            self.map.bias.zero_()
        # items without text: the delta is their whole row, starting where the free recipe starts it
        start = torch.where(has_text.unsqueeze(1), torch.zeros_like(initial_rows), initial_rows.float())
        self.delta = torch.nn.Parameter(start)
        self.dropout, self.seed = dropout, seed
        self.current: torch.Tensor | None = None  # this step's rows, while a training loss is computed

    def text_rows(self, features: torch.Tensor) -> torch.Tensor:
        """The text path alone: a new item's row (`llmrec items add`), from `text_features`."""
        return self.map(features.to(self.map.weight.device))

    def clipped_delta(self) -> torch.Tensor:
        """Anchored items' deltas scaled into the ball of radius `bound` (zero for withheld items);
        free items' rows as they are."""
        norms = self.delta.norm(dim=1, keepdim=True).clamp(min=1e-12)
        shrink = (self.bound / norms).clamp(max=1.0)
        delta = torch.where(self.has_text.unsqueeze(1), self.delta * shrink, self.delta)
        return delta.masked_fill(self.withheld.unsqueeze(1), 0.0)

    def forward(self, drop: bool = False) -> torch.Tensor:
        delta = self.clipped_delta()
        if drop and self.dropout > 0:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.steps))
            dropped = (torch.rand(len(delta), generator=gen) < self.dropout).to(delta.device) & self.has_text
            delta = delta.masked_fill(dropped.unsqueeze(1), 0.0)
            self.steps += 1
        return torch.where(self.has_text.unsqueeze(1), self.text_rows(self.features), 0.0) + delta

    @contextmanager
    def training_step(self):
        """This step's rows (dropout drawn once: the same for inputs and outputs) while the loss runs."""
        self.current = self(drop=True)
        try:
            yield self.current
        finally:
            self.current = None


def build_anchor(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    token_ids: list[int],
    texts: list[str],
    pooled: np.ndarray,
    settings: AnchorSettings,
    seed: int,
    withheld: list[bool] | None = None,
) -> ItemAnchor | None:
    """The anchor for the catalogue's item tokens (`texts`: each item's title or text, `pooled`: its
    backbone text vector, `withheld`: items that get no delta), from the base model's rows before
    training; None if no item has text."""
    weight = model.get_input_embeddings().weight
    token_rows, has_text = mean_token_rows(weight, tokenizer, texts, min(token_ids))
    if not has_text.any():
        return None
    pooled_t = torch.as_tensor(pooled, dtype=torch.float32)
    centre = pooled_t[has_text].mean(0)
    scale = float(token_rows[has_text].norm(dim=1).mean())
    features = text_features(pooled, token_rows, has_text, centre, scale)
    initial = weight.detach()[torch.tensor(token_ids)].float()
    bound = settings.delta_bound * scale
    held = None if withheld is None else torch.tensor(withheld, dtype=torch.bool)
    return ItemAnchor(features, has_text, weight.shape[1], bound, settings.delta_dropout, seed, initial,
                      centre, scale, held)  # fmt: skip


def attach(model, anchor: ItemAnchor, token_ids: list[int]) -> None:
    """Make `anchor` part of `model` (its parameters train with the rest) and, while a training step
    holds rows (`anchor.current`), let those rows be the item tokens' input embeddings."""
    model.item_anchor = anchor  # a submodule: model.parameters(), .to() and the optimizer include it
    vocab = model.get_input_embeddings().weight.shape[0]
    index = torch.full((vocab,), -1, dtype=torch.long)
    index[torch.tensor(token_ids)] = torch.arange(len(token_ids))

    def replace_item_rows(module, args, output):
        if anchor.current is None:  # validation, generation: the written rows are in the embedding
            return output
        where = index.to(args[0].device)[args[0]]
        rows = anchor.current.to(output.dtype)[where.clamp(min=0)]
        return torch.where((where >= 0).unsqueeze(-1), rows, output)

    embed = model.get_input_embeddings()
    embed.register_forward_hook(replace_item_rows)
    adapter = getattr(embed, "token_adapter", None)
    if adapter is not None:  # peft's trainable-token rows only hold what write_rows puts there
        adapter.trainable_tokens_delta.requires_grad_(False)


@torch.no_grad()
def write_rows(model, anchor: ItemAnchor, token_ids: list[int]) -> None:
    """Put the anchor's rows (no dropout) into the model's item rows: peft's trainable-token rows
    under LoRA, the embedding itself (tied to the head) otherwise."""
    rows = anchor().detach()
    embed = model.get_input_embeddings()
    adapter = getattr(embed, "token_adapter", None)
    if adapter is not None:
        name = adapter.active_adapters[0]
        order = {t: n for n, t in enumerate(token_ids)}
        index = torch.tensor([order.get(t, -1) for t in adapter.token_indices[name]])
        target = adapter.trainable_tokens_delta[name]
        known = index >= 0
        target[known] = rows[index[known]].to(target.dtype)
        return
    weight = embed.weight
    weight[torch.tensor(token_ids)] = rows.to(weight.dtype)


def save_anchor(anchor: ItemAnchor, folder: Path) -> None:
    """RUN_DIR/item_anchor.safetensors: what `items add` and a reloaded run need (no features)."""
    with atomic_path(folder / ANCHOR_FILE) as tmp:
        save_file({k: v.detach().contiguous() for k, v in anchor.state_dict().items()}, str(tmp))


def new_item_rows(
    state: dict[str, torch.Tensor], pooled: np.ndarray, token_rows: torch.Tensor
) -> torch.Tensor:
    """Rows for items added after training, from a saved anchor `state`: the text path of
    `ItemAnchor` (map of `text_features`, no delta), with the training catalogue's normalisation.
    Every added item has text (`llmrec items add` refuses one without)."""
    has_text = torch.ones(len(token_rows), dtype=torch.bool)
    features = text_features(pooled, token_rows, has_text, state["centre"], float(state["scale"]))
    return torch.nn.functional.linear(features, state["map.weight"].float(), state["map.bias"].float())


class AnchoredTuning:
    """A fine-tuning mode (`finetune.LoraTuning`/`FullTuning`) whose item rows come from an anchor:
    its checkpoint state and saved weights hold the anchor too, and what it saves has the rows written."""

    def __init__(self, inner, anchor: ItemAnchor, token_ids: list[int]) -> None:
        self.inner, self.anchor, self.token_ids = inner, anchor, token_ids
        self.folder, self.kind = inner.folder, inner.kind

    def prepare(self, model, cfg, new_token_ids: list[int]):
        model = self.inner.prepare(model, cfg, new_token_ids)
        attach(model, self.anchor, self.token_ids)
        return model

    def state(self, model) -> dict:
        return self.inner.state(model) | {f"item_anchor.{k}": v for k, v in self.anchor.state_dict().items()}

    def load_state(self, model, state: dict) -> None:
        mine = {k.removeprefix("item_anchor."): v for k, v in state.items() if k.startswith("item_anchor.")}
        self.anchor.load_state_dict(mine)
        self.inner.load_state(model, {k: v for k, v in state.items() if not k.startswith("item_anchor.")})

    def write_rows(self, model) -> None:
        write_rows(model, self.anchor, self.token_ids)

    def save(self, model, folder: Path, tokenizer) -> None:
        self.write_rows(model)
        self.inner.save(model, folder, tokenizer)
        save_anchor(self.anchor, folder)

    def load_saved(self, model, folder: Path) -> None:
        self.anchor.load_state_dict(load_file(str(folder / ANCHOR_FILE)))
        self.inner.load_saved(model, folder)

    def validator(self, validate: Callable) -> Callable:
        """`validate` run on the model with this step's rows written in (validation ranks as serving)."""

        def run(model) -> dict:
            self.write_rows(model)
            return validate(model)

        return run
