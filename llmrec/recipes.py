"""The recipes behind the CLI: plain functions that wire the stages together.

prepare(cfg)     import -> split -> item ids -> prompt datasets   (cfg.prepared_dir)
train(cfg)       LoRA fine-tune with periodic validation          (cfg.run_dir)
evaluate(run)    full-ranking metrics beside popularity           (run/metrics-<split>.json)
recommend(run)   top-K for one user or an ad-hoc history (with reasons: explain=True)
score(run, out)  batch top-K to Parquet/JSONL, resumable (with reasons: explain=True)
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from accelerate import PartialState
from accelerate.utils import set_seed
from rich.console import Console

from llmrec.backbone import (
    add_tokens,
    cache_dir,
    init_rows_from_text,
    load_model,
    load_tokenizer,
    resize_for_tokenizer,
    resolve_model,
)
from llmrec.baselines import Popularity
from llmrec.catalogue.change import base_model
from llmrec.config import Config, Count, checked, dump_config
from llmrec.data import SplitData, item_has_text, leave_one_out, load_catalog
from llmrec.errors import InputError
from llmrec.evaluate import ranking_metrics
from llmrec.evaluate.metrics import by_domain, by_history_length
from llmrec.explain import Explainer
from llmrec.generate import Recommendation, Recommender
from llmrec.ids import ItemIds, build_item_ids
from llmrec.ids.embeddings import item_text_vectors, text_embeddings
from llmrec.ids.item_ids import choose_embeddings
from llmrec.io import atomic_path, check_writable_dir, claim_dir, exclusive, read_json, write_json
from llmrec.mix import (
    ContentMixRecommender,
    HybridRecommender,
    choose_mix,
    fit_hybrid,
    fitted_sasrec,
    load_recommender,
)
from llmrec.mix.surface import MixedRecommender
from llmrec.model.anchored import AnchoredTuning
from llmrec.model.time_gaps import TimedTuning
from llmrec.prompts import (
    PromptBuilder,
    alignment_examples,
    eval_examples,
    examples_path,
    item_texts,
    load_examples,
    save_examples,
    training_examples,
    window_examples,
)
from llmrec.report import MIX_LABELS, print_metrics
from llmrec.run_dir import OPTIONAL_COPIES, PREPARED_COPIES, RunDir
from llmrec.train.assembly import item_anchor, prepared_fingerprint, time_gap_rows
from llmrec.train.checkpoint import has_checkpoint
from llmrec.train.examples import encode_training, with_examples
from llmrec.train.finetune import build_finetuning
from llmrec.train.loop import check_tracker, fit
from llmrec.train.objectives import build_objective
from llmrec.train.packing import PackedRows, plan_rows
from llmrec.train.start import check_start_from, start_from

console = Console(stderr=True)


def _split(catalog, cfg: Config) -> SplitData:
    return leave_one_out(catalog, dedupe=cfg.data.dedupe, min_interactions=cfg.data.min_interactions)


def prepare(cfg: Config) -> Path:
    out = check_writable_dir(cfg.prepared_dir, "prepared", field="prepared_dir")
    t0 = time.time()
    tokenizer = load_tokenizer(cfg.model.name)  # first: a wrong model name fails before any work
    if cfg.data.sources:
        names = ", ".join(source.domain for source in cfg.data.sources)
        console.log(f"importing {len(cfg.data.sources)} domains: {names}")
    else:
        console.log(f"importing {cfg.data.format} data")
    catalog = load_catalog(cfg.data)
    split = _split(catalog, cfg)
    if not split.timed:
        console.log("the data has an order but no times (positions, or numbers too small for unix time): "
                    "time gaps (prompts.time) are unused")  # fmt: skip
    embedder = None
    if cfg.ids.scheme == "semantic" and choose_embeddings(cfg.ids, split) in ("text", "both"):
        model = load_model(cfg.model.name, cfg.model.dtype, layers=cfg.model.layers)
        embedder = lambda texts: text_embeddings(texts, model, tokenizer, cache_folder=cache_dir())  # noqa: E731
    console.log(f"building {cfg.ids.scheme} item ids for {len(split.items)} items")
    ids = build_item_ids(cfg.ids, split, embedder)
    add_tokens(tokenizer, ids.new_tokens)
    builder = PromptBuilder(cfg.prompts, tokenizer, ids.id_by_item, split.titles())
    make_training = window_examples if cfg.prompts.objective == "every_item" else training_examples
    frames = {
        "train": make_training(split, builder, cfg.prompts.examples_per_user),
        "valid": eval_examples(split, builder, "valid"),
        "test": eval_examples(split, builder, "test"),
    }
    with atomic_path(out, kind="prepared") as tmp:
        tmp.mkdir()
        split.save(tmp)
        ids.save(tmp)
        tokenizer.save_pretrained(tmp / "tokenizer")
        for name, frame in frames.items():
            save_examples(frame, tmp / f"examples-{name}")
        (tmp / "config.yaml").write_text(dump_config(cfg))
        write_json(
            tmp / "manifest.json",
            {
                "source": catalog.source,
                "interactions": len(catalog.interactions),
                "users": len(split.users),
                "items": len(split.items),
                "evaluated_users": int(split.users["test"].notna().sum()),
                "timed": split.timed,
                "examples": {k: len(v) for k, v in frames.items()},
                "id_scheme": ids.scheme,
                "new_tokens": len(ids.new_tokens),
                "wall_s": round(time.time() - t0, 1),
            },
        )
    console.log(f"prepared {out} in {time.time() - t0:.0f}s: {len(frames['train'])} training examples")
    return out


def _validator(cfg: Config, tokenizer, ids: ItemIds, split: SplitData):
    sample = split.eval_sample("valid", cfg.train.eval_users, cfg.train.seed)
    histories, times = split.histories(sample, "valid"), split.times(sample, "valid")
    domains = split.user_domains(sample)
    targets = sample["valid"].tolist()
    catalogue = set(ids.items)

    def validate(model) -> dict[str, float]:
        rec = Recommender(model, tokenizer, ids, split.titles(), cfg.prompts, cfg.generate,
                          item_domains=split.item_domains())  # fmt: skip
        lists = rec.recommend(histories, k=max(10, cfg.generate.top_k), times=times, domains=domains)
        m = ranking_metrics(targets, [[r.item for r in row] for row in lists], catalogue)
        return {k: m[k] for k in ("ndcg@10", "hr@10", "mrr")}

    return validate


def train(cfg: Config) -> RunDir:
    prepared = Path(cfg.prepared_dir)
    if examples_path(prepared, "train") is None:
        raise InputError("no prepared data here: run `llmrec prepare CONFIG` first", path=prepared,
                         field="prepared_dir")  # fmt: skip
    resolve_model(cfg.model.name)  # a wrong model name fails before the run folder is made
    check_tracker(cfg)
    source = check_start_from(cfg)
    if cfg.generate.mix == "auto" and cfg.generate.sasrec_time_share > 0:
        # where SASRec-CE for the choice goes after the LLM trained: a folder it may not write fails now
        check_writable_dir(Path(cfg.baselines_dir) / "sasrec", "baseline", field="baselines_dir")
    # In a multi-process launch (`accelerate launch`, `torchrun`) the main process makes the run folder
    # and writes its copies first; the others wait for it, then only read (two processes creating
    # the same folder or copying the same file see each other's half-done work).
    processes = PartialState(cpu=not torch.cuda.is_available())
    with processes.main_process_first():
        run = RunDir(claim_dir(cfg.run_dir, "run", field="run_dir"))
    pin = {"prepared_dir": str(prepared.resolve()), "fingerprint": prepared_fingerprint(prepared)}
    if run.prepared.exists() and has_checkpoint(run.checkpoint):
        before = read_json(run.prepared)
        if before["fingerprint"] != pin["fingerprint"]:
            raise InputError(
                f"the prepared data changed since this run started (it was {before['prepared_dir']}, "
                f"fingerprint {before['fingerprint']}; now {pin['fingerprint']}): resuming would mix two "
                "data sets. Train into a new run_dir, or delete this run to start over",
                path=run.path,
                field="run_dir",
            )
    # a second `train` (or `items`) on this run is refused, not run beside; in a multi-process launch
    # the main process holds the lock for all (the others are part of the same training)
    with run.writing("training") if processes.is_main_process else contextlib.nullcontext():
        return _train(cfg, run, prepared, pin, processes, source)


def _train(
    cfg: Config, run: RunDir, prepared: Path, pin: dict, processes: PartialState, source: RunDir | None
) -> RunDir:
    with processes.main_process_first():
        if processes.is_main_process:
            write_json(run.prepared, pin)
            (run.path / "config.yaml").write_text(dump_config(cfg))
            for name in PREPARED_COPIES:
                shutil.copy2(prepared / name, run.path / name)
            for name in OPTIONAL_COPIES:
                if (prepared / name).exists():
                    shutil.copy2(prepared / name, run.path / name)
            if not run.tokenizer.exists():
                shutil.copytree(prepared / "tokenizer", run.tokenizer)
    tokenizer = run.load_tokenizer()
    ids = ItemIds.load(run.path)
    split = SplitData.load(run.path)
    with processes.main_process_first():  # a first-time GGUF conversion is written by one process
        model = load_model(cfg.model.name, cfg.model.dtype, cfg.model.load_in_4bit, cfg.model.layers)
    resize_for_tokenizer(model, tokenizer, seed=cfg.train.seed)
    if ids.scheme == "atomic":
        text = split.title_or_text()
        rows = init_rows_from_text(
            model, tokenizer, tokenizer.convert_tokens_to_ids(ids.ids), [text.get(i, "") for i in ids.items]
        )
        console.log(f"atomic ids: {rows} of {len(ids.items)} item rows start from their text")
    tuning = build_finetuning(cfg)
    anchor = item_anchor(cfg, model, tokenizer, ids, split, log=console.log)
    if anchor is not None:
        tuning = AnchoredTuning(tuning, anchor, tokenizer.convert_tokens_to_ids(ids.ids))
    if time_gap_rows(cfg, split, log=console.log):
        tuning = TimedTuning(tuning, model.get_input_embeddings().weight.shape[1])
    # LoRA's initial weights come from the global RNG, whose state depends on what ran before in
    # this process (a first-time GGUF conversion, say): seed it so a run is reproducible.
    set_seed(cfg.train.seed)
    model = tuning.prepare(model, cfg, tokenizer.convert_tokens_to_ids(ids.new_tokens))
    carried = start_from(model, source, anchor, log=console.log) if source is not None else None
    builder = PromptBuilder(cfg.prompts, tokenizer, ids.id_by_item)
    # each process its own cache file: one process must not replace the file another is reading
    rank = "" if processes.is_main_process else f".{processes.process_index}"
    encoded = encode_training(load_examples(prepared, "train"), builder, tokenizer, ids,
                              run.path / f"examples-encoded{rank}.arrow", cfg.prompts.align_to)  # fmt: skip
    examples = with_examples(encoded, alignment_examples(
        cfg.train.tasks, len(encoded), item_texts(split.items, cfg.prompts.max_title_chars), ids.id_by_item,
        tokenizer, builder.end_token_id, seed=cfg.train.seed, log=console.log,
    ))  # fmt: skip
    lengths = examples["length"]
    interactions = int(split.users["train"].map(len).sum())
    tokens = sum(lengths)
    info = {"examples": len(examples), "train_interactions": interactions}
    if cfg.train.pack:
        width = max(cfg.prompts.max_prompt_tokens, max(lengths))
        rows, headed = plan_rows(lengths, examples["prefix"], width, builder.header_ids)
        packed = PackedRows(examples, rows, builder.header_ids, headed)
        tokens = packed.tokens()  # each row's header once
        info |= {"packed_rows": len(packed), "pack_width": width,
                 "pack_fill": round(tokens / (len(packed) * width), 3)}  # fmt: skip
        console.log(f"{len(examples)} examples packed into {len(packed)} rows of {width} tokens "
                    f"({info['pack_fill']:.0%} full, {sum(headed)} sharing one header)")  # fmt: skip
        examples = packed
    info |= {"train_tokens": tokens, "tokens_per_interaction": round(tokens / max(interactions, 1), 3)}
    console.log(f"training on {len(examples)} rows, {info['tokens_per_interaction']} tokens per interaction; "
                f"run directory {run.path}")  # fmt: skip
    objective = build_objective(cfg, ids, tokenizer, builder.end_token_id, anchor)
    validate = _validator(cfg, tokenizer, ids, split)
    if anchor is not None:
        validate = tuning.validator(validate)
        info |= {"item_rows": "anchored"}
    info |= {"time": "gaps" if cfg.prompts.time == "gaps" and split.timed else "none"}
    if carried is not None:
        info |= {"start_from": carried}
    summary = fit(
        cfg, model, tokenizer, examples, run, validate, tuning=tuning, objective=objective, info=info
    )
    if not processes.is_main_process:
        return run  # the mix below is the main process's work, one model in one process
    # a mix's mixing weight was chosen for the weights it was fitted with: refit or drop it
    shutil.rmtree(run.mix_dir, ignore_errors=True)
    if cfg.generate.mix == "hybrid":
        fit_hybrid(run.path, log=console.log)
    elif cfg.generate.mix == "auto":
        sasrec = sasrec_for_choice(cfg, split, summary["train_wall_s"])
        # the best weights' validation NDCG@10 is the LLM-alone side, on the users the choice uses
        choose_mix(run.path, log=console.log, llm_ndcg=summary["best_valid"].get("ndcg@10"),
                         record={"sasrec": sasrec} if sasrec else None)  # fmt: skip
    return run


def sasrec_for_choice(cfg: Config, split: SplitData, llm_wall_s: float) -> dict | None:
    """Make sure `train`'s validation choice (`generate.mix: auto`) has a SASRec-CE to mix in:
    reuse `baselines_dir/sasrec/model.pt` when it was trained on this split, else train one there
    (`baseline(cfg, "sasrec")`, the same files), capped at `generate.sasrec_time_share` of the LLM's
    training wall time. Returns what was done, for the run's choice.json; None when the config names
    weights (`generate.sasrec_weights`) or the share is 0."""
    if cfg.generate.sasrec_weights is not None:
        return None
    folder = Path(cfg.baselines_dir) / "sasrec"
    stamp = folder / "split.json"
    if (folder / "model.pt").is_file():
        this = split.fingerprint()  # hashes every user's sequence: once
        if stamp.is_file():
            trained_on = read_json(stamp).get("fingerprint")
        else:  # weights from before `baseline` recorded its split: this split's if they load for it
            trained_on = this if _loads(cfg, split, folder) else None
        if trained_on == this:
            console.log(f"mix: reusing SASRec-CE from {folder} (trained on this split)")
            return {"reused": str(folder / "model.pt")}
        console.log(f"mix: the SASRec-CE in {folder} was trained on other data (split {trained_on}, "
                    f"this run's {this}): training a new one in its place")  # fmt: skip
    share = cfg.generate.sasrec_time_share
    if share == 0:
        console.log("mix: generate.sasrec_time_share is 0: no SASRec-CE trained for the choice")
        return None
    floor_s = cfg.generate.sasrec_min_minutes * 60
    cap_s = max(share * llm_wall_s, floor_s)
    capped = cfg.model_copy(deep=True)
    own = capped.baselines.sasrec.max_minutes
    capped.baselines.sasrec.max_minutes = cap_s / 60 if own is None else min(own, cap_s / 60)
    cap_s = capped.baselines.sasrec.max_minutes * 60
    console.log(f"mix: training SASRec-CE into {folder} for the validation choice, at most {cap_s:.0f}s "
                f"({share:g} of the LLM's {llm_wall_s:.0f}s, at least {floor_s:.0f}s)")  # fmt: skip
    t0 = time.time()
    fitted = baseline(capped, "sasrec")["valid"]["train"]
    wall = time.time() - t0
    console.log(f"mix: SASRec-CE trained in {wall:.0f}s (stopped by {fitted['stop_reason']}, "
                f"best epoch {fitted['best_epoch']} of {fitted['epochs_run']})")  # fmt: skip
    return {
        "trained": str(folder / "model.pt"),
        "cap_s": round(cap_s, 2),
        "train_wall_s": fitted["train_wall_s"],
        "wall_s": round(wall, 1),  # with its validation/test lists and metrics
        "stop_reason": fitted["stop_reason"],
        "epochs_run": fitted["epochs_run"],
        "best_epoch": fitted["best_epoch"],
    }


def _loads(cfg: Config, split: SplitData, folder: Path) -> bool:
    """Whether the SASRec-CE weights in `folder` load for this catalogue and settings: the best that
    can be checked of weights saved before `baseline` recorded its split."""
    from llmrec.baselines import SasrecRecommender

    try:
        SasrecRecommender(split, cfg.baselines.sasrec).load_checked(folder / "model.pt")
    except InputError:
        return False
    return True


@checked
def evaluate(
    run_dir: Path,
    split_name: Literal["valid", "test"] = "test",
    limit: Count | None = None,
    seed: int = 0,
    recommender: Recommender | HybridRecommender | ContentMixRecommender | None = None,
    backend: str | None = None,
    mix: Literal["none", "hybrid", "content"] | None = None,
    compare: bool = True,
) -> dict:
    """Evaluate the run's recommender (`llmrec.load`'s) and popularity on the same users; write
    `metrics-<split>.json` and each user's list (`lists-<split>.parquet`: user, target, items), for
    paired comparisons. `mix`: none (the LLM alone), sasrec (the hybrid) or content (the content
    mix); default: the run's generate.mix (auto: chosen on validation). `compare`: beside
    popularity, SASRec-CE (when the run's mixes have one) and, for a mix, the LLM alone (one more
    pass of the LLM over the users)."""
    run = RunDir(run_dir)
    cfg = run.load_config()
    split = run.load_split()
    users = split.eval_users(split_name)
    if limit and limit < len(users):
        users = users.sample(n=limit, random_state=seed).reset_index(drop=True)
    histories, times = split.histories(users, split_name), split.times(users, split_name)
    domains = split.user_domains(users)  # several domains: each user's lists come from their own
    targets = users[split_name].tolist()
    k = max(10, cfg.generate.top_k)
    rec = recommender or load_recommender(run.path, backend, mix, log=console.log)
    t0 = time.time()
    recs = rec.recommend(histories, k=k, progress=True, times=times, domains=domains)
    lists = [[r.item for r in row] for row in recs]
    wall = time.time() - t0
    catalogue = set(rec.item_ids.items)
    lengths = [len(h) for h in histories]
    metrics = ranking_metrics(targets, lists, catalogue)
    metrics["by_history_length"] = by_history_length(targets, lists, catalogue, lengths)
    if domains is not None:
        metrics["by_domain"] = by_domain(targets, lists, domains, split.domain_catalogues())
    exclude = cfg.generate.exclude_history
    pop = Popularity(split)
    compared = {}  # rows in the order printed: the LLM alone, SASRec-CE, popularity
    if compare and isinstance(rec, MixedRecommender) and not getattr(rec, "alone", False):
        console.log("the LLM alone on the same users, for comparison (--no-compare skips it)")
        alone = rec.llm.recommend(histories, k=k, progress=True, times=times, domains=domains)
        compared["llm_alone"] = [[r.item for r in row] for row in alone]
    if compare and (sasrec := fitted_sasrec(run.path)) is not None:
        known = [[i for i in h if i in sasrec.index] for h in histories]  # items added later: unknown to it
        compared["sasrec"] = sasrec.recommend(known, k, exclude, domains)
    each_domain = domains or [None] * len(histories)
    compared["popularity"] = [
        pop.recommend(h, k, exclude, d) for h, d in zip(histories, each_domain, strict=True)
    ]
    metrics["baselines"] = {
        name: ranking_metrics(targets, other, catalogue)
        | {"by_history_length": by_history_length(targets, other, catalogue, lengths)}
        | ({"by_domain": by_domain(targets, other, domains, split.domain_catalogues())} if domains else {})
        for name, other in compared.items()
    }
    metrics |= {
        "split": split_name,
        "backend": rec.backend,
        "num_beams": max(cfg.generate.num_beams, k),
        "exclude_history": cfg.generate.exclude_history,
        "generate_wall_s": round(wall, 1),
        "users_per_s": round(len(histories) / max(wall, 1e-9), 2),
    }
    if isinstance(rec, HybridRecommender):
        metrics["mix"] = {"model": "hybrid", "shortlist": rec.shortlist, "weight": str(rec.weight)}
    elif isinstance(rec, ContentMixRecommender) and rec.alone:
        metrics["mix"] = {"model": "none", "new_item_placement": "calibrated"}
    elif isinstance(rec, ContentMixRecommender):
        metrics["mix"] = {"model": "content", "profile": rec.profile or "all", "weight": rec.weight,
                                "sasrec_weight": rec.sasrec_weight}  # fmt: skip
    else:
        metrics["mix"] = {"model": "none"}
    if (choice_file := run.mix_dir / "choice.json").exists():
        choice = metrics["mix"]["chosen_on_validation"] = read_json(choice_file)
        console.log(f"mix: {metrics['mix']['model']} (validation chose {choice['chosen']}; "
                    "--mix overrides)")  # fmt: skip
    if run.summary.exists():
        metrics["train"] = read_json(run.summary)
    write_lists(run.path / f"lists-{split_name}.parquet", users["user"].tolist(), targets, lists)
    write_json(run.metrics(split_name), metrics)
    print_metrics(metrics, label=MIX_LABELS[metrics["mix"]["model"]])
    return metrics


def _item_text_vectors(cfg: Config, split: SplitData) -> np.ndarray:
    """The item text vectors by the config's base model: what the content baseline ranks by and
    anchored SASRec's rows start from."""
    return item_text_vectors(split.items, *base_model(cfg))


