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
run.lock             held by the one command changing the run (`train`, `llmrec items`)

A run folder is one unit. One command changes it at a time (`writing`: a second is refused, naming
the process at work). Every file is replaced whole (written beside, then renamed); a catalogue change
touches several files and is staged (`.catalogue-change/`, `io.staged_files`): a kill before its
commit leaves the old catalogue, after it the next load finishes it. Loading checks up front what it
needs (`check_loadable`): a missing or damaged file, a setting this version does not know, or
weights in any format but safetensors are an `InputError` naming the file (and field).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import yaml
from peft import PeftModel
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from llmrec.backbone import load_model, resize_for_tokenizer
from llmrec.config import Config, validation_error
from llmrec.data import SplitData
from llmrec.errors import InputError
from llmrec.ids import ItemIds
from llmrec.io import exclusive, read_json, settle_staged, staged_files
from llmrec.model.anchored import ANCHOR_FILE
from llmrec.model.time_gaps import GAPS_FILE, attach_saved

LAYER_KEY = re.compile(r"\.layers\.(\d+)\.")  # a decoder layer's index in an adapter key

# What a run copies from its prepared folder, so that it needs nothing outside itself to recommend.
PREPARED_COPIES = ("item_ids.parquet", "item_ids.json", "items.parquet", "users.parquet")
OPTIONAL_COPIES = ("codebooks.npz",)  # semantic ids only: what places a new item (`llmrec items add`)
CATALOGUE_STAGING = ".catalogue-change"
# Weight files llmrec never loads: pickles (loading one can run code) and other non-safetensors formats.
UNSAFE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")


def check_safetensors(path: Path) -> None:
    """Raise an InputError unless `path` is a whole safetensors file (its header read, its size the
    header's: a truncated file fails here, not halfway through loading a model)."""
    if not path.is_file():
        raise InputError("missing", path=path)
    try:
        with safe_open(path, "pt"):
            pass
    except (SafetensorError, OSError) as exc:
        raise InputError(f"damaged weights file (truncated or not safetensors): {exc}", path=path) from exc


