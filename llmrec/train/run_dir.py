"""The run directory: everything a trained model needs, in one folder, and how to load it back.

config.yaml          resolved config (names the prepared folder it was trained from)
adapter/             best LoRA adapter (safetensors; includes trained id-token rows), or
model/               with model.finetune: full, the best whole model and its tokenizer
  item_anchor.safetensors  in either, with model.item_rows: anchored: the text map and id deltas
  time_gaps.safetensors    in either, with prompts.time: gaps on item lists: the gap embeddings
tokenizer/           tokenizer with the new id tokens
item_ids.parquet     item <-> id text; item_ids.json: scheme and new tokens
items.parquet        item titles and text
users.parquet        the users' train/valid/test sequences (`--user`, evaluate, score need them)
prepared.json        which prepared folder, with a content hash, the run was trained from
train_log.jsonl      one line per logged step / validation
checkpoint/          last resumable state: weights and optimizer in safetensors, the rest in JSON
added_rows.safetensors  embedding rows of items added after training (`llmrec items add`)
unavailable.json     items taken out of recommendations (`llmrec items remove`)
catalogue-versions/  the catalogue files as they were before each change
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from llmrec.backbone import load_model, resize_for_tokenizer
from llmrec.config import Config
from llmrec.data import SplitData
from llmrec.errors import InputError
from llmrec.ids import ItemIds
from llmrec.train.anchored import ANCHOR_FILE
from llmrec.train.time_gaps import GAPS_FILE, attach_saved

# What a run copies from its prepared folder, so that it needs nothing outside itself to recommend.
PREPARED_COPIES = ("item_ids.parquet", "item_ids.json", "items.parquet", "users.parquet")
OPTIONAL_COPIES = ("codebooks.npz",)  # semantic ids only: what places a new item (`llmrec items add`)


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    adapter = property(lambda self: self.path / "adapter")
    tokenizer = property(lambda self: self.path / "tokenizer")
    log = property(lambda self: self.path / "train_log.jsonl")
    checkpoint = property(lambda self: self.path / "checkpoint")  # llmrec.train.checkpoint
    summary = property(lambda self: self.path / "train_summary.json")
    prepared = property(lambda self: self.path / "prepared.json")
    added_rows = property(lambda self: self.path / "added_rows.safetensors")
    unavailable = property(lambda self: self.path / "unavailable.json")

    @property
    def anchor(self) -> Path | None:
        """The best weights' item anchor (`model.item_rows: anchored`), if the run has one."""
        files = (self.path / folder / ANCHOR_FILE for folder in ("adapter", "model"))
        return next((path for path in files if path.exists()), None)

    @property
    def time_gaps(self) -> Path | None:
        """The best weights' time-gap embeddings (`prompts.time: gaps`), if the run has them."""
        files = (self.path / folder / GAPS_FILE for folder in ("adapter", "model"))
        return next((path for path in files if path.exists()), None)

    def load_unavailable(self) -> set[str]:
        """Items `llmrec items remove` took out: never recommended, still readable in histories."""
        return set(json.loads(self.unavailable.read_text())["items"]) if self.unavailable.exists() else set()

    def load_added_items(self, tokenizer: PreTrainedTokenizerBase, ids: ItemIds) -> set[str]:
        """Items `llmrec items add` put in the catalogue after training (their rows are predicted)."""
        if not self.added_rows.exists():
            return set()
        tokens = set(tokenizer.convert_ids_to_tokens(load_file(self.added_rows)["token_ids"].tolist()))
        return {item for item, token in zip(ids.items, ids.ids, strict=True) if token in tokens}

    text_vectors = property(lambda self: self.path / "item_text_vectors.npy")

    def load_text_vectors(self, items: int) -> np.ndarray | None:
        """Each catalogue item's text embedding (`llmrec items add` writes them); None if absent or
        stale (written for another catalogue size)."""
        if not self.text_vectors.exists():
            return None
        vectors = np.load(self.text_vectors)
        return vectors if len(vectors) == items else None

    def apply_added_rows(self, model: PreTrainedModel) -> None:
        """Write the rows of items added after training into the (resized) embedding matrix. Called
        before an adapter loads: its trainable rows cover only the items it was trained with."""
        if not self.added_rows.exists():
            return
        saved = load_file(self.added_rows)
        weight = model.get_input_embeddings().weight
        with torch.no_grad():
            weight[saved["token_ids"]] = saved["rows"].to(weight.dtype)

    def metrics(self, split: str) -> Path:
        return self.path / f"metrics-{split}.json"

    def load_config(self) -> Config:
        if not self.config.exists():
            raise InputError("not a run directory (no config.yaml): run `llmrec train` first", path=self.path)
        raw = yaml.safe_load(self.config.read_text())
        # runs trained before item_separator existed listed every id with a line break
        raw.setdefault("prompts", {}).setdefault("item_separator", "line_break")
        return Config.model_validate(raw)

    def load_split(self) -> SplitData:
        """The run's own copy of the users and items; runs trained before the copy existed read
        their prepared folder."""
        if (self.path / "users.parquet").exists():
            return SplitData.load(self.path)
        return SplitData.load(self.load_config().prepared_dir)

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        return AutoTokenizer.from_pretrained(self.tokenizer)

    full_model = property(lambda self: self.path / "model")

    def load_model(self, tokenizer: PreTrainedTokenizerBase, dtype: str | None = None) -> PreTrainedModel:
        """The trained model in eval mode: the whole fine-tuned model, or base model + adapter."""
        if (self.full_model / "config.json").exists():
            model = load_model(str(self.full_model), dtype or self.load_config().model.dtype)
            resize_for_tokenizer(model, tokenizer)
            self.apply_added_rows(model)
            attach_saved(model, self.full_model)
            return model.eval()
        if not (self.adapter / "adapter_config.json").exists():
            raise InputError(
                "run has no trained adapter yet (training did not finish a checkpoint)", path=self.adapter
            )
        cfg = self.load_config()
        model = load_model(cfg.model.name, dtype or cfg.model.dtype)
        resize_for_tokenizer(model, tokenizer)
        self.apply_added_rows(model)
        model = PeftModel.from_pretrained(model, self.adapter)
        attach_saved(model, self.adapter)
        return model.eval()