@checked
def baseline(
    cfg: Config,
    model: Literal["sasrec", "popularity", "content"],
    split_names: tuple[Literal["valid", "test"], ...] = ("valid", "test"),
) -> dict[str, dict]:
    """Train/fit a baseline on the prepared split; write `baselines_dir/<model>/metrics-<split>.json`
    with the same metrics (and evaluation code) as `evaluate`, and the config it ran (`config.yaml`)."""
    from llmrec.baselines import ContentRecommender, SasrecRecommender

    out_dir = check_writable_dir(Path(cfg.baselines_dir) / model, "baseline", field="baselines_dir")
    if (Path(cfg.prepared_dir) / "users.parquet").exists():
        split = SplitData.load(cfg.prepared_dir)
    else:  # the same import and split as `prepare`, without item ids and prompts
        split = _split(load_catalog(cfg.data), cfg)
    exclude = cfg.generate.exclude_history
    k = max(10, cfg.generate.top_k)
    t0 = time.time()
    if model == "sasrec":
        vectors = None
        if cfg.baselines.sasrec.item_rows == "anchored":
            if item_has_text(split.items).any():
                vectors = _item_text_vectors(cfg, split)
            else:
                console.log("sasrec: no item has text, so item_rows: anchored trains free rows")
                cfg.baselines.sasrec.item_rows = "free"  # and the config written below says so
        sasrec = SasrecRecommender(split, cfg.baselines.sasrec, vectors)
        summary = sasrec.fit(split, exclude, log=console.log)
        claim_dir(out_dir, "baseline", field="baselines_dir")
        sasrec.save(out_dir / "model.pt")  # reused by `train` (the hybrid's shortlist)
        sasrec.save_item_embeddings(out_dir / "item-embeddings.parquet")

        def recommend(histories: list[list[str]], domains: list[str] | None) -> list[list[str]]:
            return sasrec.recommend(histories, k, exclude, domains)
    elif model == "content":
        content = ContentRecommender(split, _item_text_vectors(cfg, split))
        summary = content.fit(split, exclude, log=console.log) | {"text_model": cfg.model.name}

        def recommend(histories: list[list[str]], domains: list[str] | None) -> list[list[str]]:
            return content.recommend(histories, k, exclude, domains=domains)
    else:
        pop = Popularity(split)
        summary = {"model": "popularity"}

        def recommend(histories: list[list[str]], domains: list[str] | None) -> list[list[str]]:
            each = domains or [None] * len(histories)
            return [pop.recommend(h, k, exclude, d) for h, d in zip(histories, each, strict=True)]

    summary["fit_wall_s"] = round(time.time() - t0, 1)
    claim_dir(out_dir, "baseline", field="baselines_dir")
    (out_dir / "config.yaml").write_text(dump_config(cfg))  # the settings, `--set` overrides included
    write_json(out_dir / "split.json", {"fingerprint": split.fingerprint()})  # what `train` may reuse
    results = {}
    for name in split_names:
        users = split.eval_users(name)
        histories = split.histories(users, name)
        domains = split.user_domains(users)
        t1 = time.time()
        lists = recommend(histories, domains)
        write_lists(out_dir / f"lists-{name}.parquet", users["user"].tolist(), users[name].tolist(), lists)
        metrics = ranking_metrics(users[name].tolist(), lists, set(split.items["item"]))
        metrics["by_history_length"] = by_history_length(
            users[name].tolist(), lists, set(split.items["item"]), [len(h) for h in histories]
        )
        if domains is not None:
            metrics["by_domain"] = by_domain(users[name].tolist(), lists, domains, split.domain_catalogues())
        metrics |= {"split": name, "model": model, "exclude_history": exclude,
                    "generate_wall_s": round(time.time() - t1, 1), "train": summary}  # fmt: skip
        write_json(out_dir / f"metrics-{name}.json", metrics)
        results[name] = metrics
    print_metrics(results[split_names[-1]], label=model)
    console.log(f"wrote {out_dir}/metrics-{{{','.join(split_names)}}}.json")
    return results


