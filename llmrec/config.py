"""The YAML configuration: one pydantic model per pipeline stage, validated with clear errors.

Relative paths in a config file are resolved against the file's own folder, so a config and its
data can move together.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
    validate_call,
)

from llmrec.errors import InputError
from llmrec.io import read_text

BUILTIN = "builtin:"  # data shipped inside the package, e.g. `builtin:ml-100k`
PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_config(name: str) -> Path:
    return PACKAGE_DIR / "configs" / f"{name}.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# An option whose own measurements kept it off by default: it stays usable, marked as such in the
# schema and on docs/configuration.md, and may change or go without notice.
EXPERIMENTAL = {"experimental": True}


class Columns(_Section):
    """Column names of a generic interactions table and (optional) items table. A column named
    here that the table lacks is an error; only the default `title` may be absent (no titles)."""

    user: str = "user_id"
    item: str = "item_id"
    timestamp: str | None = "timestamp"
    title: str | None = "title"
    text: list[str] = Field(default_factory=list, description="extra item text columns")


DOMAIN_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # no ':' (it joins a domain to its ids) and no spaces
SOURCE_KEYS = ("format", "path", "interactions", "items", "columns")  # what one source of data says


class SourceConfig(_Section):
    """One data source of a run over several domains (`data.sources`): its importer settings and
    the domain name its users and items are filed under (`domain:id`)."""

    domain: str = Field(pattern=DOMAIN_NAME, description="letters, digits, '_', '-', '.'")
    format: Literal["movielens", "p5", "lcrec", "generic"] = "movielens"
    path: str | None = Field(None, description="movielens folder, p5 .txt file, or lcrec folder")
    interactions: str | None = Field(None, description="generic: CSV/TSV/Parquet/JSONL file")
    items: str | None = Field(None, description="generic: optional items table")
    columns: Columns = Field(default_factory=Columns)


class DataConfig(_Section):
    format: Literal["movielens", "p5", "lcrec", "generic"] = "movielens"
    path: str | None = Field(None, description="movielens folder, p5 .txt file, or lcrec folder")
    interactions: str | None = Field(None, description="generic: CSV/TSV/Parquet/JSONL file")
    items: str | None = Field(None, description="generic: optional items table")
    columns: Columns = Field(default_factory=Columns)
    sources: list[SourceConfig] = Field(
        default_factory=list,
        description="several domains in one run, in place of the keys above: each source its own "
        "importer settings and a domain name; users and items become `domain:id`, every request names "
        "its domain and gets items of that domain only (docs/domains.md)",
    )
    dedupe: bool = Field(False, description="keep only the first interaction of each (user, item)")
    min_interactions: int = Field(3, ge=3, description="users with fewer go to training only")

    @model_validator(mode="after")
    def _sources_alone(self) -> DataConfig:
        if not self.sources:
            return self
        # a key at its default is not beside: a run's saved config.yaml writes every key out
        defaults = DataConfig()
        beside = [key for key in SOURCE_KEYS if getattr(self, key) != getattr(defaults, key)]
        if beside:
            raise ValueError(f"sources replaces {', '.join(beside)}: give them inside each source")
        return self

    @field_validator("sources")
    @classmethod
    def _distinct_domains(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        seen: dict[str, int] = {}
        for n, source in enumerate(sources):
            if source.domain in seen:
                raise ValueError(f"sources {seen[source.domain]} and {n} are both named domain "
                                 f"'{source.domain}': each domain needs its own name")  # fmt: skip
            seen[source.domain] = n
        return sources

    def source_list(self) -> list[SourceConfig | DataConfig]:
        """What to import: the domains' sources, or this section itself (one source, no domain)."""
        return list(self.sources) or [self]


