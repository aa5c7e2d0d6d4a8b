"""Cold start: items added after training, measured (the study behind the defaults for added items).

For each data set the newest share of items (by first interaction: the earliest timestamp, or for
Industrial the earliest `position` any user has them at; 10% on Industrial, 20% on ML-100K so that
cold test users number in the hundreds) is removed from training entirely: their interactions are
dropped, and the LLM (the default recipe, free item rows and `model.item_rows: anchored`; on Industrial
also anchored rows with `model.anchor.delta_dropout: 0.75`, the `anchored-dropout75` variant, and with
`model.anchor.withhold_newest: 0.1`, the `withheld` variant) and SASRec-CE are trained without them,
three training seeds each. Then `llmrec items add` puts them in each run's
catalogue, and every model ranks the whole catalogue (warm + added) for the test users of the full
data's leave-one-out split:

- history: the user's history before the test target, cold items left out (no model was trained on
  them as inputs, and the run before the add cannot read them);
- "cold" users: the test target is an added item; "warm": the rest.

Models, all through library code: the LLM after the add (`Recommender` of the run, with
`generate.new_item_slots` at the library default, and plain: no slots), the LLM before the add (zero
on cold targets by construction), SASRec-CE (likewise zero on cold), the content baseline
(`llmrec.baselines.ContentRecommender` over the text vectors `items add` writes, its profile length
chosen on validation by cold HR@10, the choice most favourable to it) and popularity (training
counts: an added item has none).

Run from the repository root as `python docs/experiments/2026-12-cold-start/study.py STAGE ...`:

    study.py split ml100k              # data + config under runs/cold-start/ml100k
    study.py train ml100k [--seeds 0 1 2] [--variants free]   # resumable
    study.py train industrial --titles   # + anchored rows with titles in the prompt
    study.py measure ml100k [--seeds 0 1 2] [--titles]   # items add + every model
    study.py mix ml100k [--seeds 0 1 2]   # + the content mix rows (after measure)
    study.py mix industrial --sasrec   # the mix with SASRec-CE's term (after mix)
    study.py frontier industrial   # cold vs warm as added items get a score offset
    study.py placement industrial [--sasrec]  # calibrated placement x boost
    study.py placement ml100k --variants free --alone --seeds 0  # the LLM alone
    study.py closeness industrial  # target rate of near items by cosine
    study.py newness industrial    # does history newness predict a cold target?
    study.py textpath industrial   # the anchored rows' text path vs text similarity
    study.py textpath industrial --variants withheld --sasrec  # + SASRec-CE
    study.py sasrec industrial     # SASRec-CE, free and text-anchored rows
    study.py report   # cold-start.json beside this file
    study.py report --rerun-key diagnostics_rerun_withheld   # a later rerun beside
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from safetensors.torch import load_file

import llmrec.generate.atomic as atomic_scoring
from benchmarks.common import machine
from llmrec.backbone import resolve_dtype
from llmrec.baselines import ContentRecommender
from llmrec.baselines.content import PROFILES
from llmrec.baselines.popularity import Popularity
from llmrec.baselines.sasrec import SasrecRecommender
from llmrec.catalogue.change import anchored_rows, base_model, catalogue_text_vectors
from llmrec.config import DataConfig, GenerateConfig, load_config
from llmrec.data import Catalog, SplitData, leave_one_out, load_catalog, newest_items
from llmrec.evaluate.metrics import ranking_metrics
from llmrec.generate import Recommender
from llmrec.generate.new_items import PROFILE_ITEMS, RankChance, rank_chance, target_ranks, top_by_chance
from llmrec.io import write_json
from llmrec.mix import ContentMixRecommender, fit_content_mix
from llmrec.mix.content import SASREC_FILE
from llmrec.mix.hybrid import placed_by_chance
from llmrec.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[3]

WORK = Path(os.environ.get("COLD_START_WORK", ROOT / "runs" / "cold-start"))  # a smoke run elsewhere
# the study's own report (its schema predates benchmarks/; the copy in the result schema is
# benchmarks/results/cold_start/newest-items.json, which `report` does not touch)
OUT = Path(__file__).with_name("cold-start.json")
COLD_SHARE = {"ml100k": 0.20, "industrial": 0.10}
VARIANTS = {
    "free": [],
    "anchored": ["--set", "model.item_rows=anchored"],
    # the text path made to carry more: the delta dropped for 3 items in 4 at each step (default 1 in 4)
    "anchored-dropout75": ["--set", "model.item_rows=anchored", "--set", "model.anchor.delta_dropout=0.75"],
    # the newest 10% of training items keep no delta: the text path learns to rank items as new as the added
    "withheld": ["--set", "model.item_rows=anchored", "--set", "model.anchor.withhold_newest=0.1"],
}
DEFAULT_VARIANTS = ["free", "anchored"]  # what `train` runs unless --variants names others
# issue 26's "titles where they pay": anchored rows plus the titles of the history in the prompt (the
# next_item template, one target a prompt), trained for the wall time its seed's anchored run took
TITLES = ["--set", "model.item_rows=anchored", "--set", "prompts.objective=next_item",
          "--set", "prompts.template=next_item.j2", "--set", "prompts.include_titles=true"]  # fmt: skip


def source_data(name: str) -> DataConfig:
    if name == "ml100k":
        return DataConfig(format="movielens", path="builtin:ml-100k")
    if name == "industrial":
        return load_config(ROOT / "scripts" / "industrial.yaml").data
    raise SystemExit(f"unknown dataset {name!r}: ml100k or industrial")


def extra_settings(name: str) -> dict:
    """What the dataset's own benchmark config sets beyond data (SASRec-CE's chosen settings)."""
    config = "industrial.yaml" if name == "industrial" else "ml100k_full.yaml"
    raw = yaml.safe_load((ROOT / "scripts" / config).read_text())
    return {"baselines": raw["baselines"], "explain": raw["explain"]}


def split(name: str) -> None:
    """Write the warm interactions, the warm and cold item tables and the run config."""
    folder = WORK / name
    (folder / "data").mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(source_data(name))
    cold = newest_items(catalog.interactions, COLD_SHARE[name])
    is_cold = catalog.interactions["item"].isin(set(cold))
    warm_inter = catalog.interactions.loc[~is_cold, ["user", "item", "timestamp"]]
    warm_inter.to_csv(folder / "data" / "interactions.csv", index=False)
    items = catalog.items[catalog.items["item"].isin(set(catalog.interactions["item"]))]
    items[~items["item"].isin(set(cold))].to_csv(folder / "data" / "items-warm.csv", index=False)
    items[items["item"].isin(set(cold))].to_csv(folder / "data" / "items-cold.csv", index=False)
    columns = {"user": "user", "item": "item", "timestamp": "timestamp", "title": "title", "text": ["text"]}
    config = {
        "prepared_dir": "prepared",
        "run_dir": "run",
        "baselines_dir": "baselines",
        "data": {
            "format": "generic",
            "interactions": "data/interactions.csv",
            "items": "data/items-warm.csv",
            "columns": columns,
        },  # fmt: skip
        **extra_settings(name),
    }
    (folder / "config.yaml").write_text(
        "# written by `python -m benchmarks cold_start` split: the default recipe on the warm items only\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    summary = {
        "items": len(items),
        "cold_items": len(cold),
        "interactions": len(catalog.interactions),
        "interactions_without_cold": len(warm_inter),
        "rule": f"newest {COLD_SHARE[name]:.0%} of items by first interaction (min timestamp, ties by mean "
        "timestamp, then id)",
    }
    (folder / "split.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


def llmrec(*args: str) -> None:
    print("$ llmrec", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "llmrec", *args], check=True)


def train(name: str, seeds: list[int], epochs: float, variants: list[str], titles: bool = False) -> None:
    """Per seed: SASRec-CE, then the LLM with free and with anchored item rows, on the warm data;
    each step is skipped when its output is there. `epochs`: the LLM's epoch cap (patience 2 stops
    it earlier), the same for both variants, so machine load changes wall time, not the numbers.
    `titles`: also the titles variant, capped at the wall time of the seed's anchored run."""
    folder = WORK / name
    config = str(folder / "config.yaml")
    if not (folder / "prepared" / "manifest.json").exists():
        llmrec("prepare", config)
    for seed in seeds:
        if not (folder / f"baselines-seed{seed}" / "sasrec" / "model.pt").exists():
            llmrec("baseline", config, "--model", "sasrec", "--set", f"baselines_dir=baselines-seed{seed}",
                   "--set", f"baselines.sasrec.seed={seed}")  # fmt: skip
        for variant in variants:
            run = f"{variant}-seed{seed}"
            if not (folder / run / "train_summary.json").exists():
                llmrec("train", config, "--set", f"run_dir={run}", "--set", f"train.seed={seed}",
                       "--set", f"train.epochs={epochs}", *VARIANTS[variant])  # fmt: skip
        run = f"titles-seed{seed}"
        if titles and not (folder / run / "train_summary.json").exists():
            anchored = folder / f"anchored-seed{seed}" / "train_summary.json"
            minutes = json.loads(anchored.read_text())["train_wall_s"] / 60
            llmrec("train", config, "--set", f"run_dir={run}", "--set", f"train.seed={seed}",
                   "--set", f"train.epochs={epochs}", "--set", f"train.max_minutes={minutes:.2f}",
                   *TITLES)  # fmt: skip


