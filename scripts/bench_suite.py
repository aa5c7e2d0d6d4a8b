"""The default recipe on catalogues nobody tuned for: every data set in ../shared/datasets that the
CPU allows, brought with only the `data` section written, beside SASRec-CE at its best (the settings
its validation sweep chose) and popularity, three training seeds each.

    python scripts/bench_suite.py run                       # every data set, seeds 0 1 2 (resumable)
    python scripts/bench_suite.py run --datasets industrial --seeds 0 --only sasrec llm
    python scripts/bench_suite.py refit --datasets industrial   # train's choice fitted again, mix re-measured
    python scripts/bench_suite.py report                    # docs/benchmarks/suite.json + quality.md table

Each cell is one command (`llmrec prepare|baseline|train|evaluate` on runs/suite/NAME/config.yaml,
written by this script) and is skipped when its metrics file exists, so a killed suite continues.
Per seed: popularity and SASRec-CE (`llmrec baseline`, seed S), then the LLM (`llmrec train` with
`train.seed: S` and that SASRec as its retriever, so `train` itself picks LLM alone or the hybrid on
validation), then `llmrec evaluate` with each retriever. The LLM's settings are the library's
defaults; the only suite setting besides the data is `train.max_minutes` (`--minutes`), the wall-time
cap of a CPU benchmark, reported in suite.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
SUITE = ROOT / "runs" / "suite"
OUT = ROOT / "docs" / "benchmarks" / "suite.json"

# SASRec-CE settings chosen on validation (docs/benchmarks/*-sasrec-sweep.json, scripts/beauty.yaml)
SASREC_ML100K = {"hidden": 64, "layers": 2, "heads": 1, "dropout": 0.2, "max_len": 200, "patience": 20}
SASREC_SHORT = {"hidden": 64, "layers": 2, "heads": 1, "dropout": 0.5, "max_len": 50, "patience": 20}

DATASETS = {
    "ml100k": {
        "about": "MovieLens-100K, titles (the catalogue the recipe was chosen on)",
        "data": {"format": "movielens", "path": str(SHARED / "ml-100k")},
        "sasrec": SASREC_ML100K,
    },
    "ml100k-notext": {
        "about": "MovieLens-100K with titles and genres dropped: no item text, long sequences",
        # the items table lists bare ids in ML-100K's order, so the split is ML-100K's to the item index
        "data": {
            "format": "generic",
            "interactions": "interactions.csv",
            "items": "items.csv",
            "columns": {"user": "user_id", "item": "item_id", "timestamp": "timestamp", "title": None},
        },
        "sasrec": SASREC_ML100K,
        # SASRec-CE and popularity never read item text: on the same split (checked) they are ML-100K's
        "baselines_from": "ml100k",
        "text": False,
    },
    "industrial": {
        "about": "Amazon 2018 Industrial_and_Scientific: titles and descriptions, 5-11 items a user",
        "data": {
            "format": "generic",
            "interactions": str(SHARED / "amazon18-industrial" / "interactions.csv"),
            "items": str(SHARED / "amazon18-industrial" / "items.csv"),
            "columns": {
                "user": "user_id",
                "item": "item_id",
                "timestamp": "position",
                "title": "title",
                "text": ["brand", "description"],
            },  # fmt: skip
        },
        "sasrec": SASREC_SHORT,
    },
    "beauty": {
        "about": "Amazon Beauty, P5 5-core split: attribute ids only, no text, 22k users",
        "data": {"format": "p5", "path": str(SHARED / "amazon-p5" / "Beauty.txt")},
        "sasrec": SASREC_SHORT | {"patience": 10},
        "text": False,
    },
}
STAGES = ("popularity", "content", "sasrec", "llm", "anchored")


def llmrec(*args: str) -> None:
    print("+ llmrec " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "llmrec", *args], check=True, cwd=ROOT)


def config_for(name: str, minutes: float | None) -> Path:
    """runs/suite/NAME/config.yaml: the data section, the folders, SASRec's swept settings."""
    folder = SUITE / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = DATASETS[name]
    if name == "ml100k-notext":
        write_notext_ml100k(folder / "interactions.csv")
    cfg = {
        "prepared_dir": "prepared",
        "run_dir": "llm-seed0",
        "baselines_dir": "baselines-seed0",
        "data": spec["data"],
        "baselines": {"sasrec": spec["sasrec"]},
    }
    if minutes:
        cfg["train"] = {"max_minutes": minutes}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def write_notext_ml100k(path: Path) -> None:
    """u.data as a CSV (ratings dropped) and an items table of bare ids (no titles, no genres)."""
    if path.exists() and path.with_name("items.csv").exists():
        return
    with (SHARED / "ml-100k" / "u.data").open() as src, path.open("w", newline="") as dst:
        out = csv.writer(dst)
        out.writerow(["user_id", "item_id", "timestamp"])
        for line in src:
            user, item, _rating, when = line.split("\t")
            out.writerow([user, item, when.strip()])
    items = (SHARED / "ml-100k" / "u.item").read_text(encoding="latin-1").splitlines()
    path.with_name("items.csv").write_text("item_id\n" + "".join(line.split("|")[0] + "\n" for line in items))