class IdsConfig(_Section):
    scheme: Literal["semantic", "title", "numeric", "atomic"] = Field(
        "atomic",
        description="atomic: one new token per item (its row starts from the item's title tokens); with "
        "any objective the loss is a softmax over the catalogue and decoding is one forward pass",
    )
    levels: int = Field(3, ge=1, le=6)
    codebook_size: int = Field(64, ge=2)
    embeddings: Literal["auto", "text", "collaborative", "both", "file"] = Field(
        "auto",
        description="what semantic ids cluster: item text (backbone), collaborative (SVD of training "
        "interactions), both, or file (your own vectors, e.g. a sequential model's item embeddings)",
    )
    embeddings_file: str | None = Field(
        None, description="for embeddings: file; Parquet or JSONL with columns item and embedding (a list)"
    )
    seed: int = 0

    @model_validator(mode="after")
    def _file_named(self) -> IdsConfig:
        if (self.embeddings == "file") != (self.embeddings_file is not None):
            raise ValueError("embeddings: file and embeddings_file go together")
        return self


class PromptConfig(_Section):
    objective: Literal["next_item", "every_item"] = Field(
        "every_item",
        description="next_item: a training example is one history and its next item (the id, then EOS); "
        "every_item: a window of a user's sequence listed one id per line, every item after the first "
        "a target (as SASRec trains every position); needs a list template such as item_list.j2",
    )
    template: str = Field("", description="default: item_list.j2 for every_item, next_item.j2 for next_item")
    max_history: int = Field(100, ge=1, description="most recent items shown")
    max_prompt_tokens: int = Field(128, ge=16)
    max_title_chars: int = Field(
        100,
        ge=1,
        description="longer titles are cut (with '...'): one long title cannot crowd out the history",
    )
    include_titles: bool = False
    item_separator: Literal["auto", "line_break", "none"] = Field(
        "auto",
        description="every_item: what follows each listed id. auto: none for atomic ids (one token an "
        "item, nothing between them: half the tokens of an id and a line break), line_break otherwise "
        "(a multi-token id needs an end)",
    )
    time: Literal["none", "gaps"] = Field(
        "none",
        description="gaps: the time between consecutive items and until the request (`now`) reaches the "
        "model, as embeddings added to the listed ids (item-list prompts, no extra token) or as words "
        "in text templates (`item.gap`, `now_gap`); needs data with times (else unused, with a log line). "
        "The default is the one measured best (no difference on ML-100K: "
        "benchmarks/results/quality/ml100k-compare-default-vs-time-gaps.json)",
        json_schema_extra=EXPERIMENTAL,
    )
    max_examples_per_user: Annotated[int, Field(ge=1)] | Literal["all"] = Field(
        "all", description="most recent training targets per user (all: every one)"
    )
    align_to: int | None = Field(
        None,
        ge=1,
        description="left-fill prompts with pad tokens to a multiple of N (vLLM KV blocks); default 32 for "
        "next_item (beam search re-sends the prompt every step), 1 for every_item (one forward pass)",
    )

    @model_validator(mode="after")
    def _template_for_objective(self) -> PromptConfig:
        if not self.template:
            self.template = "item_list.j2" if self.objective == "every_item" else "next_item.j2"
        if self.align_to is None:
            self.align_to = 1 if self.objective == "every_item" else 32
        return self

    @property
    def separator(self) -> str:
        """The text after each listed id (every_item); `item_separator` resolved by `Config`."""
        return "" if self.item_separator == "none" else "\n"

    @property
    def examples_per_user(self) -> int | None:
        """max_examples_per_user as a number; None = all."""
        return None if self.max_examples_per_user == "all" else self.max_examples_per_user


class LoraSettings(_Section):
    r: int = Field(16, ge=1)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1
    )


class AnchorSettings(_Section):
    delta_bound: float = Field(
        0.5,
        gt=0,
        description="the most an item's id delta may move its row from the text map, as a share of the "
        "mean norm of the text-initialised rows",
    )
    delta_dropout: float = Field(
        0.25,
        ge=0,
        lt=1,
        description="share of items whose delta is dropped at each training step, so the text path "
        "alone learns to rank (it is all a new item has)",
    )
    withhold_newest: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of training items, the newest by first interaction in training, whose delta "
        "stays zero all training: they are ranked, as inputs and targets, by the text path alone, as "
        "every item added later (`llmrec items add`) is, so the map learns what a new item needs",
    )