def eval_users(
    name: str, split_name: str, catalog: Catalog | None = None
) -> tuple[list[list[str]], list[str], np.ndarray]:
    """The full data's `split_name` users: histories without cold items, targets, target-is-cold
    (`catalog`: the full data set when the caller has loaded it already)."""
    full = leave_one_out(catalog or load_catalog(source_data(name)))
    cold = set(pd.read_csv(WORK / name / "data" / "items-cold.csv", dtype=str)["item"])
    users = full.eval_users(split_name)
    histories = [[i for i in h if i not in cold] for h in full.histories(users, split_name)]
    keep = [n for n, h in enumerate(histories) if h]  # a user with only cold items has nothing to go on
    targets = users[split_name].tolist()
    return (
        [histories[n] for n in keep],
        [targets[n] for n in keep],
        np.array([targets[n] in cold for n in keep]),
    )


def split_metrics(
    lists: list[list[str]], targets: list[str], is_cold: np.ndarray, catalogue: set[str]
) -> dict:
    out = {}
    for part, mask in (("cold", is_cold), ("warm", ~is_cold)):
        m = ranking_metrics([t for t, c in zip(targets, mask, strict=True) if c],
                            [lst for lst, c in zip(lists, mask, strict=True) if c], catalogue)  # fmt: skip
        out[part] = {"hr@10": round(m["hr@10"], 4), "ndcg@10": round(m["ndcg@10"], 4), "users": m["users"]}
    return out


def cold_share(lists: list[list[str]], cold: set[str]) -> float:
    return round(sum(i in cold for lst in lists for i in lst) / max(1, sum(len(lst) for lst in lists)), 4)


def added_run(folder: Path, run: str) -> Path:
    """A copy of the run with the cold items added (`llmrec items add`), made once."""
    added = folder / f"{run}-added"
    if not (added / "item_text_vectors.npy").exists():
        shutil.rmtree(added, ignore_errors=True)
        shutil.copytree(folder / run, added, ignore=shutil.ignore_patterns("checkpoint", "merged"))
        llmrec("items", "add", str(added), str(folder / "data" / "items-cold.csv"))
    return added


def llm_lists(run_dir: Path, histories: list[list[str]], slots: int | None = None) -> list[list[str]]:
    """The run's top-10 through `Recommender.recommend`; `slots`: generate.new_item_slots (None: the
    library default, whatever the run's config was saved with)."""
    rec = Recommender.from_run(run_dir)
    defaults = GenerateConfig()
    rec.cfg.new_item_slots = defaults.new_item_slots if slots is None else slots
    rec.cfg.new_item_neighbours = defaults.new_item_neighbours
    return [[r.item for r in row] for row in rec.recommend(histories, k=10, progress=True)]