def write_lists(path: Path, users: list[str], targets: list[str], lists: list[list[str]]) -> None:
    """Each evaluated user's ranked list beside the target: what paired tests compare."""
    with atomic_path(path) as tmp:
        pd.DataFrame({"user": users, "target": targets, "items": lists}).to_parquet(tmp, index=False)


@checked
def recommend(
    run_dir: Path,
    user: str | None = None,
    history: list[str] | None = None,
    k: Count = 10,
    backend: Literal["hf", "vllm"] | None = None,
    explain: bool = False,
    mix: Literal["none", "hybrid", "content"] | None = None,
    times: list[float] | None = None,
    now: float | None = None,
    domain: str | None = None,
) -> list[Recommendation]:
    """Top-`k` for a known `user` (their whole history, with its times) or an ad-hoc `history`
    (with `times`, seconds, if known); `now`: the request's time (default: `prompts.time`'s).
    `domain`: in a run over several domains, the one to recommend from (a known user: their own
    unless named)."""
    run = RunDir(run_dir)
    run.load_config()
    if (user is None) == (history is None):
        raise InputError("give exactly one of a user (--user) or a history (--history)", field="user")
    split = run.load_split()
    split.check_domain(domain, field="domain (--domain)")
    if history is None:
        history, times = split.user_history(user)
        domain = domain or split.user_domain(user)
    if not history:
        raise InputError("the history is empty: give at least one item id", field="history")
    catalogue = set(split.items["item"])
    unknown = [i for i in history if i not in catalogue]
    if unknown:
        raise InputError(f"unknown item id(s) {unknown[:5]} (not in the run's catalogue)", field="history")
    rec = load_recommender(run.path, backend, mix, log=console.log)
    recs = rec.recommend([history], k=k, times=None if times is None else [times],
                         now=None if now is None else [now], domains=domain)  # fmt: skip
    if explain:
        explainer(run, rec, split).attach([history], recs)
    return recs[0]