class ModelConfig(_Section):
    name: str = Field("smollm2-135m", description="'smollm2-135m', a hub id, or a local folder")
    dtype: Literal["auto", "bf16", "fp32", "fp16"] = Field(
        "auto", description="auto: bf16 where the GPU or CPU computes it natively, else fp32"
    )
    load_in_4bit: bool = Field(False, description="QLoRA: needs a CUDA GPU and bitsandbytes")
    layers: int | None = Field(
        None,
        ge=1,
        description="keep only the first N decoder layers of the backbone (SmolLM2-135M has 30): every "
        "token, in training and ranking, costs about N/30 of the body's FLOPs; none: all layers. On "
        "Industrial 10 layers made a step 3.6x faster and lost nothing over 3 seeds; on ML-100K the LLM "
        "alone lost (0.084 vs 0.102 NDCG@10, 3 seeds) while the chosen mix held "
        "(docs/experiments/2026-12-07-industrial-recipe.md)",
        json_schema_extra=EXPERIMENTAL,
    )
    tuned_layers: int | None = Field(
        None,
        ge=1,
        description="LoRA on only the top N decoder layers; the layers below stay the base model's and "
        "the item rows learn only as the output's rows (their gradient through the input is cut), so "
        "back-propagation stops N layers from the top: a step costs a forward through the whole body and "
        "a backward through N layers (10 of 30: a step 2.15x faster on Industrial; on ML-100K the LLM "
        "alone lost, 0.088 vs 0.102 NDCG@10, seed 0: docs/training.md). Needs finetune: lora, item_rows: "
        "free and prompts.time: none; none: every layer",
        json_schema_extra=EXPERIMENTAL,
    )
    finetune: Literal["lora", "full"] = Field(
        "lora",
        description="lora: LoRA + the new id-token rows (RUN_DIR/adapter); full: every weight "
        "(RUN_DIR/model, a safetensors model transformers and vLLM load directly)",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings)
    item_rows: Literal["free", "anchored"] = Field(
        "free",
        description="atomic ids: free: each item token's row starts from its text and trains freely; "
        "anchored: row = a trained map of the item's frozen text vectors + a bounded id delta "
        "(model.anchor), so new items get their rows from the same map. A catalogue without text "
        "trains free rows (anchored: 0.91x free rows' NDCG@10 on ML-100K, docs/benchmarks.md)",
        json_schema_extra=EXPERIMENTAL,
    )
    anchor: AnchorSettings = Field(
        default_factory=AnchorSettings, description="with item_rows: anchored", json_schema_extra=EXPERIMENTAL
    )
    start_from: str | None = Field(
        None,
        description="a trained run (its folder) this run starts from, on a domain that run may never "
        "have seen: its LoRA body weights and, with item_rows: anchored in both, its map from item text to "
        "item rows; this run's item rows are made from its own items' text (train.max_steps: 0 ranks with "
        "no training at all: zero-shot). Same model, layers and LoRA settings (docs/domains.md)",
        json_schema_extra=EXPERIMENTAL,
    )


