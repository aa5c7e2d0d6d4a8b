"""llmrec: generative recommendation with LLMs.

Stages, in data-flow order: data -> ids -> prompts -> model -> run_dir -> train -> generate -> catalogue
-> evaluate -> baselines -> mix -> explain / score / serve. Each imports only from the ones before it
(and from errors, io, config, backbone); tests/test_layout.py checks it.
The public names below are imported on first use, so `import llmrec.errors` (and the CLI's --help)
does not load torch.
"""

import logging
from importlib import import_module

# bitsandbytes (imported by peft) warns on every CPU import that an optional 4-bit CPU kernel is
# missing; 4-bit is a GPU-only feature here (QLoRA), so the warning is noise for every command.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

__version__ = "0.1.0"
_EXPORTS = {
    "Config": "llmrec.config",
    "load_config": "llmrec.config",
    "InputError": "llmrec.errors",
    "Explainer": "llmrec.explain",
    "Recommendation": "llmrec.generate",
    "Recommender": "llmrec.generate",
    "recipes": "llmrec.recipes",
}
__all__ = sorted([*_EXPORTS, "load"])


def load(run_dir, backend: str | None = None, mix: str | None = None, *, retriever: str | None = None):
    """The run's recommender, exactly what `llmrec evaluate / recommend / score / serve` use: the
    default `train` chose on validation (the LLM alone, the hybrid or the content mix), or
    `mix` (none, hybrid, content) when given; `backend` hf or vllm (default: the run's).
    `.recommend(histories, k=10)` gives each history's top-K. `Recommender.from_run` is the LLM
    alone, the building block under every mix. `retriever` is `mix`'s old name (deprecated)."""
    from llmrec.config import mix_name
    from llmrec.mix import load_recommender

    return load_recommender(run_dir, backend, mix_name(mix, retriever))


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmrec' has no attribute {name!r}")
    module = import_module(_EXPORTS[name])
    return module if name == "recipes" else getattr(module, name)