def explainer(
    run: RunDir,
    rec: Recommender | HybridRecommender | ContentMixRecommender,
    split: SplitData | None = None,
    settings: dict | None = None,
) -> Explainer:
    """The run's explainer. The plain statement (the default) needs no writer; `explain.generator:
    llm` writes with the run's model (a transformers copy under the vLLM backend), or, where the
    run's body is cut (`model.layers`), with the whole base model, since a cut body ranks but cannot
    write. `split`: the run's prepared data, when the caller has loaded it already; `settings`:
    `explain` keys over the run's (e.g. {"generator": "llm"})."""
    cfg = run.load_config()
    cfg.explain = cfg.explain.model_validate(cfg.explain.model_dump() | (settings or {}))
    if cfg.explain.generator == "statement":
        model = None
    elif cfg.model.layers is not None:
        model = load_model(cfg.model.name, cfg.model.dtype)
    else:
        model = rec.model if rec.model is not None else run.load_model(rec.tokenizer)
    split = split if split is not None else run.load_split()
    llm = rec.llm if isinstance(rec, MixedRecommender) else rec
    scores = columns = None
    if llm.item_tokens is not None:  # atomic ids: the catalogue scores the attribution needs
        scores = partial(llm.score_catalogue, exclude_history=True)
        columns = llm.item_ids.index
    return Explainer.for_split(model, rec.tokenizer, split, cfg.explain, scores, columns)