class TrainConfig(_Section):
    epochs: float = Field(
        30.0,
        gt=0,
        description="most epochs; with patience (the default) training stops earlier, when validation "
        "NDCG@10 stops improving",
    )
    max_steps: int | None = Field(
        None, ge=0, description="most optimizer steps; 0: no training (with model.start_from: zero-shot)"
    )
    max_minutes: float | None = Field(
        None, gt=0, description="wall-time cap on training (resumed runs count their earlier time)"
    )
    batch_size: int = Field(16, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine"] = Field(
        "constant",
        description="learning rate after warmup. constant: for a budget set by validation (a cosine over "
        "the epoch cap would barely decay before the stop); cosine: to zero at the last step, for a fixed "
        "budget (max_steps, or patience: none)",
    )
    eval_every: int | Literal["epoch"] = Field(
        "epoch", description="validation runs: every epoch, or every N steps; 0 = only at the end"
    )
    eval_min_gap: int = Field(
        20,
        ge=1,
        description="with eval_every: epoch, validation runs every whole number of epochs at least this "
        "many optimizer steps apart: on a small catalogue an epoch is a few steps, and validating each "
        "one took ~40% of the run (Industrial's epochs are 7 steps: validation every 3 epochs)",
    )
    eval_users: int = Field(
        1000,
        ge=1,
        description="validation users (a seeded sample; all if fewer), full ranking. 1000 keeps the "
        "standard error of NDCG@10 near 0.01 and a validation run within a minute or two on a CPU",
    )
    patience: int | None = Field(
        2,
        ge=1,
        description="stop after this many validations in a row without a better NDCG@10, keeping the best "
        "weights; none: train the whole budget (epochs, max_steps)",
    )
    min_steps: int = Field(
        100,
        ge=0,
        description="patience stops training no earlier than this many optimizer steps: the first "
        "validations, during and just after the warmup, are noise, and on a small catalogue an epoch "
        "is a few steps (Industrial's 3,285 users pack into 7)",
    )
    pack: bool = Field(
        True,
        description="pack short examples into rows of prompts.max_prompt_tokens (each example sees only "
        "itself); batch_size then counts rows",
    )
    save_every: int = Field(50, ge=1, description="steps between resumable checkpoints")
    tasks: dict[Literal["text_to_id", "id_to_text"], Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="alignment tasks mixed into the next-item batches, as examples per next-item example: "
        "text_to_id (an item's text -> its id), id_to_text (id -> text); templates "
        "prompts/align_text_to_id.j2 and align_id_to_text.j2; items without text are left out",
    )
    log_every: int = Field(10, ge=1)
    log_with: Literal["none", "tensorboard", "mlflow", "wandb"] = Field(
        "none",
        description="also send the training log (loss, lr, tokens/s, validation metrics) to an Accelerate "
        "tracker, written under RUN_DIR/tracking (TensorBoard: `tensorboard --logdir RUN_DIR/tracking`)",
    )
    seed: int = 0


class VllmSettings(_Section):
    """Engine settings for `generate.backend: vllm` (vLLM's own names and meanings)."""

    batch_size: int = Field(64, ge=1, description="users per engine call (all their beams at once)")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one engine shards the model over")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    kv_cache_gib: float | None = Field(None, gt=0, description="fixed KV cache size; default 2 on CPU")
    max_num_seqs: int = Field(256, ge=1)
    max_model_len: int | None = None
    block_size: int | None = Field(None, description="KV block; default 32 on CPU, 16 on GPU")
    enforce_eager: bool | None = Field(None, description="default: eager on CPU, CUDA graphs on GPU")


def mix_name(value: str | None, retriever: str | None = None) -> str | None:
    """A mix's name, with the names it had before accepted and flagged: the `retriever` argument
    (now `mix`) and the value `sasrec` (now `hybrid`)."""
    if retriever is not None:
        if value is not None:
            raise InputError("`retriever` is the old name of `mix`: give `mix` only", field="mix")
        warnings.warn("`retriever` is now `mix`", FutureWarning, stacklevel=3)
        value = retriever
    if value == "sasrec":
        warnings.warn("the mix `sasrec` is now called `hybrid`", FutureWarning, stacklevel=3)
        return "hybrid"
    return value