def same_split(a: Path, b: Path) -> bool:
    """Whether two suite configs import to the same split: items in the same order, the same users
    with the same sequences (what a baseline that ignores item text sees)."""
    from llmrec.config import load_config
    from llmrec.data import leave_one_out, load_catalog

    one, two = (leave_one_out(load_catalog(load_config(p).data)) for p in (a, b))
    if one.items["item"].tolist() != two.items["item"].tolist():
        return False
    cols = ["user", "valid", "test"]
    return one.users[cols].equals(two.users[cols]) and all(
        list(x) == list(y) for x, y in zip(one.users["train"], two.users["train"], strict=True)
    )


def copy_baselines(name: str, seed: int, config: Path) -> bool:
    """For a data set whose baselines are another's (same split, no text read): copy that one's
    popularity and SASRec-CE results and weights; False if it has none yet or the splits differ."""
    source = DATASETS[name].get("baselines_from")
    if source is None:
        return False
    other = SUITE / source
    done = other / f"baselines-seed{seed}" / "sasrec" / "metrics-test.json"
    if not done.exists() or not same_split(config, other / "config.yaml"):
        return False
    folder = config.parent
    shutil.copytree(other / f"baselines-seed{seed}", folder / f"baselines-seed{seed}", dirs_exist_ok=True)
    if (other / "popularity-metrics.json").exists():
        shutil.copy(other / "popularity-metrics.json", folder / "popularity-metrics.json")
    (folder / f"baselines-seed{seed}" / "copied_from.json").write_text(json.dumps({"from": source}) + "\n")
    print(f"{name}: baselines of seed {seed} are {source}'s (the same split, checked)", flush=True)
    return True


def run_cells(name: str, seeds: list[int], stages: tuple[str, ...], minutes: float | None) -> None:
    config = config_for(name, minutes)
    folder = config.parent
    for seed in seeds:
        base = f"baselines-seed{seed}"
        seed_sets = ["--set", f"baselines_dir={base}", "--set", f"baselines.sasrec.seed={seed}"]
        if {"popularity", "sasrec"} & set(stages) and not (
            folder / base / "sasrec" / "metrics-test.json"
        ).exists():
            copy_baselines(name, seed, config)
        if "popularity" in stages and seed == seeds[0] and not (folder / "popularity-metrics.json").exists():
            llmrec("baseline", str(config), "--model", "popularity", *seed_sets)
            (folder / "popularity-metrics.json").write_bytes(
                (folder / base / "popularity" / "metrics-test.json").read_bytes()
            )
        # the content baseline has no training seed: once, on catalogues with text
        content = folder / "content-metrics.json"
        if (
            "content" in stages
            and seed == seeds[0]
            and DATASETS[name].get("text", True)
            and not content.exists()
        ):
            llmrec("baseline", str(config), "--model", "content", *seed_sets)
            content.write_bytes((folder / base / "content" / "metrics-test.json").read_bytes())
        if "sasrec" in stages and not (folder / base / "sasrec" / "metrics-test.json").exists():
            llmrec("baseline", str(config), "--model", "sasrec", *seed_sets)
        for stage, sets in LLM_VARIANTS.items():
            if stage in stages:
                _llm_cell(config, folder, base, f"{stage}-seed{seed}", seed, sets)


# the LLM rows: the default recipe, and the same with item rows anchored to their text
LLM_VARIANTS = {"llm": [], "anchored": ["--set", "model.item_rows=anchored"]}


