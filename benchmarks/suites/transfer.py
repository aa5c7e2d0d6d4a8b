"""Transfer across domains, sized to a 2-core CPU: one model over several domains (`data.sources`) and
a held-out domain started from it (`model.start_from`).

    python -m benchmarks transfer --sources beauty-titles games --held-out toys-titles --users 1000

Each domain is a seeded sample of `--users` users (all their interactions; the catalogue is the items
they touched), written under runs/benchmarks/transfer/data/. Cells, each one result file:
- joint: one run over the source domains, against a run per source domain (NDCG@10 per domain);
- held-out, test users of the held-out sample: zero-shot (the joint run's body and text map, this
  domain's rows from its text, no training), fine-tuned on 10% and on 100% of its training users
  from the joint run and from the base model, SASRec-CE on the same 10% and 100%, the content
  baseline and popularity.
The 10% cells train on 10% of the users (the whole catalogue kept) and are evaluated on every test
user of the held-out sample, as the 100% cells are. LLM runs use anchored item rows (the text map is
what carries over) and the LLM alone (no mix): the comparison is of the language model. Wall times
are each cell's own, with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import data
from benchmarks.common import WORK, llmrec, record

SUITE = "transfer"
FOLDER = WORK / SUITE
RECIPE = {
    "model": {"item_rows": "anchored"},
    "generate": {"mix": "none"},
    "train": {"eval_users": 300},
}


def sample_domain(name: str, users: int, seed: int, share: float = 1.0) -> Path:
    """A seeded sample of `users` users of data set `name` (`data.sample_users`)."""
    target = FOLDER / "data" / (f"{name}-{users}" + (f"-{share:g}" if share < 1 else ""))
    return data.sample_users(data.prepare(name), target, users, seed, share)


def source(folder: Path) -> dict[str, Any]:
    columns = {"user": "user", "item": "item", "timestamp": "timestamp", "title": "title"}
    return {"format": "generic", "interactions": str(folder / "interactions.csv"),
            "items": str(folder / "items.csv"), "columns": columns}  # fmt: skip


def write_config(cell: str, data_section: dict, minutes: float, extra: dict | None = None) -> Path:
    folder = FOLDER / cell
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"prepared_dir": "prepared", "run_dir": "run", "baselines_dir": "baselines", "data": data_section}
    for section, values in (RECIPE | {"train": RECIPE["train"] | {"max_minutes": minutes}}).items():
        cfg[section] = dict(values)
    for section, values in (extra or {}).items():
        cfg.setdefault(section, {}).update(values)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def train_and_evaluate(config: Path) -> tuple[dict, float]:
    """prepare + train + evaluate (test, the LLM alone); the metrics and the cell's wall seconds."""
    run = config.parent / "run"
    t0 = time.time()
    if not (config.parent / "prepared" / "manifest.json").exists():
        llmrec("prepare", str(config))
    if not (run / "train_summary.json").exists():
        llmrec("train", str(config))
    llmrec("evaluate", str(run), "--split", "test", "--mix", "none", "--no-compare")
    return json.loads((run / "metrics-test.json").read_text()), time.time() - t0


def evaluate_on(run: Path, users_from: Path, sasrec: Path | None = None) -> dict:
    """A run trained on a 10% sample, evaluated on every test user of the full sample (`users_from`,
    a prepared folder with the same items table): the LLM alone, or the SASRec-CE at `sasrec`."""
    from llmrec.baselines import SasrecRecommender
    from llmrec.config import load_config
    from llmrec.data import SplitData
    from llmrec.evaluate import ranking_metrics
    from llmrec.generate import Recommender

    split = SplitData.load(users_from)
    users = split.eval_users("test")
    histories, targets = split.histories(users, "test"), users["test"].tolist()
    if sasrec is None:
        recs = Recommender.from_run(run).recommend(histories, k=10, times=split.times(users, "test"))
        lists = [[r.item for r in row] for row in recs]
    else:  # the items table is the full sample's: the same items in the same order
        model = SasrecRecommender(split, load_config(sasrec.parent / "config.yaml").baselines.sasrec)
        model.load(sasrec)
        lists = model.recommend(histories, 10, True)
    return ranking_metrics(targets, lists, set(split.items["item"]))


def save_cell(name: str, metrics: dict, wall_s: float, config: Path, info: dict) -> None:
    summary = {"ndcg@10": round(metrics["ndcg@10"], 5), "hr@10": round(metrics["hr@10"], 5),
               "users": metrics["users"]}  # fmt: skip
    record(SUITE, name, {"test": metrics} | info, summary, dataset=info.get("dataset"),
           config=yaml.safe_load(config.read_text()), timings={"wall_s": round(wall_s, 1)})  # fmt: skip