class GenerateConfig(_Section):
    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """The mixes had another name (`retriever`) until 2026-12: old configs keep working, and say so."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in (("retriever", "mix"), ("retriever_weights", "sasrec_weights")):
            if old not in data:
                continue
            if new in data:
                raise ValueError(
                    f"`{old}` and `{new}` both set: `{old}` is the old name of `{new}`; keep `{new}`"
                )
            value = data.pop(old)
            data[new] = "hybrid" if new == "mix" and value == "sasrec" else value
            warnings.warn(
                f"generate.{old} is now generate.{new}"
                + (" (sasrec is now hybrid)" if value == "sasrec" else ""),
                FutureWarning,
                stacklevel=2,
            )
        return data

    backend: Literal["hf", "vllm"] = "hf"
    num_beams: int = Field(20, ge=1)
    top_k: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1, description="users per batch on the hf backend")
    exclude_history: bool = True
    mix: Literal["auto", "none", "hybrid", "content"] = Field(
        "auto",
        description="what the LLM is mixed with (llmrec.mix). hybrid: SASRec-CE (baselines.sasrec "
        "settings, trained on the run's split) shortlists and the LLM scores the shortlist, the two "
        "scores mixed. content (atomic ids): the LLM's catalogue log-probs + w * the item text's cosine "
        "with the recent history (+ v * SASRec-CE's log-prob when one is available; v picked on "
        "validation, 0 if it does not help). none: the LLM alone ranks the whole catalogue. auto: "
        "`train` compares the LLM alone with each available mix (the hybrid when a SASRec-CE is "
        "available: sasrec_weights, or `llmrec baseline`'s in baselines_dir; the content mix when items "
        "have text) on validation and keeps the best as the run's default; with no SASRec-CE available "
        "`train` trains one first (sasrec_time_share). Formerly `generate.retriever` (sasrec: hybrid)",
    )
    sasrec_time_share: float = Field(
        0.25,
        ge=0,
        le=1,
        description="mix: auto with no SASRec-CE available: `train` trains one after the LLM (the "
        "model and files of `llmrec baseline --model sasrec`, into baselines_dir), its training capped at "
        "this share of the LLM's training wall time, so the validation choice always sees the hybrid and "
        "the mix with SASRec-CE's term; 0: never (the choice then sees the content mix alone)",
    )
    sasrec_min_minutes: float = Field(
        5.0,
        ge=0,
        description="the least time sasrec_time_share gives SASRec-CE: a fast LLM (a cut body, a small "
        "catalogue) must not leave it a few epochs (Industrial, LLM 43 s: a 0.25 share stopped SASRec-CE "
        "at 11 s and the hybrid fell from 0.068 to 0.053 NDCG@10). SASRec-CE's own patience still stops it "
        "earlier, and baselines.sasrec.max_minutes still caps it",
    )
    shortlist: int = Field(
        50, ge=1, description="mix hybrid: items shortlisted per user for the LLM to score"
    )
    mix_weight: float | None = Field(
        None,
        ge=0,
        description="mix hybrid: score = log p(SASRec) + w * log p(LLM); none: picked on validation",
    )
    sasrec_weights: str | None = Field(
        None,
        description="the mixes' SASRec-CE: weights `llmrec baseline` saved (BASELINES_DIR/sasrec/model.pt) "
        "on the same split and baselines.sasrec settings; none: the run trains its own. Formerly "
        "`generate.retriever_weights`",
    )
    new_item_placement: Literal["calibrated", "slots"] = Field(
        "calibrated",
        description="items added after training (`llmrec items add`), atomic ids on a catalogue "
        "with text: calibrated, each list the top-K by the chance of a target at each rank of the "
        "ranking (the content mix's, or the LLM's alone) and of text similarity to the user's latest "
        "item, measured on validation by the content mix fit (run once if the run has none); slots: "
        "new_item_slots, as every other run",
    )
    new_item_boost: float = Field(
        1.0,
        ge=0,
        description="calibrated placement: an added item's chance (of text similarity's rank table) is "
        "multiplied by this before the top-K is taken. 1: as often as validation says items at that "
        "text rank are the next item; above 1 shows new items more often (a freshness policy, paid "
        "for by warm users: benchmarks/results/cold_start/newest-items.json); 0 keeps them out",
        json_schema_extra=EXPERIMENTAL,
    )
    new_item_slots: int = Field(
        2,
        ge=0,
        description="places of each top-K kept for items added after training (`llmrec items add`) "
        "when fewer make the list on their own: the added items most similar by text to the user's "
        "latest item (those the LLM scores best if the run has no text vectors)",
    )
    new_item_neighbours: int | None = Field(
        10,
        ge=1,
        description="an added item takes a slot only if it is among this many items (of the whole "
        "catalogue) most similar by text to the user's latest item; none: no such floor",
    )
    vllm: VllmSettings = Field(default_factory=VllmSettings)


class SasrecSettings(_Section):
    """SASRec with full cross-entropy (`llmrec baseline CONFIG --model sasrec`)."""

    hidden: int = Field(64, ge=1)
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    max_len: int = Field(50, ge=2, description="most recent items the model reads")
    lr: float = Field(1e-3, gt=0)
    layout: Literal["pre-ln", "recbole"] = Field(
        "pre-ln",
        description="pre-ln: LayerNorm before each sublayer and once at the end; recbole: RecBole's SASRec "
        "(LayerNorm on the summed input embedding and after each residual, N(0, 0.02) init), to compare "
        "with figures measured in RecBole",
    )
    batch_size: int = Field(128, ge=1, description="user sequences per step (each trains every position)")
    max_epochs: int = Field(200, ge=1)
    valid_metric: Literal["ndcg@10", "mrr@10"] = Field(
        "ndcg@10", description="validation metric for early stopping (RecBole's default is mrr@10)"
    )
    patience: int = Field(10, ge=1, description="epochs without a better valid_metric before stopping")
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="wall-time cap on training: no epoch starts that would end past it at the pace so far "
        "(the first always runs); the best epoch's weights are kept. `train` sets it for the SASRec-CE it "
        "trains itself (generate.sasrec_time_share)",
    )
    seed: int = 0
    item_rows: Literal["free", "anchored"] = Field(
        "free",
        description="free: a learned row per item (SASRec-CE as published, the baseline); anchored: a "
        "trained map of the item's text vector plus a bounded id delta (anchor): items added later rank too",
    )
    anchor: AnchorSettings = Field(default_factory=AnchorSettings, description="with item_rows: anchored")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SasrecSettings:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.anchor.withhold_newest:
            raise ValueError(
                "anchor.withhold_newest is the LLM's (model.anchor); SASRec's anchor drops "
                "deltas at random only"
            )
        return self


class BaselinesConfig(_Section):
    sasrec: SasrecSettings = Field(default_factory=SasrecSettings)


class ExplainConfig(_Section):
    """Reasons for recommendations (`--explain`): facts from the history and the items' data."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """The plain statement was called `template` until 2026-12: old configs keep working, and say so."""
        if isinstance(data, dict) and data.get("generator") == "template":
            warnings.warn(
                "explain.generator template is now explain.generator statement", FutureWarning, stacklevel=2
            )
            data = dict(data) | {"generator": "statement"}
        return data

    template: str = Field("explain.j2", description="prompt template in prompts/ (the user message)")
    generator: Literal["statement", "llm"] = Field(
        "statement",
        description="statement: the chosen facts in fixed, varied wordings (no model; true by construction); "
        "llm (experimental): the base model says the facts in a sentence, checked on both sides, the "
        "statement as fallback (SmolLM2-135M: most drafts fail the check, docs/explanations.md). "
        "`template` is the old name of `statement`",
    )
    adapter: Literal["disabled", "enabled"] = Field(
        "disabled", description="write reasons with the base model or with the run's LoRA adapter on"
    )
    evidence_items: int = Field(2, ge=1, le=5, description="history items cited per recommendation")
    attribution: bool = Field(
        True,
        description="state the model's own leave-one-out attribution (atomic ids): the recent history item "
        "without which it would rank the item much lower; costs one catalogue pass per recent item",
    )
    item_noun: str = Field("item", description="what the catalogue holds, e.g. 'movie'")
    item_verb: str | None = Field(
        None, description="what a user did with an item, in the past tense ('watched'); none: from item_noun"
    )
    max_new_tokens: int = Field(40, ge=8)
    retries: int = Field(1, ge=0, description="sampled regenerations before the template fallback")
    batch_size: int = Field(16, ge=1)
    seed: int = 0


