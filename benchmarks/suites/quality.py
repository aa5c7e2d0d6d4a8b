"""Quality: the default recipe (and named variants of it) on every benchmark data set, beside
SASRec-CE at its swept settings, popularity and, where items have text, the content baseline;
test NDCG@10 with full ranking, one result file per cell and training seed.

    python -m benchmarks quality run --datasets industrial --seeds 0 1 2 [--variants default anchored]
    python -m benchmarks quality run --datasets ml100k --variants default time-gaps --epochs 8
    python -m benchmarks quality run --datasets games-1k --variants default time-gaps --minutes 5
    python -m benchmarks quality compare --datasets ml100k --variants default time-gaps   # paired, per user
    python -m benchmarks quality sweep --datasets industrial     # SASRec-CE's settings, on validation
    python -m benchmarks quality refit --datasets industrial     # train's choice fitted again

Each cell is `llmrec prepare|baseline|train|evaluate` on runs/benchmarks/quality/NAME/config.yaml
(the data section from datasets.yaml, SASRec-CE's settings, the variant's settings from
configs/variants/VARIANT.yaml), skipped when its result file exists, so a killed run continues.
The LLM's settings are the library's defaults plus the variant's; `--minutes` (train.max_minutes)
and `--epochs` (train.epochs) are the CPU's budget, recorded in the result's config.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import yaml

from benchmarks import data
from benchmarks.common import WORK, Result, llmrec, machine, result_path, run_info, save

SUITE = "quality"
VARIANTS = Path(__file__).resolve().parent.parent / "configs" / "variants"
BASELINES = ("popularity", "content", "sasrec")
# the large titled sets with real times, as 1,000-user samples (datasets.yaml): what a 2-core CPU
# trains in minutes (`--minutes 5`)
FULL = ["ml100k", "ml100k-notext", "industrial", "beauty"]
SAMPLED = ["beauty-titles-1k", "toys-titles-1k", "games-1k", "steam-1k"]
# train's choice (choice.json) -> the row measuring it: "content" is the content *baseline*'s row,
# so the LLM + content mix is "mix"
ROW_BY_CHOICE = {"llm": "llm", "hybrid": "hybrid", "content": "mix"}
TRAINING_KEYS = ("steps", "epochs_run", "best_epoch", "stop_reason", "train_wall_s", "tokens_per_interaction")


def variant_settings(name: str) -> dict[str, Any]:
    path = VARIANTS / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in VARIANTS.glob("*.yaml")))
        raise SystemExit(f"unknown variant {name!r}: {known} ({path.parent})")
    return yaml.safe_load(path.read_text()) or {}


def dotted(settings: dict[str, Any], prefix: str = "") -> list[str]:
    """{"prompts": {"time": "gaps"}} -> ["prompts.time=gaps"] (values as YAML, what --set parses)."""
    out = []
    for key, value in settings.items():
        if isinstance(value, dict):
            out += dotted(value, f"{prefix}{key}.")
        else:
            text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
            out.append(f"{prefix}{key}={text}")
    return out


def folder_for(name: str) -> Path:
    return WORK / SUITE / name


def config_for(name: str, budget: dict[str, float]) -> Path:
    """runs/benchmarks/quality/NAME/config.yaml: the data section, folders, SASRec-CE's settings."""
    data.prepare(name)
    spec = data.spec(name)
    cfg = {
        "prepared_dir": "prepared",
        "run_dir": "default-seed0",
        "baselines_dir": "baselines-seed0",
        "data": data.data_section(name),
        "baselines": {"sasrec": spec["sasrec"]},
    }
    if budget:
        cfg["train"] = budget
    path = folder_for(name) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _result(
    name: str,
    config: Path,
    rows: dict[str, dict],
    variant: str,
    seed: int | None,
    extra: dict | None = None,
    timings: dict | None = None,
    settings: list[str] = (),
) -> Result:
    summary: dict[str, Any] = {f"{row} ndcg@10": round(m["ndcg@10"], 5) for row, m in rows.items()}
    if extra and extra.get("chosen"):
        summary["chosen"] = extra["chosen"]
    resolved = yaml.safe_load(config.read_text()) | {"set": list(settings)}
    return Result(
        run=run_info(SUITE, name, variant, seed, config=resolved),
        machine=machine(),
        data=data.provenance(name),
        metrics={"rows": rows} | (extra or {}),
        summary=summary,
        timings=timings or {},
    )


def run_baselines(name: str, config: Path, seed: int, stages: set[str], first_seed: int) -> None:
    """Popularity and the content baseline once (no training seed), SASRec-CE per seed."""
    folder, base = config.parent, f"baselines-seed{seed}"
    sets = ["--set", f"baselines_dir={base}", "--set", f"baselines.sasrec.seed={seed}"]
    text = data.spec(name).get("text", True)
    cells = {
        "popularity": f"{name}-popularity",
        "content": f"{name}-content",
        "sasrec": f"{name}-sasrec-seed{seed}",
    }
    for model in BASELINES:
        file = result_path(SUITE, cells[model])
        if model not in stages or file.exists() or (model == "content" and not text):
            continue
        if model != "sasrec" and seed != first_seed:
            continue
        llmrec("baseline", str(config), "--model", model, *sets)
        metrics = json.loads((folder / base / model / "metrics-test.json").read_text())
        train_s = (metrics.get("train") or {}).get("train_wall_s")
        save(
            _result(
                name,
                config,
                {model: metrics},
                "default",
                seed if model == "sasrec" else None,
                timings={"train_wall_s": train_s},
                settings=sets,
            ),
            cells[model],
        )