def sample_users(split: SplitData, n: int, seed: int = 0) -> list[str]:
    users = split.eval_users("test")["user"].tolist()
    return random.Random(seed).sample(users, min(n, len(users)))


def read_user_ids(path: str | Path) -> list[str]:
    """User ids from a text file (one per line) or a CSV/TSV/Parquet/JSONL table with a `user` column;
    a repeated user is kept once (first place), so the output has one top-K per user."""
    from llmrec.data.importers import read_id_list

    path = Path(path)
    users = read_id_list(path, "user")
    unique = list(dict.fromkeys(users))
    if len(unique) < len(users):
        console.log(f"{path}: {len(users) - len(unique)} repeated user id(s) scored once")
    return unique


def check_output_file(out: Path, suffixes: tuple[str, ...]) -> None:
    """Fail before any work if `out` cannot become the output: wrong type, a folder, unwritable."""
    if out.suffix not in suffixes:
        raise InputError(f"output must end in {' or '.join(suffixes)}", path=out, field="out (--out)")
    if out.is_dir():
        raise InputError("is a folder; --out names the output file", path=out, field="out (--out)")
    parent = out.parent if out.parent != Path("") else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InputError("is not a folder", path=parent, field="out (--out)")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("/"))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError("cannot write here (permission denied)", path=existing, field="out (--out)")