class Config(_Section):
    prepared_dir: str = "prepared"
    run_dir: str = "runs/default"
    data: DataConfig = Field(default_factory=DataConfig)
    ids: IdsConfig = Field(default_factory=IdsConfig)
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    baselines_dir: str = Field("baselines", description="where `llmrec baseline` writes its metrics")

    @model_validator(mode="after")
    def _tuned_layers_apply(self) -> Config:
        if self.model.tuned_layers is None:
            return self
        clash = {
            "model.finetune": self.model.finetune != "lora",
            "model.item_rows": self.model.item_rows != "free",
            "prompts.time": self.prompts.time != "none",
        }
        for key, bad in clash.items():
            if bad:
                raise ValueError(
                    f"model.tuned_layers trains LoRA on the top layers with the input's item rows held "
                    f"fixed; it needs model.finetune: lora, model.item_rows: free and prompts.time: none "
                    f"({key} is not)"
                )
        return self

    @model_validator(mode="after")
    def _separator_for_scheme(self) -> Config:
        p = self.prompts
        if p.item_separator == "auto":
            one_token = self.ids.scheme == "atomic" and p.objective == "every_item"
            p.item_separator = "none" if one_token else "line_break"
        elif p.item_separator == "none" and self.ids.scheme != "atomic":
            raise ValueError(
                f"prompts.item_separator none needs atomic ids (one token an item); {self.ids.scheme} ids "
                "span several tokens and need the line break that ends them"
            )
        return self

    def resolve_paths(self, base: Path) -> Config:
        """Return a copy whose relative paths are anchored at `base`."""

        def anchor(p: str) -> str:
            return str((base / p).resolve())

        cfg = self.model_copy(deep=True)
        cfg.prepared_dir = anchor(cfg.prepared_dir)
        cfg.run_dir = anchor(cfg.run_dir)
        cfg.baselines_dir = anchor(cfg.baselines_dir)
        for source in cfg.data.source_list():
            for key in ("path", "interactions", "items"):
                value = getattr(source, key)
                if value is not None and not value.startswith(BUILTIN):
                    setattr(source, key, anchor(value))
        if cfg.ids.embeddings_file is not None:
            cfg.ids.embeddings_file = anchor(cfg.ids.embeddings_file)
        if cfg.generate.sasrec_weights is not None:
            cfg.generate.sasrec_weights = anchor(cfg.generate.sasrec_weights)
        if (base / cfg.prompts.template).exists():
            cfg.prompts.template = anchor(cfg.prompts.template)
        if (base / cfg.explain.template).exists():
            cfg.explain.template = anchor(cfg.explain.template)
        if (base / cfg.model.name).exists():
            cfg.model.name = anchor(cfg.model.name)
        if cfg.model.start_from is not None:
            cfg.model.start_from = anchor(cfg.model.start_from)
        return cfg