def measure(name: str, seeds: list[int], split_name: str, variants: list[str], titles: bool = False) -> dict:
    """Every model on `split_name`'s users, each LLM (of `variants`, and with `titles` the titles run) and
    SASRec-CE per training seed; on the validation split only the content baseline (its profile
    length is chosen there). Merged into measure-<split>.json, so variants and seeds can be measured
    as their training ends."""
    folder = WORK / name
    started = time.time()
    histories, targets, is_cold = eval_users(name, split_name)
    cold = set(pd.read_csv(folder / "data" / "items-cold.csv", dtype=str)["item"])
    # every added run has the same catalogue; the text vectors `items add` wrote serve the content
    # baseline, taken from the first trained run (a variant still training is skipped below)
    trained = [
        f"{v}-seed{s}"
        for s in seeds
        for v in variants
        if (folder / f"{v}-seed{s}" / "train_summary.json").exists()
    ]
    if not trained:
        sys.exit(
            f"measure: no trained run of {variants} for seeds {seeds} under {folder} (run `train` first)"
        )
    added = RunDir(added_run(folder, trained[0]))
    added_split = added.load_split()
    catalogue = set(added_split.items["item"])
    content = ContentRecommender(added_split, added.load_text_vectors(len(catalogue)))
    result: dict = {"models": {}, "content_by_profile": {}}
    for last in PROFILES:
        lists = content.recommend(histories, 10, profile=last)
        result["content_by_profile"][str(last or "all")] = split_metrics(lists, targets, is_cold, catalogue)
    models = result["models"]
    for seed in seeds if split_name == "test" else []:
        for variant in (*variants, "titles") if titles else variants:
            run = f"{variant}-seed{seed}"
            if not (folder / run / "train_summary.json").exists():
                continue  # not trained (yet), or the optional titles variant (train --titles)
            added = added_run(folder, run)
            for row, slots in ((f"llm_{variant}", None), (f"llm_{variant}_plain", 0)):  # default slots, none
                named = llm_lists(added, histories, slots)
                entry = split_metrics(named, targets, is_cold, catalogue)
                models.setdefault(row, {})[str(seed)] = entry | {
                    "cold_share_in_top10": cold_share(named, cold)
                }
            before = llm_lists(folder / run, histories, slots=0)
            before_add = split_metrics(before, targets, is_cold, catalogue)
            models.setdefault(f"llm_{variant}_before_add", {})[str(seed)] = before_add
        warm_split = SplitData.load(folder / "prepared")
        sasrec = SasrecRecommender(warm_split, load_config(folder / "config.yaml").baselines.sasrec)
        sasrec.load(folder / f"baselines-seed{seed}" / "sasrec" / "model.pt")
        sasrec_lists = sasrec.recommend(histories, 10)
        sasrec_entry = split_metrics(sasrec_lists, targets, is_cold, catalogue)
        models.setdefault("sasrec_ce", {})[str(seed)] = sasrec_entry
    pop = Popularity(SplitData.load(folder / "prepared"))
    result["popularity"] = split_metrics(
        [pop.recommend(h, 10) for h in histories], targets, is_cold, catalogue
    )
    result["wall_s"] = round(time.time() - started, 1)
    return merge_measured(folder / f"measure-{split_name}.json", result)


def merge_measured(path: Path, new: dict) -> dict:
    """Merge a stage's results into measure-<split>.json, read just before the write, so stages on
    other variants and seeds may run beside it: per-seed rows are added, walls add up, the rest is
    replaced (`write_json`: in one step)."""

    def merge(old: dict, update: dict) -> dict:
        for key, value in update.items():
            if key.endswith("wall_s"):
                old[key] = round(old.get(key, 0) + value, 1)
            elif isinstance(value, dict) and isinstance(old.get(key), dict):
                old[key] = merge(old[key], value)
            else:
                old[key] = value
        return old

    merged = merge(json.loads(path.read_text()) if path.exists() else {}, new)
    write_json(path, merged)
    return merged


def content_mix(name: str, seeds: list[int], variants: list[str], sasrec: bool = False) -> None:
    """The content mix rows (`generate.mix: content`, what `train`'s auto choice fits when items
    have text): profile and weight picked on the warm run's training validation sample, then the
    added run ranks the test users with them, added items placed by the default rule (calibrated,
    the fit's chance tables) and by the slots; merged into measure-test.json as llm_<variant>_mix
    and llm_<variant>_mix_slots. llm_<variant>_alone: the LLM alone as `mix: none` serves it
    (`load_recommender`), added items placed by the fit's `llm_alone` chance table. `sasrec`: the
    fit also sweeps the seed's SASRec-CE term (what the auto choice fits when `llmrec baseline` ran
    before `train`), rows llm_<variant>_mix_sasrec and _mix_sasrec_slots (the LLM alone is unchanged)."""
    folder = WORK / name
    started = time.time()
    histories, targets, is_cold = eval_users(name, "test")
    cold = set(pd.read_csv(folder / "data" / "items-cold.csv", dtype=str)["item"])
    mixes: dict = {}
    defaults = GenerateConfig()
    for seed in seeds:
        for variant in variants:
            run = RunDir(folder / f"{variant}-seed{seed}")
            if not run.summary.exists():
                continue
            cfg, split = run.load_config(), run.load_split()
            users = split.eval_sample("valid", cfg.train.eval_users, cfg.train.seed)
            weights = folder / f"baselines-seed{seed}" / "sasrec" / "model.pt" if sasrec else None
            settings = fit_content_mix(run.path, users=users, sasrec_weights=weights)
            added = added_run(folder, run.path.name)
            (added / "mix").mkdir(exist_ok=True)
            write_json(added / "mix" / "content_mix.json", settings)
            if sasrec:
                shutil.copy(run.path / "mix" / SASREC_FILE, added / "mix" / SASREC_FILE)
            rec = ContentMixRecommender.from_run(added)
            rec.cfg.new_item_slots = defaults.new_item_slots
            rec.cfg.new_item_neighbours = defaults.new_item_neighbours
            alone = placed_by_chance(RunDir(added), rec.llm)  # what load_recommender serves for none
            if not isinstance(alone, ContentMixRecommender):
                sys.exit(f"{added}: the LLM alone was not given calibrated placement")
            calibrated = defaults.new_item_placement
            rows = {"mix": (calibrated, rec), "mix_slots": ("slots", rec), "alone": (calibrated, alone)}
            if sasrec:
                rows = {"mix_sasrec": rows["mix"], "mix_sasrec_slots": rows["mix_slots"]}
            for suffix, (placement_rule, ranker) in rows.items():
                label = f"llm_{variant}_{suffix}"
                rec.cfg.new_item_placement = placement_rule
                named = [[r.item for r in row] for row in ranker.recommend(histories, k=10, progress=True)]
                entry = split_metrics(named, targets, is_cold, set(rec.item_ids.items)) | {
                    "cold_share_in_top10": cold_share(named, cold),
                    "profile": settings["profile"],
                    "weight": ranker.weight,
                    "sasrec_weight": ranker.sasrec_weight,
                    "new_item_placement": placement_rule,
                }
                mixes.setdefault(label, {})[str(seed)] = entry
    wall = round(time.time() - started, 1)
    merge_measured(folder / "measure-test.json", {"models": mixes, "content_mix_wall_s": wall})


OFFSETS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0)  # nats added to every added item's mixed score