def run_llm(name: str, config: Path, variant: str, seed: int) -> None:
    """Train one LLM run (resumable) and evaluate it on test alone, as the hybrid (with the seed's
    SASRec-CE) and as the content mix (when training fitted one)."""
    cell = f"{name}-{variant}-seed{seed}"
    if result_path(SUITE, cell).exists():
        return
    folder, base = config.parent, f"baselines-seed{seed}"
    run = folder / f"{variant}-seed{seed}"
    if not (folder / "prepared" / "manifest.json").exists():
        llmrec("prepare", str(config))
    weights = folder / base / "sasrec" / "model.pt"
    sets = [
        f"run_dir={run.name}",
        f"train.seed={seed}",
        f"baselines_dir={base}",
        f"baselines.sasrec.seed={seed}",  # the SASRec-CE `train` trains when the seed has none yet
        *dotted(variant_settings(variant)),
    ]
    if weights.exists():
        sets.append(f"generate.sasrec_weights={base}/sasrec/model.pt")
    flags = [x for s in sets for x in ("--set", s)]
    if not (run / "train_summary.json").exists():
        llmrec("train", str(config), *flags)
    rows = {}
    for row, mix in (("llm", "none"), ("hybrid", "hybrid"), ("mix", "content")):
        if mix == "hybrid" and not weights.exists():  # train trains one unless the variant opts out
            continue
        if mix == "content" and not (run / "mix" / "content_mix.json").exists():
            continue
        llmrec("evaluate", str(run), "--split", "test", "--mix", mix, "--no-compare")
        rows[row] = json.loads((run / "metrics-test.json").read_text())
        shutil.copy(run / "lists-test.parquet", run / f"lists-test-{row}.parquet")
    summary = json.loads((run / "train_summary.json").read_text())
    choice_file = run / "mix" / "choice.json"
    choice = json.loads(choice_file.read_text()) if choice_file.exists() else {}
    extra = {
        "chosen": ROW_BY_CHOICE.get(choice.get("chosen", "llm")),
        "choice": choice,
        "training": {k: summary.get(k) for k in TRAINING_KEYS},
    }
    timings = {"train_wall_s": summary.get("train_wall_s")}
    save(_result(name, config, rows, variant, seed, extra, timings, sets), cell)


def refit(name: str, seeds: list[int], variant: str) -> None:
    """After a change to how the mixes are fitted, or to SASRec-CE's settings (its cells trained
    again first: `run --only sasrec`), not to the LLM's training: train's choice fitted again on the
    trained runs and the cells' results written again."""
    from llmrec.mix import choose_mix

    sasrec = yaml.safe_load((folder_for(name) / "config.yaml").read_text())["baselines"]["sasrec"]
    for seed in seeds:
        run = folder_for(name) / f"{variant}-seed{seed}"
        if not (run / "train_summary.json").exists():
            continue
        # the run's own config rebuilds the SASRec-CE it mixes with: give it the suite's settings
        run_config = yaml.safe_load((run / "config.yaml").read_text())
        run_config["baselines"]["sasrec"] |= {k: v for k, v in sasrec.items() if k != "seed"}
        (run / "config.yaml").write_text(yaml.safe_dump(run_config, sort_keys=False))
        choose_mix(
            run, llm_ndcg=json.loads((run / "train_summary.json").read_text())["best_valid"]["ndcg@10"]
        )
        result_path(SUITE, f"{name}-{variant}-seed{seed}").unlink(missing_ok=True)
        run_llm(name, folder_for(name) / "config.yaml", variant, seed)


SWEEP = {
    "config": {},
    "dropout 0.5": {"dropout": 0.5},
    "hidden 128": {"hidden": 128},
    "max_len 50": {"max_len": 50},
    # a 1,000-user sample is 8 batches an epoch: at lr 1e-3 and patience 10 SASRec-CE can stop on a
    # noisy validation before its loss has moved (Games seed 0: epoch 16, loss 8.5 -> 8.0)
    "patience 40": {"patience": 40},
    "lr 0.003": {"lr": 0.003},
}