def _llm_cell(config: Path, folder: Path, base: str, name: str, seed: int, extra: list[str]) -> None:
    """Train one LLM run (resumable) and evaluate it on the test split alone, as the hybrid (with a
    SASRec-CE) and with the content mix (when training fitted one: atomic ids and item text)."""
    run = folder / name
    mixed = run / "retriever" / "content_mix.json"
    if (run / "metrics-test-hybrid.json").exists() and (
        (run / "metrics-test-mix.json").exists() or not mixed.exists()
    ):
        return
    if not (folder / "prepared" / "manifest.json").exists():
        llmrec("prepare", str(config))
    weights = folder / base / "sasrec" / "model.pt"
    sets = ["--set", f"run_dir={name}", "--set", f"train.seed={seed}", *extra]
    if weights.exists():
        sets += ["--set", f"generate.retriever_weights={base}/sasrec/model.pt"]
    if not (run / "train_summary.json").exists():
        llmrec("train", str(config), *sets)
    llmrec("evaluate", str(run), "--split", "test", "--retriever", "none")
    (run / "metrics-test-llm.json").write_bytes((run / "metrics-test.json").read_bytes())
    if weights.exists():
        llmrec("evaluate", str(run), "--split", "test", "--retriever", "sasrec")
        (run / "metrics-test-hybrid.json").write_bytes((run / "metrics-test.json").read_bytes())
    if mixed.exists():
        llmrec("evaluate", str(run), "--split", "test", "--retriever", "content")
        (run / "metrics-test-mix.json").write_bytes((run / "metrics-test.json").read_bytes())


def refit(name: str, seeds: list[int]) -> None:
    """After a change to how the mixes are fitted (not to training): the default runs' auto choice
    fitted again (`choose_retriever`, with training's best validation NDCG@10 as the LLM alone, as
    `train` calls it) and the content mix re-evaluated on test; the weights are not retrained."""
    from llmrec.hybrid import choose_retriever

    folder = SUITE / name
    for seed in seeds:
        run = folder / f"llm-seed{seed}"
        summary = run / "train_summary.json"
        if not summary.exists():
            continue
        print(f"{name} seed {seed}: fitting train's choice again", flush=True)
        choose_retriever(run, llm_ndcg=json.loads(summary.read_text())["best_valid"]["ndcg@10"])
        if (run / "retriever" / "content_mix.json").exists():
            llmrec("evaluate", str(run), "--split", "test", "--retriever", "content")
            (run / "metrics-test-mix.json").write_bytes((run / "metrics-test.json").read_bytes())


def _summary(seeds: list[int], ndcg: list[float], hr: list[float], train_s: list) -> dict:
    """A suite row: per-seed values (rounded) and the mean and sd of NDCG@10 over the seeds."""
    return {
        "seeds": seeds,
        "ndcg@10": [round(x, 5) for x in ndcg],
        "hr@10": [round(x, 5) for x in hr],
        "train_s": train_s,
        "mean_ndcg@10": round(statistics.mean(ndcg), 5),
        "sd_ndcg@10": round(statistics.stdev(ndcg), 5) if len(ndcg) > 1 else None,
    }


def _row(files: list[tuple[int, Path]], train_s) -> dict | None:
    done = [(seed, json.loads(path.read_text())) for seed, path in files if path.exists()]
    if not done:
        return None
    seeds, metrics = [seed for seed, _ in done], [m for _, m in done]
    ndcg, hr = [m["ndcg@10"] for m in metrics], [m["hr@10"] for m in metrics]
    return _summary(seeds, ndcg, hr, [train_s(m) for m in metrics])


def _merge(row: dict | None, earlier: dict | None) -> dict | None:
    """Per seed, a measurement whose files are not in this checkout keeps its value from the last
    report (runs/ is not committed; a seed re-run here replaces it)."""
    if not earlier or not row:
        return row or earlier
    values = {}
    for source in (earlier, row):  # the row's own seeds last: they replace the earlier values
        values |= dict(zip(source["seeds"], zip(source["ndcg@10"], source["hr@10"], source["train_s"],
                                                strict=True), strict=True))  # fmt: skip
    seeds = sorted(values)
    ndcg, hr, train_s = map(list, zip(*(values[s] for s in seeds), strict=True))
    return _summary(seeds, ndcg, hr, train_s)