def fitted_mixes(
    folder: Path,
    seeds: list[int],
    histories: list[list[str]],
    sasrec: bool = False,
    variant: str = "anchored",
    alone: bool = False,
):
    """Per seed whose `variant` run the `mix` stage fitted (`sasrec`: with SASRec-CE's term, `mix
    --sasrec`; else without, as `mix`): the seed, the added run's content mix (`alone`: the LLM alone
    with the fit's chances, as `mix: none` serves it) and its scores (LLM log-probs + the
    mix's bonus) for `histories`."""
    for seed in seeds:
        added = folder / f"{variant}-seed{seed}-added"
        if not (added / "mix" / "content_mix.json").exists():
            continue  # the mix stage fits it
        fitted_with = "sasrec_weights" in json.loads((added / "mix" / "content_mix.json").read_text())
        if fitted_with != sasrec:
            sys.exit(f"{added}: its content mix was fitted {'with' if fitted_with else 'without'} SASRec-CE; "
                     f"run the mix stage{' with --sasrec' if sasrec else ''} first")  # fmt: skip
        rec = ContentMixRecommender.from_run(added, alone=alone)
        bonus = rec.bonus(histories)
        scores = rec.llm.score_catalogue(histories)
        yield seed, rec, scores if bonus is None else scores + bonus


def list_metrics(
    rec: ContentMixRecommender, top: list[list[int]], targets: list[str], is_cold: np.ndarray
) -> dict:
    """Cold and warm HR/NDCG@10 of catalogue-index lists, and NDCG@10 over all users."""
    catalogue = set(rec.item_ids.items)
    named = [[rec.item_ids.items[i] for i in row] for row in top]
    entry = split_metrics(named, targets, is_cold, catalogue)
    every = ranking_metrics(targets, named, catalogue)
    return entry | {"all_hr@10": round(every["hr@10"], 4), "all_ndcg@10": round(every["ndcg@10"], 4)}


def frontier(name: str, seeds: list[int]) -> None:
    """What a cold target costs warm users: the anchored runs' content mix (as `mix` fitted it) with
    a constant offset added to every added item's score (no slots), swept over OFFSETS on the test
    users: cold and warm HR@10/NDCG@10 and NDCG@10 over all users, per offset. A diagnostic of the
    trade-off, read on test, not a setting picked there; merged into measure-test.json."""
    folder = WORK / name
    histories, targets, is_cold = eval_users(name, "test")
    rows: dict = {}
    for seed, rec, mixed in fitted_mixes(folder, seeds, histories):
        new = rec.llm.new_items.float()
        for offset in OFFSETS:
            top = (mixed + offset * new).topk(10, dim=1).indices.tolist()
            rows.setdefault(str(offset), {})[str(seed)] = list_metrics(rec, top, targets, is_cold)
    merge_measured(folder / "measure-test.json", {"anchored_mix_new_item_offset": rows})


# generate.new_item_boost: x an added item's text chance
PLACEMENT_PRIORS = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)


def placement(name: str, seeds: list[int], sasrec: bool = False, variant: str = "anchored",
              alone: bool = False) -> None:  # fmt: skip
    """What calibrated placement (`generate.new_item_placement: calibrated`, the default) trades, a
    diagnostic read on test: the `variant` runs' content mix (`sasrec`: with SASRec-CE's term;
    `alone`: the LLM alone, as `mix: none` serves it) with the chance tables the `mix` stage's
    fit stored, side by side: warm items by the share of validation targets at their rank, for a
    user whose nearest item by text is an added one the share where the item there was not the
    nearest (the library's, `apart_table_prior_*`), or the first share for every user (fits before
    the table apart, `rank_table_prior_*`); added items by the share at their text rank, times a
    prior (`generate.new_item_boost`; 1: the library's default); and the scores without slots or
    placement. Merged into measure-test.json as <variant>_<mix|mix_sasrec|alone>_placement."""
    folder = WORK / name
    histories, targets, is_cold = eval_users(name, "test")
    rows: dict = {}
    for seed, rec, mixed in fitted_mixes(folder, seeds, histories, sasrec, variant, alone):
        if rec.chance is None or rec.apart is None:
            sys.exit(f"seed {seed}: a content mix fitted before the table apart; re-run the mix stage")
        lists = {"no_slots": mixed.topk(10, dim=1).indices.tolist()}
        apart = rec.apart
        for prior in PLACEMENT_PRIORS:
            rec.llm.cfg.new_item_boost = prior
            for label, table in (("apart_table", apart), ("rank_table", None)):
                rec.apart = table
                top = top_by_chance(mixed, rec.llm.new_items, 10, rec.placement(histories))
                lists[f"{label}_prior_{prior}"] = [[s.item for s in row] for row in top]
        for label, top in lists.items():
            rows.setdefault(label, {})[str(seed)] = list_metrics(rec, top, targets, is_cold)
        print(json.dumps({label: per_seed[str(seed)] for label, per_seed in rows.items()}), flush=True)
    key = f"{variant}_{'alone' if alone else 'mix_sasrec' if sasrec else 'mix'}_placement"
    merge_measured(folder / "measure-test.json", {key: rows})


COSINE_EDGES = (-1.0, 0.7, 0.8, 0.88, 0.95, 0.98, 0.99, 1.0001)
NEAREST = 5  # the items nearest to the latest item by text whose target rate is counted per cosine bin
RANK_EDGES = (0, 1, 2, 5, 10, 20, 50, 100, 200)  # text-rank buckets of the per-rank rates


def sasrec_rows(name: str, seeds: list[int]) -> None:
    """SASRec-CE with free rows (the baseline) and with text-anchored rows (`baselines.sasrec.item_rows:
    anchored`), per seed, trained on the warm data (`llmrec baseline`, skipped when its weights are
    there) and ranked on test over the whole catalogue: the anchored model ranks the added items by
    their text path (`add_items`), the free one cannot rank them. Merged into measure-test.json as
    the `sasrec_ce` and `sasrec_ce_anchored` rows."""
    folder = WORK / name
    config = str(folder / "config.yaml")
    cfg = load_config(folder / "config.yaml")
    warm_split = SplitData.load(folder / "prepared")
    catalog = load_catalog(source_data(name))
    histories, targets, is_cold = eval_users(name, "test", catalog)
    cold_table = pd.read_csv(folder / "data" / "items-cold.csv", dtype=str)
    cold = set(cold_table["item"])
    catalogue = set(warm_split.items["item"]) | cold
    cold_items = catalog.items.set_index("item").loc[cold_table["item"]].reset_index()
    cold_vectors = catalogue_text_vectors(*base_model(cfg), cold_items)
    models: dict = {}
    for seed in seeds:
        anchored = ["--set", "baselines.sasrec.item_rows=anchored"]
        for row, folder_name, extra in (
            ("sasrec_ce", f"baselines-seed{seed}", []),
            ("sasrec_ce_anchored", f"baselines-anchored-seed{seed}", anchored),
        ):
            weights = folder / folder_name / "sasrec" / "model.pt"
            if not weights.exists():
                llmrec("baseline", config, "--model", "sasrec", "--set", f"baselines_dir={folder_name}",
                       "--set", f"baselines.sasrec.seed={seed}", *extra)  # fmt: skip
            settings = load_config(folder / folder_name / "sasrec" / "config.yaml").baselines.sasrec
            sasrec = SasrecRecommender(warm_split, settings)
            sasrec.load(weights)
            if sasrec.anchored:
                sasrec.add_items(cold_items["item"].tolist(), cold_vectors)
            lists = sasrec.recommend(histories, 10)
            models.setdefault(row, {})[str(seed)] = split_metrics(lists, targets, is_cold, catalogue) | {
                "cold_share_in_top10": cold_share(lists, cold)
            }
    merge_measured(folder / "measure-test.json", {"models": models})
    print(json.dumps({row: over_seeds(per_seed) for row, per_seed in models.items()}, indent=1))


