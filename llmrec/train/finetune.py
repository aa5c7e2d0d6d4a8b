"""Fine-tuning modes (`model.finetune`), chosen before the training loop (`build_finetuning`).

- `lora`: LoRA on `model.lora.target_modules` (of the top `model.tuned_layers` decoder layers, or of
  all), plus the new id-token rows of the (tied) embedding as peft trainable tokens; the run keeps
  the adapter (`RUN_DIR/adapter`).
- `full`: every weight trains, new id-token rows included; the run keeps a whole safetensors model
  with its tokenizer (`RUN_DIR/model`), which transformers and vLLM load directly, with no merge step.

Each mode says what the resumable checkpoint holds and how the best weights are saved.
"""

from __future__ import annotations

from pathlib import Path

from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmrec.config import Config
from llmrec.errors import InputError


class LoraTuning:
    folder = "adapter"
    kind = "adapter"

    def prepare(self, model: PreTrainedModel, cfg: Config, new_token_ids: list[int]):
        lora = cfg.model.lora
        tuned = tuned_layer_indices(model, cfg.model.tuned_layers)
        peft_cfg = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            layers_to_transform=tuned,
            task_type="CAUSAL_LM",
            # Only the new id-token rows of the (tied) embedding train; the rest stays frozen.
            trainable_token_indices={"embed_tokens": new_token_ids} if new_token_ids else None,
        )
        model = get_peft_model(model, peft_cfg)
        if tuned is not None:
            # With nothing below the tuned layers trainable and the input detached, autograd builds no
            # graph there: the backward pass stops at the first tuned layer. The tied item rows still
            # train, through the output head.
            model.get_input_embeddings().register_forward_hook(lambda module, args, output: output.detach())
        return model

    def state(self, model) -> dict:
        return get_peft_model_state_dict(model, save_embedding_layers=False)

    def load_state(self, model, state: dict) -> None:
        set_peft_model_state_dict(model, state)

    def save(self, model, folder: Path, tokenizer: PreTrainedTokenizerBase) -> None:
        # The id-token rows live in the trainable-tokens adapter: skip the full embedding copy.
        model.save_pretrained(folder, save_embedding_layers=False)

    def load_saved(self, model, folder: Path) -> None:
        """Put the weights `save` wrote back into the training model (the best ones, after a stop)."""
        set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))


class FullTuning:
    folder = "model"
    kind = "model"

    def prepare(self, model: PreTrainedModel, cfg: Config, new_token_ids: list[int]):
        model.requires_grad_(True)
        return model

    def state(self, model) -> dict:
        return {k: v.detach().clone() for k, v in _own_state(model).items()}

    def load_state(self, model, state: dict) -> None:
        # strict for the model's own weights; attached modules (item anchor, time gaps) load their own
        result = model.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(ATTACHED)]
        if missing or result.unexpected_keys:
            raise RuntimeError(f"checkpoint does not match the model: missing {missing[:5]}, "
                               f"unexpected {result.unexpected_keys[:5]}")  # fmt: skip

    def save(self, model, folder: Path, tokenizer: PreTrainedTokenizerBase) -> None:
        model.save_pretrained(folder, state_dict=_own_state(model))  # safetensors; tied weights saved once
        tokenizer.save_pretrained(folder)

    def load_saved(self, model, folder: Path) -> None:
        state = {}
        for shard in sorted(folder.glob("*.safetensors")):
            state |= load_file(shard)
        model.load_state_dict(state, strict=False)  # a tied head is saved once, as the embedding
        model.tie_weights()


# modules llmrec attaches to a model, which keep and save their own state (model/anchored.py,
# model/time_gaps.py)
ATTACHED = ("item_anchor.", "time_gaps.")


def _own_state(model: PreTrainedModel) -> dict:
    """The model's own weights, without the modules llmrec attaches."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(ATTACHED)}


def tuned_layer_indices(model: PreTrainedModel, tuned_layers: int | None) -> list[int] | None:
    """The decoder layers LoRA goes on with `model.tuned_layers`: the top that many (None: all)."""
    if tuned_layers is None:
        return None
    body = len(model.get_decoder().layers)
    if tuned_layers > body:
        raise InputError(f"model.tuned_layers is {tuned_layers}, but the body has {body} decoder layers",
                         field="model.tuned_layers")  # fmt: skip
    return list(range(body - tuned_layers, body))


def build_finetuning(cfg: Config) -> LoraTuning | FullTuning:
    return FullTuning() if cfg.model.finetune == "full" else LoraTuning()