CELLS = (
    *("joint", "alone", "zero-shot", "full-from-joint", "full-from-base", "ten-from-joint", "ten-from-base"),
    *("sasrec-full", "sasrec-ten", "content", "popularity"),
)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks transfer", description=__doc__)
    parser.add_argument("--sources", nargs="+", default=["beauty-titles", "games"])
    parser.add_argument("--held-out", default="toys-titles")
    parser.add_argument("--users", type=int, default=1000, help="users sampled per domain")
    parser.add_argument("--seed", type=int, default=0, help="the users' sample")
    seeds = "train.seed and SASRec-CE's; a seed other than 0 names its cells -seedN (started from seed 0's)"
    parser.add_argument("--train-seed", type=int, default=0, help=seeds)
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument("--minutes", type=float, default=7.0, help="train.max_minutes of each LLM cell")
    parser.add_argument("--joint-minutes", type=float, default=10.0)
    args = parser.parse_args(argv)
    n, seed, cells = args.users, args.seed, set(args.cells)
    samples = {name: sample_domain(name, n, seed) for name in [*args.sources, args.held_out]}
    held = args.held_out
    ten = sample_domain(held, n, seed, share=0.1)
    sampling = {"users_per_domain": n, "seed": seed, "how": "seeded sample of users, all their interactions"}
    suffix = f"-seed{args.train_seed}" if args.train_seed else ""
    seeded = {"train": {"seed": args.train_seed}, "baselines": {"sasrec": data.spec(held)["sasrec"]
                                                                | {"seed": args.train_seed}}}  # fmt: skip

    def info(dataset: str, cell: str, **more: Any) -> dict:
        provenance = [data.provenance(d) for d in dataset.split("+")]
        return {"dataset": dataset, "cell": cell, "sampling": sampling, "provenance": provenance,
                "train_seed": args.train_seed} | more  # fmt: skip

    def configure(cell: str, section: dict, minutes: float, extra: dict | None = None) -> Path:
        merged = {k: dict(v) for k, v in seeded.items()}
        for key, values in (extra or {}).items():
            merged.setdefault(key, {}).update(values)
        return write_config(cell + suffix, section, minutes, merged)

    # the joint run over the source domains, and one run per source domain
    joint = FOLDER / "joint" / "config.yaml"  # the runs below start from seed 0's joint run
    if "joint" in cells:
        sources = {"sources": [{"domain": d} | source(samples[d]) for d in args.sources]}
        joint = configure("joint", sources, args.joint_minutes)
        metrics, wall = train_and_evaluate(joint)
        joint_info = info("+".join(args.sources), "joint", by_domain=metrics["by_domain"])
        save_cell("joint" + suffix, metrics, wall, joint, joint_info)
    for name in args.sources if "alone" in cells else ():
        alone = configure(f"{name}-alone", source(samples[name]), args.minutes)
        metrics, wall = train_and_evaluate(alone)
        save_cell(f"{name}-alone{suffix}", metrics, wall, alone, info(name, "per-domain"))

    # the held-out domain
    full = source(samples[held])
    reference = FOLDER / f"{held}-full-from-base" / "prepared"  # every test user of the full sample
    start = {"model": {"start_from": str(joint.parent / "run")}}
    llm_cells = {
        "zero-shot": (full, start | {"train": {"max_steps": 0}}),
        "full-from-joint": (full, start),
        "full-from-base": (full, None),
        "ten-from-joint": (source(ten), start),
        "ten-from-base": (source(ten), None),
    }
    for cell, (section, extra) in llm_cells.items():
        if cell not in cells:
            continue
        config = configure(f"{held}-{cell}", section, args.minutes, extra)
        metrics, wall = train_and_evaluate(config)
        if cell.startswith("ten"):  # evaluated on every test user of the full sample
            t0 = time.time()
            metrics = evaluate_on(config.parent / "run", reference)
            wall += time.time() - t0
        save_cell(f"{held}-{cell}{suffix}", metrics, wall, config, info(held, cell))
    for share, folder in (("full", samples[held]), ("ten", ten)):
        if f"sasrec-{share}" not in cells:
            continue
        config = configure(f"{held}-sasrec-{share}", source(folder), args.minutes)
        wall = llmrec("baseline", str(config), "--model", "sasrec")
        weights = config.parent / "baselines" / "sasrec" / "model.pt"
        metrics = evaluate_on(weights.parent, reference, sasrec=weights)
        save_cell(f"{held}-sasrec-{share}{suffix}", metrics, wall, config, info(held, f"sasrec-{share}"))
    for model in ("content", "popularity"):  # no training seed
        if model not in cells:
            continue
        config = FOLDER / f"{held}-full-from-base" / "config.yaml"
        wall = llmrec("baseline", str(config), "--model", model)
        metrics = json.loads((config.parent / "baselines" / model / "metrics-test.json").read_text())
        save_cell(f"{held}-{model}", metrics, wall, config, info(held, model))