def report(seeds: list[int]) -> dict:
    # a data set not run in this checkout (runs/ is not committed) keeps its row from the last report
    earlier = json.loads(OUT.read_text())["datasets"] if OUT.exists() else {}
    datasets = {}
    for name, spec in DATASETS.items():
        folder = SUITE / name
        if not folder.exists():
            if name in earlier:
                datasets[name] = earlier[name]
            continue
        manifest = folder / "prepared" / "manifest.json"
        users = json.loads(manifest.read_text())["users"] if manifest.exists() else None
        llm_train = lambda m: (m.get("train") or {}).get("train_wall_s")  # noqa: E731
        row = {
            "about": spec["about"],
            "text": spec.get("text", True),
            "users": users,
            "llm": _row([(s, folder / f"llm-seed{s}" / "metrics-test-llm.json") for s in seeds], llm_train),
            "hybrid": _row(
                [(s, folder / f"llm-seed{s}" / "metrics-test-hybrid.json") for s in seeds], llm_train
            ),  # fmt: skip
            "sasrec": _row(
                [(s, folder / f"baselines-seed{s}" / "sasrec" / "metrics-test.json") for s in seeds],
                lambda m: m["train"].get("train_wall_s"),
            ),
            "popularity": _row([(0, folder / "popularity-metrics.json")], lambda m: 0.0),
        }
        if (folder / "content-metrics.json").exists():
            row["content"] = _row([(0, folder / "content-metrics.json")], lambda m: 0.0)
        variants = {  # the content mix of the default runs, and the anchored-rows runs
            "mix": _row([(s, folder / f"llm-seed{s}" / "metrics-test-mix.json") for s in seeds], llm_train),
            "anchored": _row(
                [(s, folder / f"anchored-seed{s}" / "metrics-test-llm.json") for s in seeds], llm_train
            ),
            "anchored_hybrid": _row(
                [(s, folder / f"anchored-seed{s}" / "metrics-test-hybrid.json") for s in seeds], llm_train
            ),
        }
        row |= {k: v for k, v in variants.items() if v}  # rows only where the variant ran
        for key in ("llm", "hybrid", "mix", "sasrec", "popularity", "content", "anchored", "anchored_hybrid"):
            merged = _merge(row.get(key), earlier.get(name, {}).get(key))
            if merged:
                row[key] = merged
        chosen, retrievers = [], []
        for s in seeds:
            choice = folder / f"llm-seed{s}" / "retriever" / "choice.json"
            if choice.exists():
                made = json.loads(choice.read_text())
                chosen.append(ROW_BY_CHOICE[made["chosen"]])
                # the SASRec-CE run shortlisting for the hybrid (its folder name: which seed)
                weights = made.get("retriever_weights")
                retrievers.append(Path(weights).parent.parent.name if weights else None)
        row["chosen_by_seed"] = chosen
        row["retriever_by_seed"] = retrievers
        row["chosen"] = max(set(chosen), key=chosen.count) if chosen else None
        row["llm_training"] = _training(folder, "llm", seeds)
        if anchored_training := _training(folder, "anchored", seeds):
            row["anchored_training"] = anchored_training
        # a data set whose default runs are not in this checkout (only a variant re-run here) keeps
        # their choice and training as last reported
        for key in ("chosen_by_seed", "retriever_by_seed", "chosen", "llm_training", "anchored_training"):
            if not row.get(key) and earlier.get(name, {}).get(key):
                row[key] = earlier[name][key]
        if row["llm"] and row["sasrec"]:
            best = row[row["chosen"]] if row["chosen"] and row[row["chosen"]] else row["llm"]
            row["chosen_over_sasrec"] = round(best["mean_ndcg@10"] / row["sasrec"]["mean_ndcg@10"], 3)
        datasets[name] = row
    result = {"datasets": datasets, "machine": machine()}
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")
    return result


def _training(folder: Path, variant: str, seeds: list[int]) -> list[dict]:
    """How each seed's LLM run of `variant` trained: steps, epochs, why it stopped, wall time, budget."""
    summaries = [folder / f"{variant}-seed{s}" / "train_summary.json" for s in seeds]
    return [
        {k: v for k, v in json.loads(p.read_text()).items() if k in STOP_KEYS}
        | {"max_minutes": yaml.safe_load((p.parent / "config.yaml").read_text())["train"]["max_minutes"]}
        for p in summaries
        if p.exists()
    ]


# train's choice (hybrid.shortlist.choose_retriever) -> the suite row measuring it ("content" is the
# content baseline's row, so the LLM + content mix is "mix")
ROW_BY_CHOICE = {"llm": "llm", "hybrid": "hybrid", "content": "mix"}
STOP_KEYS = ("steps", "epochs_run", "best_epoch", "stop_reason", "train_wall_s", "tokens_per_interaction")


def machine() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    kind = "AVX-512 BF16" if "avx512_bf16" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, {kind}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("run", "refit", "report"))
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", choices=STAGES, default=[s for s in STAGES if s != "anchored"])
    parser.add_argument("--minutes", type=float, default=None, help="train.max_minutes for the LLM")
    args = parser.parse_args()
    if args.what == "run":
        for name in args.datasets:
            run_cells(name, args.seeds, tuple(args.only), args.minutes)
    if args.what == "refit":
        for name in args.datasets:
            refit(name, args.seeds)
    report(args.seeds)


if __name__ == "__main__":
    main()