def closeness(name: str) -> None:
    """What an added item's text says about its chance, against a warm item's: on the warm training
    split's validation users (what the content mix fit sees: every item trained) and on the full
    data's test users, cold and warm items apart, the share of items that is the next item (history
    excluded) per cosine bin among each user's NEAREST items by text to the latest item, and per
    text-rank bucket (RANK_EDGES, whole catalogue). On Industrial validation the share climbs from
    0.1% to 12% with cosine, but on cold test items only to ~5%: a model of rank and cosine fitted
    on validation (commit 900adca, TextChance) over-placed added near twins and lost cold NDCG@10
    to the rank table; merged into measure-test.json."""
    folder = WORK / name
    warm = SplitData.load(folder / "prepared")
    cold = pd.read_csv(folder / "data" / "items-cold.csv", dtype=str).reindex(columns=warm.items.columns)
    catalogue = SplitData(items=pd.concat([warm.items, cold], ignore_index=True), users=pd.DataFrame())
    # the base model's text vectors, as `items add` writes them: no trained run needed
    vectors = catalogue_text_vectors(*base_model(load_config(folder / "config.yaml")), catalogue.items)

    def share(hit: torch.Tensor, inside: torch.Tensor, bounds: list) -> dict:
        rate = round(float(hit[inside].float().mean()), 5) if inside.any() else None
        return {"bounds": bounds, "items": int(inside.sum()), "targets": int(hit[inside].sum()), "rate": rate}

    def rates(content: ContentRecommender, histories: list[list[str]], targets: list[str], mask) -> dict:
        scores = content.scores(histories)
        columns = torch.tensor([content.index[t] for t in targets])[:, None]
        top = scores.topk(NEAREST, dim=1)
        hit, cos = (top.indices == columns).flatten(), top.values.flatten()
        keep = mask[top.indices].flatten()
        by_cosine = [share(hit, keep & (cos >= low) & (cos < high), [low, min(high, 1.0)])
                     for low, high in zip(COSINE_EDGES[:-1], COSINE_EDGES[1:], strict=True)]  # fmt: skip
        deep = scores.topk(RANK_EDGES[-1], dim=1)
        hit, ranks = (deep.indices == columns), torch.arange(RANK_EDGES[-1]).expand_as(deep.indices)
        keep = mask[deep.indices] & (deep.values > float("-inf"))
        by_rank = [share(hit, keep & (ranks >= low) & (ranks < high), [low, high])
                   for low, high in zip(RANK_EDGES[:-1], RANK_EDGES[1:], strict=True)]  # fmt: skip
        return {"by_cosine_nearest": by_cosine, "by_text_rank": by_rank}

    users = warm.eval_users("valid")
    warm_content = ContentRecommender(warm, vectors[: len(warm.items)])
    everything = torch.ones(len(warm.items), dtype=torch.bool)
    result = {"valid_warm_split": rates(warm_content, warm.histories(users, "valid"), users["valid"].tolist(),
                                        everything)}  # fmt: skip
    histories, targets, _ = eval_users(name, "test")
    content = ContentRecommender(catalogue, vectors)
    cold_columns = torch.arange(len(catalogue.items)) >= len(warm.items)
    result["test_cold_items"] = rates(content, histories, targets, cold_columns)
    result["test_warm_items"] = rates(content, histories, targets, ~cold_columns)
    print(json.dumps(result), flush=True)
    merge_measured(folder / "measure-test.json", {"closeness": result})


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive outranks a negative (ties count half)."""
    ranks = pd.Series(scores).rank().to_numpy()
    positives = int(labels.sum())
    negatives = len(labels) - positives
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def newness(name: str) -> None:
    """Whether a per-user "wants something new" signal is in the history, as an AUC separating cold
    from warm targets on validation and test users: how new the user's latest items are (the
    percentile of their first interaction), and when the user was last active (the time of the
    latest event where the data has times; on data with an order only that is the history's length,
    the target's place). Merged into measure-test.json; `report` copies it into the entry."""
    catalog = load_catalog(source_data(name))
    first_seen = catalog.interactions.groupby("item")["timestamp"].min()
    percentile = first_seen.rank(pct=True)
    full = leave_one_out(catalog)
    cold = set(pd.read_csv(WORK / name / "data" / "items-cold.csv", dtype=str)["item"])
    first_added = first_seen[sorted(cold)].min()  # the earliest moment any added item existed
    out: dict = {"clock": "seconds" if full.timed else "positions (the data orders each user's items only)"}
    for split_name in ("valid", "test"):
        histories, _, is_cold = eval_users(name, split_name, catalog)
        users = full.eval_users(split_name)
        whole = full.histories(users, split_name)  # cold items included: the user was active then
        times = full.times(users, split_name) or [[float(len(h) - 1)] for h in whole]
        keep = [n for n, h in enumerate(whole) if any(i not in cold for i in h)]  # as eval_users keeps
        latest = np.array([times[n][-1] for n in keep])
        out[split_name] = {
            f"last_{n}": round(auc(is_cold, np.array([percentile[h[-n:]].mean() for h in histories])), 3)
            for n in (1, 3)
        } | {"latest_event": round(auc(is_cold, latest), 3)}
        out[split_name] |= {"cold_users": int(is_cold.sum()), "users": len(is_cold)}
        if full.timed:  # users last active before any added item existed, and how often they took one
            before = latest < first_added
            out[split_name]["active_before_first_added"] = {
                "users": int(before.sum()), "cold_users": int(is_cold[before].sum())
            }  # fmt: skip
    merge_measured(WORK / name / "measure-test.json", {"newness_auc": out})
    print(json.dumps(out))


@contextmanager
def text_path_logits(rows: torch.Tensor) -> Iterator[None]:
    """Within: the catalogue scorer's item logits are the last hidden state times `rows` (every item's
    text-path row, no id delta) instead of the trained rows; the history's item rows (the inputs)
    stay as trained. A patch of the scorer, because the head's rows are tied to the inputs."""
    original = atomic_scoring.item_logits
    atomic_scoring.item_logits = lambda head, hidden, ids: hidden.float() @ rows.T.to(hidden.device)
    try:
        yield
    finally:
        atomic_scoring.item_logits = original


def within_added(scores: torch.Tensor, new: torch.Tensor, target_columns: list[int]) -> dict:
    """Where each row's target (an added item) ranks among the added items alone by `scores`."""
    ranks = target_ranks(scores.masked_fill(~new, float("-inf")), target_columns)[1].float()
    hits, reciprocal = (ranks < 10).float().mean(), (1 / (ranks + 1)).mean()
    return {"hit@10": round(float(hits), 4), "mrr": round(float(reciprocal), 4)}


def standardised(scores: torch.Tensor) -> torch.Tensor:
    """Per row, finite scores minus their mean over their sd (-inf stays): two scales made comparable."""
    finite = torch.isfinite(scores)
    values = torch.where(finite, scores, torch.zeros_like(scores))
    count = finite.sum(1, keepdim=True).clamp(min=1)
    mean = values.sum(1, keepdim=True) / count
    sd = ((values - mean) * finite).pow(2).sum(1, keepdim=True).div(count).sqrt().clamp(min=1e-6)
    return torch.where(finite, (values - mean) / sd, scores)


def reorder_added(similarity: torch.Tensor, order: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """`similarity` with the added columns' values given out again, per row: the highest to the added
    item that `order` ranks first, and so on (the warm columns unchanged)."""
    columns = new.nonzero().flatten()
    values = similarity[:, columns].sort(dim=1, descending=True).values
    ranked = columns[order[:, columns].argsort(dim=1, descending=True)]
    return similarity.clone().scatter_(1, ranked, values)


def text_path(name: str, seeds: list[int], variant: str = "anchored", sasrec: bool = False) -> None:
    """Does the anchored LLM's own view of an item's text place added items better than plain text
    similarity to the latest item (what calibrated placement ranks them by)? A diagnostic read on
    test, per seed of the `variant` (anchored rows, or another anchored variant): every item scored by
    its text-path row (the anchor's map of its text, no delta: an added item's row), (1) the share of
    validation targets (warm, the fit's users) in the top 10 of the text path, of text similarity and
    of the LLM; (2) on cold test users, the target's rank among the added items by text similarity,
    the text path and their equal standardised sum; (3) the variant's mix with added items placed by
    the text path's calibrated chance (its validation table) instead of text similarity's, and placed
    by text similarity's but filled in the order of the standardised sum; merged into
    measure-test.json as <variant>_text_path (`sasrec`: the mix with SASRec-CE's term,
    <variant>_mix_sasrec_text_path)."""
    folder = WORK / name
    histories, targets, is_cold = eval_users(name, "test")
    rows: dict = {}
    for seed, rec, mixed in fitted_mixes(folder, seeds, histories, sasrec, variant):
        added, warm = RunDir(folder / f"{variant}-seed{seed}-added"), RunDir(folder / f"{variant}-seed{seed}")
        items, new = rec.llm.item_ids.items, rec.llm.new_items
        table = added.load_split().items.set_index("item").loc[items].reset_index()
        path_rows = anchored_rows(*base_model(added.load_config()), load_file(added.anchor), table).float()
        cfg, split = warm.load_config(), warm.load_split()
        users = split.eval_sample("valid", cfg.train.eval_users, cfg.train.seed)  # the mix fit's users
        valid_histories = split.histories(users, "valid")
        columns = [rec.llm.item_ids.index[t] for t in users["valid"]]
        valid_llm = rec.llm.score_catalogue(valid_histories).masked_fill(new, float("-inf"))
        with text_path_logits(path_rows):
            valid_path = rec.llm.score_catalogue(valid_histories).masked_fill(new, float("-inf"))
            test_path = rec.llm.score_catalogue(histories)
        valid_text = rec.content.scores(valid_histories, exclude_history=False, profile=PROFILE_ITEMS)
        valid_text = valid_text.masked_fill(valid_llm == float("-inf"), float("-inf"))
        path_chance = rank_chance(valid_path, columns)
        by_text = rec.placement(histories)
        by_path = RankChance(by_text.ranked, path_chance, test_path)
        # the added items keep the places text similarity gives them, filled in the order of both
        # signals summed: which added items are listed changes, not how many nor where
        both = standardised(by_text.similarity) + standardised(test_path)
        reordered = RankChance(by_text.ranked, by_text.by_text, reorder_added(by_text.similarity, both, new))
        cold_rows = np.flatnonzero(is_cold)
        cold_columns = [rec.llm.item_ids.index[targets[r]] for r in cold_rows]
        similarity, path = by_text.similarity[cold_rows], test_path[cold_rows]
        rows[str(seed)] = {
            "valid_top10_share": {
                "text_path": round(float(path_chance[:10].sum()), 4),
                "text_similarity": round(float(rank_chance(valid_text, columns)[:10].sum()), 4),
                "llm": round(float(rank_chance(valid_llm, columns)[:10].sum()), 4),
            },
            "cold_target_among_added": {
                "text_similarity": within_added(similarity, new, cold_columns),
                "text_path": within_added(path, new, cold_columns),
                "both_standardised": within_added(both[cold_rows], new, cold_columns),
            },
            "mix_placed_by_text_similarity": list_metrics(
                rec, [[s.item for s in r] for r in top_by_chance(mixed, new, 10, by_text)], targets, is_cold
            ),
            "mix_placed_by_text_path": list_metrics(
                rec, [[s.item for s in r] for r in top_by_chance(mixed, new, 10, by_path)], targets, is_cold
            ),
            "mix_placed_by_text_similarity_ordered_by_both": list_metrics(
                rec, [[s.item for s in r] for r in top_by_chance(mixed, new, 10, reordered)], targets, is_cold
            ),
        }
        print(json.dumps(rows[str(seed)]), flush=True)
    key = f"{variant}{'_mix_sasrec' if sasrec else ''}_text_path"
    merge_measured(folder / "measure-test.json", {key: rows})


def over_seeds(per_seed: dict) -> dict:
    """{seed: {cold: {...}, warm: {...}}} -> per part: mean HR@10/NDCG@10, their values by seed, sd."""
    out = {}
    seeds = sorted(per_seed, key=int)
    for part in ("cold", "warm"):
        ndcg = [per_seed[s][part]["ndcg@10"] for s in seeds]
        hr = [per_seed[s][part]["hr@10"] for s in seeds]
        out[part] = {"hr@10": round(statistics.mean(hr), 4), "ndcg@10": round(statistics.mean(ndcg), 4),
                     "users": per_seed[seeds[0]][part]["users"], "seeds": [int(s) for s in seeds],
                     "hr@10_by_seed": hr, "ndcg@10_by_seed": ndcg,
                     "sd_ndcg@10": round(statistics.stdev(ndcg), 4) if len(ndcg) > 1 else None}  # fmt: skip
    if all("cold_share_in_top10" in per_seed[s] for s in seeds):
        out["cold_share_in_top10"] = round(
            statistics.mean(per_seed[s]["cold_share_in_top10"] for s in seeds), 4
        )
    return out


def mean_of(nodes: list) -> dict | float:
    """The element-wise mean of equally shaped nested dicts of numbers (rounded)."""
    if isinstance(nodes[0], dict):
        return {key: mean_of([node[key] for node in nodes]) for key in nodes[0]}
    return round(statistics.mean(nodes), 4)


def text_path_summary(per_seed: dict) -> dict:
    """The textpath stage's rows: every number the mean of the seeds, the seeds listed."""
    seeds = sorted(per_seed, key=int)
    return {"seeds": [int(s) for s in seeds], **mean_of([per_seed[s] for s in seeds])}


def diagnostics(test: dict) -> dict:
    """The frontier (per offset) and placement (per rule) stages, mean over seeds, all users too;
    the textpath stages, mean over seeds; the closeness stage as measured."""
    out: dict = {}
    for diagnostic in test:
        if diagnostic == "anchored_mix_new_item_offset" or diagnostic.endswith("_placement"):
            out[diagnostic] = {
                setting: over_seeds(per_seed)
                | {
                    f"all_{m}": round(statistics.mean(e[f"all_{m}"] for e in per_seed.values()), 4)
                    for m in ("hr@10", "ndcg@10")
                    if all(f"all_{m}" in e for e in per_seed.values())
                }
                for setting, per_seed in test[diagnostic].items()
            }
        elif diagnostic.endswith("_text_path"):
            out[diagnostic] = text_path_summary(test[diagnostic])
    if "closeness" in test:
        out["closeness"] = test["closeness"]
    return out


def rerun_targets(rerun: dict, entry: dict) -> dict:
    """The issue's ratios for each placement row at the library's default boost (1) and without
    placement, and for each model row: cold HR/NDCG@10 over the committed entry's content row (same
    split, same texts), warm NDCG@10 over its content row and SASRec-CE (the rerun's own where it has
    one: same machine)."""
    content, sasrec = {p: entry[p]["content"] for p in ("cold", "warm")}, entry["warm"]["sasrec_ce"]
    out = {}
    for key, rows in rerun.items():
        if not key.endswith("_placement"):
            continue
        for setting in ("apart_table_prior_1.0", "no_slots"):
            if setting not in rows:
                continue
            cold, warm = rows[setting]["cold"], rows[setting]["warm"]["ndcg@10"]
            ratios = {
                f"cold_{m}_over_content": round(cold[m] / content["cold"][m], 3) for m in ("hr@10", "ndcg@10")
            }
            ratios["warm_ndcg@10_over_content"] = round(warm / content["warm"]["ndcg@10"], 3)
            ratios["warm_ndcg@10_over_sasrec_ce"] = round(warm / sasrec["ndcg@10"], 3)
            out[f"{key}_{setting}"] = ratios
    models = rerun.get("models", {})
    for row, measured in models.items():  # model rows (the sasrec stage): SASRec-CE as rerun beside them
        ratios = {f"cold_{m}_over_content": round(measured["cold"][m] / content["cold"][m], 3)
                  for m in ("hr@10", "ndcg@10")}  # fmt: skip
        warm, free = measured["warm"]["ndcg@10"], models.get("sasrec_ce", {}).get("warm", sasrec)
        ratios["warm_ndcg@10_over_content"] = round(warm / content["warm"]["ndcg@10"], 3)
        ratios["warm_ndcg@10_over_sasrec_ce"] = round(warm / free["ndcg@10"], 3)
        out[row] = ratios
    return out


def report(names: list[str], rerun_key: str = "diagnostics_rerun") -> None:
    """cold-start.json from each dataset's measure-{valid,test}.json: the LLM rows with the library's
    default slots (and plain), mean of the training seeds. A data set with retrained runs but no
    `measure` keeps its committed entry and gains the rerun's rows under `rerun_key` (measured keys
    replace that block's, the rest stay): a later rerun goes beside an earlier one under a new key."""
    defaults = GenerateConfig()
    out: dict = {
        "what": " ".join(__doc__.split("\n\n")[1:3]).replace("\n", " "),
        "new_item_slots": defaults.new_item_slots,
        "new_item_neighbours": defaults.new_item_neighbours,
        # training, scoring and report run on one machine (the scores are bf16 where `auto` picks it)
        "machine": machine().model_dump() | {"dtype": resolve_dtype("auto")},
        "datasets": {},
    }
    # a data set with diagnostics rerun but no `measure` (retrained runs, or data only): kept beside
    # the committed entry, below
    rerun_only = [name for name in names if not (WORK / name / "measure-valid.json").exists()]
    for name in names:
        folder = WORK / name
        if name in rerun_only:
            continue
        valid = json.loads((folder / "measure-valid.json").read_text())
        test = json.loads((folder / "measure-test.json").read_text())
        # the content baseline's profile length: its best cold HR@10 on validation (most favourable to it)
        by_profile = valid["content_by_profile"]
        profile = max(
            by_profile, key=lambda k: (by_profile[k]["cold"]["hr@10"], by_profile[k]["warm"]["ndcg@10"])
        )
        models = {key: over_seeds(per_seed) for key, per_seed in test["models"].items()}
        models["content"] = test["content_by_profile"][profile]
        models["popularity"] = test["popularity"]
        entry = {part: {m: v[part] for m, v in models.items()} for part in ("cold", "warm")}
        entry["cold_share_in_top10"] = {m: v["cold_share_in_top10"] for m, v in models.items()
                                        if "cold_share_in_top10" in v}  # fmt: skip
        entry["zero_by_construction"] = (
            "*_before_add, sasrec_ce and popularity on cold targets: trained without the cold items"
        )
        entry["content_profile"] = profile
        content = models["content"]
        anchored = models["llm_anchored"]
        entry["targets"] = {}
        # the LLM rows the targets are about: anchored rows alone, and each variant with the content mix
        for row in (
            "llm_anchored",
            "llm_anchored_mix",
            "llm_free_mix",
            "llm_anchored_alone",
            "llm_free_alone",
            "llm_anchored-dropout75_mix",
            "llm_anchored-dropout75_alone",
            "llm_anchored_mix_sasrec",
            "llm_free_mix_sasrec",
        ):
            if row not in models:
                continue
            entry["targets"] |= {
                f"{part}_{metric}_{row}_over_content": round(
                    models[row][part][metric] / content[part][metric], 3
                )
                for part in ("cold", "warm")
                for metric in ("hr@10", "ndcg@10")
                if content[part][metric]
            }
            entry["targets"][f"warm_ndcg@10_{row}_over_sasrec_ce"] = round(
                models[row]["warm"]["ndcg@10"] / models["sasrec_ce"]["warm"]["ndcg@10"], 3
            )
        fitted = ("profile", "weight", "sasrec_weight")  # profile/weight[/SASRec-CE weight] per seed
        mix_rows = ("llm_anchored_mix", "llm_free_mix", "llm_anchored-dropout75_mix",
                    "llm_anchored_mix_sasrec", "llm_free_mix_sasrec")  # fmt: skip
        mixes = {
            row: [
                "/".join(str(by_seed[s][k]) for k in fitted if k in by_seed[s])
                for s in sorted(by_seed, key=int)
            ]
            for row, by_seed in test["models"].items()
            if row in mix_rows
        }
        if mixes:
            entry["content_mix_profile_weight_by_seed"] = mixes
        if "llm_free" in models:  # a data set part-way through its seeds may lack a variant
            entry["targets"]["warm_ndcg@10_llm_anchored_minus_free"] = round(
                models["llm_anchored"]["warm"]["ndcg@10"] - models["llm_free"]["warm"]["ndcg@10"], 4
            )
        entry |= diagnostics(test)
        if "newness_auc" in test:
            entry["newness_auc"] = test["newness_auc"]
        if "llm_titles" in models:
            entry["targets"]["titles_over_anchored"] = {
                f"{part}_{metric}": round(models["llm_titles"][part][metric] / anchored[part][metric], 3)
                for part in ("cold", "warm")
                for metric in ("hr@10", "ndcg@10")
                if anchored[part][metric]
            }
        entry["split"] = json.loads((folder / "split.json").read_text())
        runs = [run for run in sorted(folder.glob("*-seed?")) if (run / "train_summary.json").exists()]
        keys = ("epochs_run", "best_epoch", "stop_reason", "train_wall_s")
        entry["training"] = {
            run.name: {
                k: v for k, v in json.loads((run / "train_summary.json").read_text()).items() if k in keys
            }
            for run in runs
        }
        entry["wall_s"] = {"valid": valid["wall_s"], "test": test["wall_s"]}
        if "content_mix_wall_s" in test:
            entry["wall_s"]["content_mix"] = test["content_mix_wall_s"]
        out["datasets"][name] = entry
    if OUT.exists():  # a data set not measured in this checkout keeps its committed entry, marked
        committed = json.loads(OUT.read_text())
        if len(rerun_only) == len(names):  # nothing measured here: the machine is the one that measured
            out["machine"] = committed["machine"]
        for name, entry in committed["datasets"].items():
            if name not in out["datasets"]:
                out["datasets"][name] = entry | {"kept_from": entry.get("kept_from", "an earlier report")}
    for name in rerun_only:
        folder = WORK / name
        if name in out["datasets"]:
            test = json.loads((folder / "measure-test.json").read_text())
            if "newness_auc" in test:  # data only: no training behind it, so beside the rerun block
                out["datasets"][name]["newness_auc"] = test["newness_auc"]
            rerun = diagnostics(test)
            if not rerun and not test.get("models"):  # only data stages ran: the rerun block stays as it is
                continue
            trained = [run.name for run in folder.glob("*-seed?") if (run / "train_summary.json").exists()]
            rerun["runs"] = sorted(trained)
            # the rerun's machine may differ from the entry's
            rerun["machine"] = machine().model_dump() | {"dtype": resolve_dtype("auto")}
            if test.get("models"):  # rows the mix stage measured on these runs (no `measure`: no content row)
                rerun["models"] = {key: over_seeds(per_seed) for key, per_seed in test["models"].items()}
            entry = out["datasets"][name]
            rerun["targets"] = rerun_targets(rerun, entry)
            # keys measured now replace the committed ones; the rest (stages not rerun) are kept
            earlier = entry.get(rerun_key, {})
            rerun["runs"] = sorted(set(earlier.get("runs", [])) | set(rerun["runs"]))
            entry[rerun_key] = earlier | rerun
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stages = ("split", "train", "measure", "mix", "frontier", "placement", "closeness", "newness", "textpath",
              "sasrec", "report")  # fmt: skip
    parser.add_argument("stage", choices=stages)
    parser.add_argument("name", nargs="?", choices=tuple(COLD_SHARE))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=float, default=30, help="the LLM's epoch cap (both variants)")
    parser.add_argument("--titles", action="store_true", help="train/measure: also the titles variant")
    parser.add_argument("--sasrec", action="store_true", help="mix/placement: the mix with SASRec-CE's term")
    parser.add_argument("--alone", action="store_true", help="placement: the LLM alone (mix: none)")
    parser.add_argument("--variants", nargs="*", choices=tuple(VARIANTS), default=DEFAULT_VARIANTS,
                        help="train/measure/mix: item-row variants (default: free, anchored); "
                             "placement: the one named (default anchored)")  # fmt: skip
    parser.add_argument("--rerun-key", default="diagnostics_rerun",
                        help="report: where a rerun-only data set's rows go in its entry")  # fmt: skip
    args = parser.parse_args()
    if args.stage == "report":
        report([n for n in COLD_SHARE if (WORK / n / "measure-test.json").exists()], args.rerun_key)
        return
    if args.name is None:
        parser.error(f"{args.stage} needs a data set name")
    one_variant = "anchored" if args.variants == DEFAULT_VARIANTS else args.variants[0]  # placement, textpath
    if args.stage == "split":
        split(args.name)
    elif args.stage == "train":
        train(args.name, args.seeds, args.epochs, args.variants, args.titles)
    elif args.stage == "mix":
        content_mix(args.name, args.seeds, args.variants, args.sasrec)
    elif args.stage == "frontier":
        frontier(args.name, args.seeds)
    elif args.stage == "placement":
        placement(args.name, args.seeds, args.sasrec, one_variant, args.alone)
    elif args.stage == "closeness":
        closeness(args.name)
    elif args.stage == "newness":
        newness(args.name)
    elif args.stage == "textpath":
        text_path(args.name, args.seeds, one_variant, args.sasrec)
    elif args.stage == "sasrec":
        sasrec_rows(args.name, args.seeds)
    else:
        for split_name in ("valid", "test"):
            measured = measure(args.name, args.seeds, split_name, args.variants, args.titles)
            print(json.dumps(measured, indent=1))


if __name__ == "__main__":
    main()
