"""Cold start: items added after training, measured (docs/benchmarks/cold-start.json).

For each dataset the newest 10% of items (by first interaction: the earliest timestamp, or for
Industrial the earliest `position` any user has them at) are removed from training entirely: their
interactions are dropped, the ids are built and the LLM (the default recipe) and SASRec-CE are trained
without them. Then `llmrec items add` puts them in the run's catalogue, and every model ranks the whole
catalogue (warm + added) for the test users of the full data's leave-one-out split:

- history: the user's history before the test target, cold items left out (no model was trained on
  them as inputs, and the run before the add cannot read them);
- "cold" users: the test target is an added item; "warm": the rest.

Models: the LLM before the add (it cannot name a cold item: zero on cold targets by construction),
the LLM after the add (plain, and with `generate.new_items` slots), SASRec-CE (trained without the
cold items: zero on cold targets by construction), a content baseline (cosine between the mean text
embedding of the history and each item's, the backbone's mean-pooled hidden states, centred), and
popularity (training counts: an added item has none, so zero too).

    python scripts/bench_cold_start.py split ml100k      # data + config under runs/cold-start/ml100k
    python scripts/bench_cold_start.py train ml100k      # llmrec prepare + train (resumable)
    python scripts/bench_cold_start.py sasrec ml100k     # SASRec-CE on the same prepared split
    python scripts/bench_cold_start.py measure ml100k    # items add (on a copy) + every model -> json
    python scripts/bench_cold_start.py report            # docs/benchmarks/cold-start.json
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from llmrec.backbone import load_model, load_tokenizer, resolve_dtype, resolve_model
from llmrec.baselines import ContentRecommender
from llmrec.baselines.popularity import Popularity
from llmrec.baselines.sasrec import SasrecRecommender
from llmrec.config import DataConfig, GenerateConfig, load_config
from llmrec.data import SplitData
from llmrec.data.importers import load_catalog
from llmrec.data.split import leave_one_out
from llmrec.evaluate.metrics import ranking_metrics
from llmrec.generate import Recommender
from llmrec.generate.atomic import catalogue_scores
from llmrec.generate.new_items import top_with_new_items
from llmrec.ids.embeddings import item_texts, text_embeddings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from bench_train import machine  # noqa: E402

WORK = Path(os.environ.get("COLD_START_WORK", ROOT / "runs" / "cold-start"))  # a smoke run elsewhere
OUT = ROOT / "docs" / "benchmarks" / "cold-start.json"
COLD_SHARE = 0.10


def source_data(name: str) -> DataConfig:
    if name == "ml100k":
        return DataConfig(format="movielens", path="builtin:ml-100k")
    if name == "industrial":
        return load_config(ROOT / "scripts" / "industrial.yaml").data
    raise SystemExit(f"unknown dataset {name!r}: ml100k or industrial")


def extra_settings(name: str) -> dict:
    """What the dataset's own benchmark config sets beyond data (SASRec-CE's chosen settings)."""
    if name == "industrial":
        raw = yaml.safe_load((ROOT / "scripts" / "industrial.yaml").read_text())
        return {"baselines": raw["baselines"], "explain": raw["explain"]}
    raw = yaml.safe_load((ROOT / "scripts" / "ml100k_full.yaml").read_text())
    return {"baselines": raw["baselines"], "explain": raw["explain"]}


def newest_items(interactions: pd.DataFrame, share: float = COLD_SHARE) -> list[str]:
    """The `share` of items first seen last: by earliest timestamp, ties by mean timestamp, then id."""
    stats = interactions.groupby("item")["timestamp"].agg(["min", "mean"])
    stats = stats.reset_index().sort_values(["min", "mean", "item"], ascending=[False, False, True])
    return stats["item"].head(math.ceil(share * len(stats))).tolist()


def split(name: str) -> None:
    """Write the warm interactions, the warm and cold item tables and the run config."""
    folder = WORK / name
    (folder / "data").mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(source_data(name))
    cold = newest_items(catalog.interactions)
    is_cold = catalog.interactions["item"].isin(set(cold))
    warm_inter = catalog.interactions.loc[~is_cold, ["user", "item", "timestamp"]]
    warm_inter.to_csv(folder / "data" / "interactions.csv", index=False)
    items = catalog.items[catalog.items["item"].isin(set(catalog.interactions["item"]))]
    items[~items["item"].isin(set(cold))].to_csv(folder / "data" / "items-warm.csv", index=False)
    items[items["item"].isin(set(cold))].to_csv(folder / "data" / "items-cold.csv", index=False)
    config = {
        "prepared_dir": "prepared",
        "run_dir": "run",
        "baselines_dir": "baselines",
        "data": {
            "format": "generic",
            "interactions": "data/interactions.csv",
            "items": "data/items-warm.csv",
            "columns": {
                "user": "user",
                "item": "item",
                "timestamp": "timestamp",
                "title": "title",
                "text": ["text"],
            },  # fmt: skip
        },
        **extra_settings(name),
    }
    (folder / "config.yaml").write_text(
        "# written by scripts/bench_cold_start.py split: the default recipe on the warm items only\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    summary = {
        "items": len(items),
        "cold_items": len(cold),
        "interactions": len(catalog.interactions),
        "interactions_without_cold": len(warm_inter),
        "rule": "newest 10% of items by first interaction (min timestamp, ties by mean timestamp, then id)",
    }
    (folder / "split.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


def llmrec(*args: str, env: dict | None = None) -> None:
    print("$ llmrec", " ".join(args), flush=True)
    subprocess.run(["llmrec", *args], check=True, env=env)


def train(name: str) -> None:
    """The LLM and SASRec-CE on the warm data; each step is skipped when its output is there."""
    folder = WORK / name
    config = str(folder / "config.yaml")
    if not (folder / "prepared" / "manifest.json").exists():
        llmrec("prepare", config)
    if not (folder / "run" / "train_summary.json").exists():
        llmrec("train", config)


def sasrec(name: str) -> None:
    """SASRec-CE on the warm data (after `train`'s prepare: it reads the prepared split)."""
    folder = WORK / name
    if not (folder / "baselines" / "sasrec" / "model.pt").exists():
        llmrec("baseline", str(folder / "config.yaml"), "--model", "sasrec")


def eval_users(name: str, split_name: str) -> tuple[list[list[str]], list[str], np.ndarray]:
    """The full data's `split_name` users: histories without cold items, targets, target-is-cold."""
    full = leave_one_out(load_catalog(source_data(name)))
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


def llm_scores(run_dir: Path, histories: list[list[str]]) -> tuple[list[str], torch.Tensor]:
    """The run's catalogue softmax (log-probabilities) for every history, history items -inf."""
    rec = Recommender.from_run(run_dir)
    prompts = rec.builder.encode(histories)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = torch.empty(len(prompts), len(rec.item_ids.items))
    with torch.inference_mode():
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            exclude = [[rec.item_ids.index[i] for i in set(histories[j])] for j in idx]
            out[idx] = catalogue_scores(rec.model, [prompts[j] for j in idx], rec.item_tokens,
                                        pad_id=rec.tokenizer.pad_token_id, exclude=exclude)  # fmt: skip
            print(f"\r{run_dir.name}: {start + len(idx)}/{len(order)} users", end="", flush=True)
    print()
    return rec.item_ids.items, out


def cached_scores(path: Path, run_dir: Path, histories: list[list[str]]) -> tuple[list[str], torch.Tensor]:
    """`llm_scores`, kept in `path` so that settings can be compared without running the LLM again."""
    if path.exists():
        saved = torch.load(path)
        return saved["items"], saved["scores"]
    items, scores = llm_scores(run_dir, histories)
    torch.save({"items": items, "scores": scores}, path)
    return items, scores


def content_embeddings(name: str, items: pd.DataFrame) -> np.ndarray:
    """Each item's text (title. extra text) embedded by the base backbone (raw, cached per data set)."""
    cache = WORK / name / "content-embeddings.npy"
    if not cache.exists():
        path = resolve_model("smollm2-135m")
        texts = item_texts(SplitData(items=items, users=pd.DataFrame()))
        np.save(cache, text_embeddings(texts, load_model(path, "auto"), load_tokenizer(path)))
    return np.load(cache)


def top_lists(scores: torch.Tensor, items: list[str], k: int = 10) -> list[list[str]]:
    return [[items[j] for j in row] for row in scores.topk(k, dim=-1).indices.tolist()]


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


def measure(name: str, split_name: str = "test") -> dict:
    """Every model on `split_name`'s users (valid: to choose settings; test: to report)."""
    folder = WORK / name
    started = time.time()
    histories, targets, is_cold = eval_users(name, split_name)
    full_items = load_catalog(source_data(name)).items
    cold = set(pd.read_csv(folder / "data" / "items-cold.csv", dtype=str)["item"])
    added = folder / "run-added"
    if not (added / "item_text_vectors.npy").exists():
        shutil.rmtree(added, ignore_errors=True)
        shutil.copytree(folder / "run", added, ignore=shutil.ignore_patterns("checkpoint", "merged"))
        llmrec("items", "add", str(added), str(folder / "data" / "items-cold.csv"))
    items, scores = cached_scores(folder / f"scores-{split_name}.pt", added, histories)
    catalogue = set(items)
    new = torch.tensor([i in cold for i in items])
    emb_all = content_embeddings(name, full_items)
    order = [full_items["item"].tolist().index(i) for i in items]
    # the library's content baseline (llmrec baseline --model content) over the run's catalogue order
    content = ContentRecommender(
        SplitData(items=full_items.iloc[order], users=pd.DataFrame()), emb_all[order]
    )
    result: dict = {"models": {}, "variants": {}}
    models = result["models"]

    if split_name == "test":
        warm_items, warm_scores = cached_scores(
            folder / "scores-before-add-test.pt", folder / "run", histories
        )
        models["llm_before_add"] = split_metrics(
            top_lists(warm_scores, warm_items), targets, is_cold, catalogue
        )
    lists = top_lists(scores, items)
    models["llm"] = split_metrics(lists, targets, is_cold, catalogue)
    result["cold_share_in_top10"] = cold_share(lists, cold)

    def add_variant(key: str, ranked: list) -> None:
        named = [[items[s.item] for s in row] for row in ranked]
        result["variants"][key] = split_metrics(named, targets, is_cold, catalogue) | {
            "cold_share_in_top10": cold_share(named, cold)}  # fmt: skip

    # which added items fill the slots: the LLM's best, or the most similar by text (content), with or
    # without a similarity floor, placed by the LLM's score or first
    for slots in (1, 2, 3):
        add_variant(f"slots{slots}_by_llm", top_with_new_items(scores, new, 10, slots))
    for last in (1, 5, 20, None):
        c = content.scores(histories, exclude_history=True, profile=last)
        result["variants"][f"content_last{last or 'all'}"] = split_metrics(
            top_lists(c, items), targets, is_cold, catalogue
        )
        if last not in (1, 5):
            continue
        for slots in (1, 2, 3):
            for neighbours in (None, 5, 10, 20, 50):
                for first in (False, True):
                    key = f"slots{slots}_by_text_last{last}_nn{neighbours}_{'first' if first else 'by_score'}"
                    add_variant(key, top_with_new_items(scores, new, 10, slots, c, neighbours, first))

    if split_name == "test":  # the product: `llmrec items add`, then Recommender with the default slots
        rec = Recommender.from_run(added)
        defaults = GenerateConfig()  # the library's defaults, whatever the run's config was saved with
        rec.cfg.new_item_slots, rec.cfg.new_item_neighbours = (
            defaults.new_item_slots,
            defaults.new_item_neighbours,
        )
        named = [[r.item for r in row] for row in rec.recommend(histories, k=10, progress=True)]
        models["llm_new_item_slots"] = split_metrics(named, targets, is_cold, catalogue) | {
            "cold_share_in_top10": cold_share(named, cold), "new_item_slots": rec.cfg.new_item_slots,
            "new_item_neighbours": rec.cfg.new_item_neighbours}  # fmt: skip

    warm_split = SplitData.load(folder / "prepared")
    cfg = load_config(folder / "config.yaml")
    sasrec = SasrecRecommender(warm_split, cfg.baselines.sasrec)
    sasrec.load(folder / "baselines" / "sasrec" / "model.pt")
    models["sasrec_ce"] = split_metrics(sasrec.recommend(histories, 10), targets, is_cold, catalogue)
    pop = Popularity(warm_split)
    models["popularity"] = split_metrics(
        [pop.recommend(h, 10) for h in histories], targets, is_cold, catalogue
    )
    result["wall_s"] = round(time.time() - started, 1)
    (folder / f"measure-{split_name}.json").write_text(json.dumps(result, indent=2))
    return result


def report(names: list[str]) -> None:
    """cold-start.json from each dataset's measure-{valid,test}.json. The LLM row is the product with
    its defaults (`generate.new_item_slots` and `new_item_neighbours`, chosen on validation from the
    variants, which are kept here for both splits)."""
    defaults = GenerateConfig()
    out: dict = {
        "what": __doc__.split("\n\n")[1].replace("\n", " "),
        "new_item_slots": defaults.new_item_slots,
        "new_item_neighbours": defaults.new_item_neighbours,
        # training, scoring and report run on one machine (the scores are bf16 where `auto` picks it)
        "machine": machine() | {"dtype": resolve_dtype("auto")},
        "datasets": {},
    }
    for name in names:
        folder = WORK / name
        valid = json.loads((folder / "measure-valid.json").read_text())
        test = json.loads((folder / "measure-test.json").read_text())
        # the content baseline's profile length: its best cold HR@10 on validation (most favourable to it)
        lasts = [k for k in valid["variants"] if k.startswith("content_last")]
        content = max(
            lasts,
            key=lambda k: (valid["variants"][k]["cold"]["hr@10"], valid["variants"][k]["warm"]["ndcg@10"]),
        )
        llm = test["models"]["llm_new_item_slots"]
        models = {
            "llm": llm,
            "llm_plain": test["models"]["llm"] | {"cold_share_in_top10": test["cold_share_in_top10"]},
            "llm_before_add": test["models"]["llm_before_add"],
            "sasrec_ce": test["models"]["sasrec_ce"],
            "content": test["variants"][content],
            "popularity": test["models"]["popularity"],
        }
        entry = {part: {m: v[part] for m, v in models.items()} for part in ("cold", "warm")}
        entry["cold_share_in_top10"] = llm["cold_share_in_top10"]
        entry["cold_share_in_top10_plain"] = test["cold_share_in_top10"]
        entry["zero_by_construction"] = (
            "llm_before_add, sasrec_ce and popularity on cold targets: trained without the cold items"
        )
        entry["content_profile"] = content
        entry["targets"] = {
            "cold_llm_hr@10_over_content": round(
                llm["cold"]["hr@10"] - models["content"]["cold"]["hr@10"], 4
            ),
            "warm_llm_ndcg@10_over_before_add": round(
                llm["warm"]["ndcg@10"] / models["llm_before_add"]["warm"]["ndcg@10"], 4
            ),  # fmt: skip
        }
        entry["split"] = json.loads((folder / "split.json").read_text())
        entry["variants_valid"] = valid["variants"]
        entry["variants_test"] = test["variants"]
        entry["wall_s"] = {"valid": valid["wall_s"], "test": test["wall_s"]}
        out["datasets"][name] = entry
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    stage, *rest = sys.argv[1:] or ["help"]
    if stage == "split":
        split(rest[0])
    elif stage == "train":
        train(rest[0])
    elif stage == "sasrec":
        sasrec(rest[0])
    elif stage == "report":
        report([n for n in ("ml100k", "industrial") if (WORK / n / "measure-test.json").exists()])
    elif stage == "measure":
        for split_name in ("valid", "test"):
            print(json.dumps(measure(rest[0], split_name), indent=1))
    else:
        raise SystemExit(__doc__)
