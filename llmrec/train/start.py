"""Starting a run from another trained run (`model.start_from`): what carries over to a new domain.

Item ids do not transfer between catalogues; what a run learned about sequences does: its LoRA body
weights, and with text-anchored rows (`model.item_rows: anchored`) its map from an item's text to
the item's row. The new run keeps its own item rows, made from its own items' text as at any
training start (through the carried map where both runs anchor their rows), and then trains on
however many interactions its domain has; with `train.max_steps: 0` it ranks with no training
(zero-shot). The per-item parts of the source run (its item rows, its id deltas) stay behind.
"""

from __future__ import annotations

from collections.abc import Callable

from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file

from llmrec.config import Config
from llmrec.errors import InputError
from llmrec.model.anchored import ANCHOR_FILE, ItemAnchor
from llmrec.run_dir import RunDir

FIELD = "model.start_from"
MAP_KEYS = ("map.weight", "map.bias")  # the anchor's text -> row map; its deltas are per item


def check_start_from(cfg: Config) -> RunDir | None:
    """The run `model.start_from` names, checked before any work: a finished LoRA run of the same
    base model, layers, tuned layers and LoRA settings (its weights must fit this run's body)."""
    if cfg.model.start_from is None:
        return None
    source = RunDir(cfg.model.start_from)
    if not source.config.exists():
        raise InputError("not a run directory (no config.yaml): name a trained run's folder",
                         path=source.path, field=FIELD)  # fmt: skip
    if not (source.adapter / "adapter_model.safetensors").exists():
        raise InputError("this run has no trained LoRA adapter to start from (a full fine-tune, or training "
                         "did not finish)", path=source.adapter, field=FIELD)  # fmt: skip
    if cfg.model.finetune != "lora":
        raise InputError("starting from a run carries its LoRA weights: needs model.finetune: lora",
                         field="model.finetune")  # fmt: skip
    theirs, ours = source.load_config().model, cfg.model
    for key in ("name", "layers", "tuned_layers", "lora"):
        mine, other = getattr(ours, key), getattr(theirs, key)
        if mine != other:
            raise InputError(f"model.{key} differs from the run started from ({other!r} there, {mine!r} "
                             "here): its weights would not fit", path=source.config, field=FIELD)  # fmt: skip
    return source


def start_from(
    model, source: RunDir, anchor: ItemAnchor | None, log: Callable[[str], None] = print
) -> dict[str, object]:
    """Load `source`'s LoRA body weights into `model` (a peft model, before training) and, where
    both runs anchor their rows, its text -> row map into `anchor`. Returns what was carried."""
    weights = load_file(str(source.adapter / "adapter_model.safetensors"))
    body = {k: v for k, v in weights.items() if "lora_" in k}  # not the other catalogue's item rows
    # peft loads a whole adapter state: this model's own item rows, the source run's body
    own = get_peft_model_state_dict(model, save_embedding_layers=False)
    result = set_peft_model_state_dict(model, own | body)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if unexpected:
        raise InputError(f"the adapter does not fit this model: {unexpected[:3]}", path=source.adapter,
                         field=FIELD)  # fmt: skip
    carried: dict[str, object] = {"run": str(source.path), "lora_tensors": len(body)}
    anchor_file = source.adapter / ANCHOR_FILE
    if anchor is not None and anchor_file.exists():
        state = load_file(str(anchor_file))
        anchor.load_state_dict({k: state[k] for k in MAP_KEYS}, strict=False)
        carried["text_map"] = True
    elif anchor is not None:
        log(f"{FIELD}: that run has free item rows, so this run's text map starts fresh")
    elif anchor_file.exists():
        log(f"{FIELD}: that run's text map is not used: this run trains free item rows (model.item_rows)")
    log(f"{FIELD}: LoRA body weights ({len(body)} tensors)" + (" and the text -> row map"
        if carried.get("text_map") else "") + f" from {source.path}")  # fmt: skip
    return carried