def apply_overrides(raw: dict, overrides: Sequence[str], path: Path) -> dict:
    """Set `dotted.key=value` pairs (value parsed as YAML) on a raw config mapping, in order.

    Lets a script run one config with a few settings changed (another id scheme, another
    protocol) without writing a derived file; the changed config is saved with the run as usual."""
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise InputError(f"override {override!r} is not key=value", path=path)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"override value is not valid YAML: {exc}", path=path, field=key) from exc
        *parents, leaf = key.strip().split(".")
        node = raw
        for part in parents:
            if node.get(part) is None:  # absent, or an empty section (`ids:` with nothing under it)
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise InputError("override goes inside a setting that is not a section", path=path, field=key)
        node[leaf] = value
    return raw


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def validation_error(exc: ValidationError, path: Path | None = None, names: Callable[[str], str] = str):
    """The first pydantic error as an InputError naming the field and the value given."""
    first = exc.errors()[0]
    key = ".".join(names(str(p)) for p in first["loc"])
    given = "" if first["type"] in ("missing", "extra_forbidden") else f" (got {first['input']!r})"
    return InputError(first["msg"] + given, path=path, field=key or None)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read and validate a YAML config, with `key=value` overrides; errors name the file and the key."""
    path = Path(path)
    text = read_text(path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", path=path) from exc
    if not isinstance(raw, dict):
        raise InputError("top level must be a mapping", path=path)
    raw = apply_overrides(raw, overrides, path)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, path) from exc
    return cfg.resolve_paths(path.parent.resolve())


Count = Annotated[int, Field(ge=1)]  # a number of users, items, rows: at least one
F = TypeVar("F", bound=Callable[..., Any])


_OPTIONS = {"split_name": "--split", "users_file": "--users", "history": "--history", "user": "--user"}


def _with_option(name: str) -> str:
    return f"{name} ({_OPTIONS.get(name, '--' + name.replace('_', '-'))})"


def checked(func: F) -> F:
    """Validate a recipe's arguments against its type hints (`Count`, `Literal` split names, ...)
    before it does any work, as the config is validated: the CLI and the Python API get the same
    errors (an InputError naming the argument and its command-line option)."""
    inner = validate_call(config=ConfigDict(arbitrary_types_allowed=True))(func)
    params = list(inspect.signature(func).parameters)

    def name(part: str) -> str:  # a positional argument's error names its index
        return _with_option(params[int(part)] if part.isdigit() else part)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return inner(*args, **kwargs)
        except ValidationError as exc:
            if exc.title != func.__name__:  # raised inside the recipe, not about its arguments
                raise
            raise validation_error(exc, names=name) from None

    return wrapper  # type: ignore[return-value]


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def _type_name(annotation: Any) -> str:
    """A field's type as a reader of the config writes it: `int | none`, `'a' | 'b'`."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(annotation))}]"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    return "none" if value is None else f"`{value!r}`" if not isinstance(value, str) else f"`{value}`"