@checked
def score(
    run_dir: Path,
    out: Path,
    *,
    users_file: Path | None = None,
    split_name: Literal["valid", "test"] | None = None,
    k: Count = 10,
    shard_size: Count = 1000,
    limit: Count | None = None,
    strict: bool = False,
    backend: Literal["hf", "vllm"] | None = None,
    explain: bool = False,
    mix: Literal["none", "hybrid", "content"] | None = None,
    domain: str | None = None,
) -> dict:
    """Batch top-K for a users file (full known history) or an evaluation split (its history).
    `domain`: in a run over several domains, the one every user gets items from (default: each
    user's own).
    Everything about the command line is checked before the model loads; a second `score` on the
    same output stops at once instead of doing the work twice."""
    from llmrec.score import ScoreRequest, score_users

    out = Path(out)
    check_output_file(out, (".parquet", ".jsonl"))
    run = RunDir(run_dir)
    cfg = run.load_config()
    if (users_file is None) == (split_name is None):
        raise InputError("give exactly one of --users FILE or --split", field="users_file (--users)")
    split = run.load_split()
    split.check_domain(domain, field="domain (--domain)")
    if split_name is not None:
        rows = split.eval_users(split_name)
        requests = [
            ScoreRequest(
                row["user"],
                split.history(row, split_name),
                split.history_times(row, split_name),
                domain=domain or row.get("domain"),
            )  # fmt: skip
            for _, row in rows.iterrows()
        ]
    else:
        known = {row["user"]: row for _, row in split.users.iterrows()}
        requests = [
            ScoreRequest(
                user,
                split.full_history(known[user]),
                split.full_times(known[user]),
                domain=domain or known[user].get("domain"),
            )  # fmt: skip
            if user in known
            else ScoreRequest(user, None, error=f"unknown user '{user}'")
            for user in read_user_ids(users_file)
        ]
    requests = requests[:limit] if limit else requests
    if strict and (bad := next((r for r in requests if r.error), None)):
        raise InputError(bad.error, path=users_file, where=f"user {bad.user}", field="user")
    with exclusive(out.with_name(out.name + ".parts") / "lock", f"scoring into {out}"):
        rec = load_recommender(run.path, backend, mix, log=console.log)
        settings = {"run": str(run.path.resolve()), "k": k, "source": str(users_file or split_name),
                    "mix": rec.backend} | ({"domain": domain} if domain else {})  # fmt: skip
        reasons = explainer(run, rec, split) if explain else None
        if explain:
            settings["explain"] = cfg.explain.model_dump()

        def recommend(histories, times, domains) -> list[list[Recommendation]]:
            recs = rec.recommend(histories, k=k, times=times, domains=domains)
            return reasons.attach(histories, recs) if reasons is not None else recs

        summary = score_users(
            requests,
            recommend,
            out,
            explained=explain,
            shard_size=shard_size,
            settings=settings,
            strict=strict,
            check_history=rec.check_history,
        )
        console.log(
            f"scored {summary['users']} users -> {summary['rows']} rows, {summary['errors']} errors: {out}"
        )
        return summary