def sweep(name: str, config: Path) -> None:
    """SASRec-CE at its best, not at our defaults: one setting changed at a time around datasets.yaml's,
    each trained with early stopping; chosen on validation NDCG@10 (test recorded, never used to choose)."""
    from llmrec import recipes
    from llmrec.config import load_config

    base = load_config(config)
    rows = {}
    for label, changes in SWEEP.items():
        settings = base.baselines.sasrec.model_copy(update=changes)
        if changes and settings == base.baselines.sasrec:
            continue
        cfg = base.model_copy(deep=True)
        cfg.baselines.sasrec = settings
        cfg.baselines_dir = str(config.parent / f"sweep-{label.replace(' ', '-')}")
        done = Path(cfg.baselines_dir) / "sasrec"
        if (done / "metrics-test.json").exists():
            valid, test = (json.loads((done / f"metrics-{s}.json").read_text()) for s in ("valid", "test"))
        else:
            out = recipes.baseline(cfg, "sasrec")
            valid, test = out["valid"], out["test"]
        rows[label] = {
            "changes": changes,
            "settings": settings.model_dump(),
            "valid_ndcg@10": valid["ndcg@10"],
            "test_ndcg@10": test["ndcg@10"],
            "best_epoch": valid["train"]["best_epoch"],
            "train_s": valid["train"]["train_wall_s"],
        }
    chosen = max(rows, key=lambda n: rows[n]["valid_ndcg@10"])
    save(
        Result(
            run=run_info(SUITE, name, "sasrec-sweep", config=yaml.safe_load(config.read_text())),
            machine=machine(),
            data=data.provenance(name),
            metrics={"settings": rows, "chosen_on_valid": chosen},
            summary={"chosen": chosen, "chosen valid ndcg@10": round(rows[chosen]["valid_ndcg@10"], 5)},
        ),
        f"{name}-sasrec-sweep",
    )


def compare(name: str, variants: list[str], seeds: list[int], row: str) -> None:
    """Variant against the first, paired per user: the seed-averaged per-user NDCG@10 difference with a
    bootstrap interval, beside each variant's mean and sd over seeds (a difference within the seed
    spread is no difference)."""
    import pandas as pd

    from llmrec.evaluate.metrics import paired_bootstrap, user_ndcg

    def per_user(variant: str) -> pd.Series:
        columns = []
        for seed in seeds:
            lists = pd.read_parquet(folder_for(name) / f"{variant}-seed{seed}" / f"lists-test-{row}.parquet")
            values = [user_ndcg(t, list(i)) for t, i in zip(lists["target"], lists["items"], strict=True)]
            columns.append(pd.Series(values, index=lists["user"]))
        return pd.concat(columns, axis=1).mean(axis=1)

    def seeds_of(variant: str) -> list[float]:
        return [
            json.loads(result_path(SUITE, f"{name}-{variant}-seed{s}").read_text())["metrics"]["rows"][row][
                "ndcg@10"
            ]
            for s in seeds
        ]

    first, *others = variants
    base, base_values = per_user(first), seeds_of(first)
    out = {
        first: {
            "ndcg@10": base_values,
            "mean": statistics.mean(base_values),
            "sd": statistics.stdev(base_values) if len(seeds) > 1 else None,
        }
    }
    summary: dict[str, Any] = {f"{first} mean": round(out[first]["mean"], 5)}
    for other in others:
        values, users = seeds_of(other), per_user(other)
        spread = max(statistics.stdev(values), out[first]["sd"]) if len(seeds) > 1 else None
        difference = statistics.mean(values) - out[first]["mean"]
        out[other] = {
            "ndcg@10": values,
            "mean": statistics.mean(values),
            "sd": statistics.stdev(values) if len(seeds) > 1 else None,
            "over_first": statistics.mean(values) / out[first]["mean"],
            "beyond_seed_spread": abs(difference) > spread if spread is not None else None,
            "paired_user_ndcg@10_minus_first": paired_bootstrap((users - base.loc[users.index]).to_numpy()),
        }
        summary[f"{other} / {first}"] = round(out[other]["over_first"], 4)
    save(
        Result(
            run=run_info(SUITE, name, "-vs-".join(variants), config={"row": row, "seeds": seeds}),
            machine=machine(),
            data=data.provenance(name),
            metrics=out,
            summary=summary,
        ),
        f"{name}-compare-{'-vs-'.join(variants)}",
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks quality", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("run", "compare", "sweep", "refit"))
    parser.add_argument("--datasets", nargs="+", default=[*FULL, *SAMPLED])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["default"])
    parser.add_argument("--only", nargs="*", choices=(*BASELINES, "llm"), default=[*BASELINES, "llm"])
    parser.add_argument("--minutes", type=float, help="train.max_minutes: the CPU's wall-time cap on the LLM")
    parser.add_argument("--epochs", type=float, help="train.epochs: an epoch cap, the same for every variant")
    parser.add_argument("--row", default="llm", help="compare: which row (llm, hybrid, mix)")
    args = parser.parse_args(argv)
    budget = {k: v for k, v in (("max_minutes", args.minutes), ("epochs", args.epochs)) if v is not None}
    for name in args.datasets:
        config = config_for(name, budget)
        if args.stage == "sweep":
            sweep(name, config)
        elif args.stage == "compare":
            compare(name, args.variants, args.seeds, args.row)
        elif args.stage == "refit":
            for variant in args.variants:
                refit(name, args.seeds, variant)
        else:
            for seed in args.seeds:
                run_baselines(name, config, seed, set(args.only), args.seeds[0])
                if "llm" in args.only:
                    for variant in args.variants:
                        run_llm(name, config, variant, seed)