def reference() -> str:
    """docs/configuration.md: every config key with its type, default and description, from the
    pydantic models themselves (`python -m llmrec.config > docs/configuration.md`; a test keeps the
    page current)."""
    out = [
        "# Configuration",
        "",
        "Generated from `llmrec/config.py` by `python -m llmrec.config > docs/configuration.md` (a",
        "test checks it is current). A config needs only its `data` section; every key left out takes",
        "the default below (the default recipe). Relative paths are relative to the config file.",
        "Options marked **experimental** measured no gain where they were tried and stay off by",
        "default; they may change or go without notice.",
        "",
    ]

    def section(model: type[BaseModel], prefix: str, experimental: bool = False) -> None:
        rows, nested = [], []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((f"{prefix}{name}", annotation, field.json_schema_extra == EXPERIMENTAL))
                continue
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            if experimental or field.json_schema_extra == EXPERIMENTAL:
                description = f"**experimental** {description}"
            rows.append(
                f"| `{prefix}{name}` | {_type_name(annotation)} | {_default(field)} | {description} |"
            )
        if rows:
            title = prefix.rstrip(".") or "top level"
            doc = " ".join((model.__doc__ or "").split())
            out.extend(
                [
                    f"## `{title}`",
                    "",
                    *([doc, ""] if doc and prefix else []),
                    "| key | type | default | what |",
                    "|---|---|---|---|",
                    *rows,
                    "",
                ]
            )
        for name, child, child_experimental in nested:
            section(child, f"{name}.", experimental or child_experimental)

    section(Config, "")
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(reference(), end="")