def refuse_unsafe_weights(folder: Path, expected: str) -> None:
    """Weights load from safetensors only: a folder that offers them only in another format (a
    pickle such as adapter_model.bin) is refused with the reason, before any loader sees it."""
    if any(folder.glob("*.safetensors")):
        return  # the loaders read these and never the others
    others = sorted(p.name for pattern in UNSAFE_WEIGHTS for p in folder.glob(pattern))
    if others:
        raise InputError(
            f"weights in {', '.join(others)} but no {expected}: llmrec loads weights from safetensors "
            "only (a pickle can run code when loaded). Convert them to safetensors where you trust "
            "them, or train the run again",
            path=folder / others[0],
        )


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
    def mix_dir(self) -> Path:
        """The fitted mixes and train's choice among them (llmrec.mix). Runs trained before the mixes
        had one name keep theirs in `retriever/`, read where it is."""
        legacy = self.path / "retriever"
        return legacy if legacy.is_dir() and not (self.path / "mix").exists() else self.path / "mix"

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

    @contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Hold the run's writer lock for the block: a second command that changes the run (another
        `train`, `llmrec items`) is refused at once, naming the process at work."""
        self.path.mkdir(parents=True, exist_ok=True)
        with exclusive(self.path / "run.lock", f"{what} of {self.path}",
                       "one command changes a run at a time: wait for it to finish"):  # fmt: skip
            settle_staged(self.path, CATALOGUE_STAGING)
            yield

    @contextmanager
    def staged(self, first: tuple[str, ...] = ()) -> Iterator[Path]:
        """Stage a change of several catalogue files (`io.staged_files`); hold `writing` around it."""
        with staged_files(self.path, CATALOGUE_STAGING, first) as stage:
            yield stage

    def settle(self) -> None:
        """Finish (committed) or drop (not committed) a catalogue change that a killed command left,
        unless a command is at work on the run now (its change is not finished)."""
        if not (self.path / CATALOGUE_STAGING).exists():
            return
        try:
            with exclusive(self.path / "run.lock", "settling a catalogue change"):
                settle_staged(self.path, CATALOGUE_STAGING)
        except InputError:
            pass  # a writer holds the lock: its change is in progress, not left behind
        except OSError:
            pass  # a read-only copy of the run (a server replica): read it as it is

    def load_config(self) -> Config:
        if not self.config.exists():
            raise InputError("not a run directory (no config.yaml): run `llmrec train` first", path=self.path)
        self.settle()
        try:
            raw = yaml.safe_load(self.config.read_text())
        except yaml.YAMLError as exc:
            raise InputError(f"not valid YAML: {exc}", path=self.config) from exc
        if not isinstance(raw, dict):
            raise InputError("top level must be a mapping", path=self.config)
        # runs trained before item_separator existed listed every id with a line break
        raw.setdefault("prompts", {}).setdefault("item_separator", "line_break")
        try:
            return Config.model_validate(raw)
        except ValidationError as exc:
            raise validation_error(exc, self.config) from exc

    def check_loadable(self) -> None:
        """What loading the trained model needs, checked before anything loads: the config, the
        catalogue and split files, the tokenizer, and whole safetensors weights (never a pickle)."""
        cfg = self.load_config()
        needed = [self.path / name for name in ("item_ids.parquet", "item_ids.json", "items.parquet")]
        needed += [self.tokenizer / "tokenizer_config.json"]
        if not (self.path / "users.parquet").exists():  # runs from before the copy read their prepared data
            needed += [Path(cfg.prepared_dir) / "users.parquet"]
        for path in needed:
            if not path.exists():
                raise InputError("missing from the run (restore it, or train the run again)", path=path)
        if (self.full_model / "config.json").exists():
            refuse_unsafe_weights(self.full_model, "model.safetensors")
            shards = sorted(self.full_model.glob("*.safetensors"))
            if not shards:
                raise InputError("no safetensors weights in the run's model folder", path=self.full_model)
            for shard in shards:
                check_safetensors(shard)
        elif self.adapter.exists():
            refuse_unsafe_weights(self.adapter, "adapter_model.safetensors")
            if (self.adapter / "adapter_config.json").exists():
                check_safetensors(self.adapter / "adapter_model.safetensors")
        for extra in (self.added_rows, self.anchor, self.time_gaps):
            if extra is not None and extra.exists():
                check_safetensors(extra)

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
        self.check_loadable()
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
        model = load_model(cfg.model.name, dtype or cfg.model.dtype, layers=cfg.model.layers)
        resize_for_tokenizer(model, tokenizer)
        self.apply_added_rows(model)
        self.check_adapter_layers(len(model.get_decoder().layers))
        model = PeftModel.from_pretrained(model, self.adapter)
        attach_saved(model, self.adapter)
        return model.eval()

    def check_adapter_layers(self, body_layers: int) -> None:
        """The adapter must cover the body it is loaded into: peft loads an adapter trained on 30
        layers into a 10-layer body (or the reverse) with a warning at most, and the run then ranks
        with missing or untrained layers. Refused here, naming `model.layers`."""
        with safe_open(str(self.adapter / "adapter_model.safetensors"), "pt") as f:
            names = f.keys()  # a safetensors file is not iterable
        found = {int(m.group(1)) for key in names if (m := LAYER_KEY.search(key))}
        if not found:
            return
        chosen = read_json(self.adapter / "adapter_config.json").get("layers_to_transform")
        trained = max(found) + 1
        if trained > body_layers or (chosen is None and trained < body_layers):
            raise InputError(
                f"the run's adapter was trained on a body of {trained} decoder layers, but this config's "
                f"model gives {body_layers} (model.layers: {self.load_config().model.layers}); set "
                f"model.layers to {trained} in the run's config.yaml, or train the run again",
                path=self.adapter,
                field="model.layers",
            )
