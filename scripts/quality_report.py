"""Quality report: every metrics file in docs/benchmarks/ that compares models on the same split.

Reads the committed metrics JSON files (written by `llmrec evaluate` / `llmrec baseline` through the
scripts named in the table) and writes docs/benchmarks/quality.md, quality.json and quality.png.
Rows whose file does not exist yet are listed as "not run yet", never filled in.

    python scripts/quality_report.py
"""

from __future__ import annotations

import json
from pathlib import Path

DOCS = Path("docs/benchmarks")
PUBLISHED_BEAUTY_SASREC_CE_NDCG10 = 0.0405  # RecBole SASRec-CE, ../shared/datasets/README.md

ML, BASE = "bash scripts/ml100k_full.sh", "bash scripts/baselines.sh"


def rerank(run: str) -> str:
    """The command that reranks SASRec-CE's shortlist with the LLM of runs/<run>, named after it."""
    return f"python scripts/rerank.py scripts/ml100k_full.yaml --run runs/{run}/run --name {run}"


def rerank_atomic(seed: int) -> str:
    """The hybrid's row for the atomic-id LLM of training seed `seed`, with SASRec-CE's seed-0 weights."""
    run = "ml100k-atomic-2epochs" + ("" if seed == 0 else f"-seed{seed}")
    return (
        f"python scripts/rerank.py scripts/ml100k_full.yaml --run runs/{run}/run --name {run} --candidates 50"
    )


ROWS = [
    # dataset, model, metrics file, dotted key inside the file (None: top level), command that reproduces it
    ("ML-100K", "LLM, semantic ids", "ml100k-metrics-test.json", None, ML),
    ("ML-100K", "LLM, title ids", "ml100k-title-metrics-test.json", None, f"{ML} title"),
    ("ML-100K", "LLM, numeric ids", "ml100k-numeric-metrics-test.json", None, f"{ML} numeric"),
    (
        "ML-100K",
        "LLM, semantic ids from SASRec-CE's item embeddings",
        "ml100k-sasrec-semantic-metrics-test.json",
        None,
        f"{ML} sasrec-semantic",
    ),
    (
        "ML-100K",
        "LLM, semantic ids from SASRec-CE's item embeddings, seed 1",
        "ml100k-sasrec-semantic-seed1-metrics-test.json",
        None,
        f"{ML} sasrec-semantic --seed 1",
    ),
    (
        "ML-100K",
        "LLM, semantic ids from SASRec-CE's item embeddings, 800 steps",
        "ml100k-sasrec-semantic-800steps-metrics-test.json",
        None,
        f"{ML} sasrec-semantic --steps 800",
    ),
    (
        "ML-100K",
        "LLM, semantic ids from SASRec-CE's item embeddings, lr 1e-3",
        "ml100k-sasrec-semantic-lr1e-3-metrics-test.json",
        None,
        f"{ML} sasrec-semantic --lr 1e-3",
    ),
    (
        "ML-100K",
        "LLM, semantic ids from SASRec-CE's item embeddings, last 30 items in the prompt",
        "ml100k-sasrec-semantic-history30-metrics-test.json",
        None,
        f"{ML} sasrec-semantic --history 30",
    ),
    (
        "ML-100K",
        "LLM, semantic ids from SASRec-CE's item embeddings, every item a target (1 epoch)",
        "ml100k-sasrec-semantic-every-item-examples10000-433steps-metrics-test.json",
        None,
        f"{ML} sasrec-semantic --objective every_item --examples 10000 --steps 433",
    ),
    (
        "ML-100K",
        "LLM, semantic ids from SASRec-CE's item embeddings, LoRA on every linear layer",
        "ml100k-sasrec-semantic-lora-all-linear-metrics-test.json",
        None,
        f"{ML} sasrec-semantic --lora all-linear",
    ),
    (
        "ML-100K",
        "LLM, atomic ids (one token per item), every item a target, catalogue softmax, 2 epochs",
        "ml100k-atomic-2epochs-metrics-test.json",
        None,
        f"{ML} atomic --epochs 2",
    ),
    *(
        (
            "ML-100K",
            f"LLM, atomic ids, every item a target, catalogue softmax, 2 epochs, seed {seed}",
            f"ml100k-atomic-2epochs-seed{seed}-metrics-test.json",
            None,
            f"{ML} atomic --epochs 2 --seed {seed}",
        )
        for seed in (1, 2)
    ),
    ("ML-100K", "SASRec-CE", "ml100k-sasrec-metrics-test.json", None, f"{BASE} ml100k"),
    *(
        (
            "ML-100K",
            f"SASRec-CE, seed {seed}",
            f"ml100k-sasrec-seed{seed}-metrics-test.json",
            None,
            f"{BASE} ml100k --seed {seed}",
        )
        for seed in (1, 2)
    ),  # fmt: skip
    (
        "ML-100K",
        "SASRec-CE top-20 + LLM score (weight from valid)",
        "ml100k-rerank-metrics-test.json",
        None,
        rerank("ml100k"),
    ),
    (
        "ML-100K",
        "SASRec-CE top-20 reranked by the LLM alone",
        "ml100k-rerank-metrics-test.json",
        "parts.llm_on_shortlist",
        rerank("ml100k"),
    ),
    (
        "ML-100K",
        "SASRec-CE top-20 + LLM score, SASRec-embedding ids",
        "ml100k-sasrec-semantic-rerank-metrics-test.json",
        None,
        rerank("ml100k-sasrec-semantic"),
    ),
    (
        "ML-100K",
        "SASRec-CE top-20 + LLM score, SASRec-embedding ids, seed 1 (validation chose w = 0)",
        "ml100k-sasrec-semantic-seed1-rerank-metrics-test.json",
        None,
        rerank("ml100k-sasrec-semantic-seed1"),
    ),
    (
        "ML-100K",
        "SASRec-CE top-20 + LLM score, SASRec-embedding ids, 800 steps",
        "ml100k-sasrec-semantic-800steps-rerank-metrics-test.json",
        None,
        rerank("ml100k-sasrec-semantic-800steps"),
    ),
    (
        "ML-100K",
        "SASRec-CE top-20 + LLM score, SASRec-embedding ids, last 30 items in the prompt",
        "ml100k-sasrec-semantic-history30-rerank-metrics-test.json",
        None,
        rerank("ml100k-sasrec-semantic-history30"),
    ),
    (
        "ML-100K",
        "SASRec-CE top-20 + LLM score, SASRec-embedding ids, every item a target",
        "ml100k-sasrec-semantic-every-item-examples10000-433steps-rerank-metrics-test.json",
        None,
        rerank("ml100k-sasrec-semantic-every-item-examples10000-433steps"),
    ),
    (
        "ML-100K",
        "SASRec-CE top-20 reranked by the LLM alone, SASRec-embedding ids, every item a target",
        "ml100k-sasrec-semantic-every-item-examples10000-433steps-rerank-metrics-test.json",
        "parts.llm_on_shortlist",
        rerank("ml100k-sasrec-semantic-every-item-examples10000-433steps"),
    ),
    (
        "ML-100K",
        "SASRec-CE top-20 + LLM score, SASRec-embedding ids, LoRA on every linear layer",
        "ml100k-sasrec-semantic-lora-all-linear-rerank-metrics-test.json",
        None,
        rerank("ml100k-sasrec-semantic-lora-all-linear"),
    ),
    *(
        (
            "ML-100K",
            f"SASRec-CE top-50 + atomic-id LLM score (retriever: sasrec, weight from valid), seed {seed}",
            f"ml100k-atomic-2epochs{'' if seed == 0 else f'-seed{seed}'}-rerank-metrics-test.json",
            None,
            rerank_atomic(seed),
        )
        for seed in (0, 1, 2)
    ),
    ("ML-100K", "popularity", "ml100k-sasrec-metrics-test.json", "baselines.popularity", f"{BASE} ml100k"),
    (
        "Industrial",
        "LLM, the default recipe (atomic ids, every item a target, LoRA, 2 epochs)",
        "industrial-metrics-test.json",
        None,
        "bash scripts/industrial.sh",
    ),
    (
        "Industrial",
        "LLM, the default recipe + alignment tasks (text -> id 0.5, id -> text 0.25 per next-item example)",
        "industrial-align-metrics-test.json",
        None,
        "NAME=industrial-align bash scripts/industrial.sh "
        "--set 'train.tasks={text_to_id: 0.5, id_to_text: 0.25}'",
    ),
    (
        "Industrial",
        "LLM, the default recipe with 4 epochs instead of 2",
        "industrial-4epochs-metrics-test.json",
        None,
        "NAME=industrial-4epochs bash scripts/industrial.sh --set train.epochs=4",
    ),
    (
        "Industrial",
        "SASRec-CE (dropout 0.5, chosen on validation)",
        "industrial-sasrec-metrics-test.json",
        None,
        "bash scripts/industrial.sh",
    ),
    (
        "Industrial",
        "popularity",
        "industrial-sasrec-metrics-test.json",
        "baselines.popularity",
        "bash scripts/industrial.sh",
    ),
    ("Beauty", "SASRec-CE", "beauty-sasrec-metrics-test.json", None, f"{BASE} beauty"),
    ("Beauty", "popularity", "beauty-sasrec-metrics-test.json", "baselines.popularity", f"{BASE} beauty"),
    (
        "Beauty",
        "SASRec-CE, history not masked (RecBole's protocol)",
        "beauty-unmasked-sasrec-metrics-test.json",
        None,
        f"{BASE} beauty-unmasked",
    ),
    (
        "Beauty",
        "SASRec-CE, RecBole's protocol and settings",
        "beauty-recbole-sasrec-metrics-test.json",
        None,
        f"{BASE} beauty-recbole",
    ),
    ("Beauty", "LLM, semantic ids", "beauty-llm-metrics-test.json", None, "bash scripts/beauty_llm.sh (GPU)"),
]
KEYS = ["hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr", "valid_rate", "users"]


def load(file: str, key: str | None) -> dict | None:
    path = DOCS / file
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())
    for part in key.split(".") if key else []:
        metrics = metrics.get(part) if metrics else None
    return metrics


def budget(metrics: dict) -> str:
    if "llm_scoring_wall_s" in metrics:
        wall, n = metrics["llm_scoring_wall_s"], metrics["model"].split("top-")[1].split()[0]
        valid = wall.get("valid", wall.get("fit_and_valid"))
        return f"LLM scores {n} candidates: valid {valid} s, test {wall['test']} s"
    train = metrics.get("train") or {}
    if "steps" in train:
        return f"{train['steps']} steps x {train['batch_size']}, train {train.get('train_wall_s', '?')} s"
    if "epochs_run" in train:
        epochs = f"{train['epochs_run']} epochs (best {train['best_epoch']})"
        return f"{epochs}, train {train.get('train_wall_s', '?')} s"
    return "-"


def suite_table() -> list[str]:
    """The default recipe on every suite data set (scripts/bench_suite.py -> suite.json): test NDCG@10,
    mean over the training seeds that ran (their count in brackets), the content mix, anchored item rows,
    SASRec-CE, the content baseline and popularity."""
    path = DOCS / "suite.json"
    if not path.exists():
        return []
    suite = json.loads(path.read_text())

    def cell(row: dict | None) -> str:
        if not row:
            return "not run yet"
        sd = f" ± {row['sd_ndcg@10']:.4f}" if row.get("sd_ndcg@10") is not None else ""
        return f"{row['mean_ndcg@10']:.4f}{sd} ({len(row['seeds'])})"

    lines = [
        "",
        "## The default recipe on catalogues nobody tuned for (`docs/benchmarks/suite.json`)",
        "",
        f"Test NDCG@10, full ranking, history masked; mean ± sd over training seeds (how many ran). "
        f"Machine: {suite['machine']}. Each row: `python scripts/bench_suite.py run --datasets NAME` "
        "(then `report`). A stop at max_minutes is the CPU's wall-time cap (`--minutes`), not convergence: "
        "those rows are lower bounds of the recipe. ml100k-notext's baselines are ML-100K's (the same split "
        "to the item index, checked; SASRec-CE and popularity read no text). The content mix: the LLM + "
        "text similarity + SASRec-CE's log-prob (its weight picked on validation; Industrial's rows "
        "re-fitted on the trained runs with `bench_suite.py refit` when that term was added).",
        "",
        "| data set | users | LLM (default recipe) | hybrid | content mix | LLM, anchored rows | "
        "hybrid, anchored rows | SASRec-CE (swept) | content | popularity | chosen | chosen / SASRec-CE | "
        "LLM epochs (best), stop |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in suite["datasets"].items():
        ratio = row.get("chosen_over_sasrec")
        runs = "; ".join(
            f"{t.get('epochs_run')} ({t.get('best_epoch')}), {t.get('stop_reason')}"
            + (f" {t['max_minutes']:g} min" if t.get("max_minutes") else "")
            for t in row["llm_training"]
        )
        text = row.get("text", True)
        models = [cell(row.get(k)) for k in ("llm", "hybrid")] + [cell(row.get("mix")) if text else "no text"]
        models += [cell(row.get(k)) for k in ("anchored", "anchored_hybrid", "sasrec")]
        models += [cell(row.get("content")) if text else "no text", cell(row["popularity"])]
        cells = [name, row["users"], *models, row["chosen"] or "", f"{ratio:.3f}x" if ratio else "", runs]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def main() -> None:
    table, report = [], []
    for dataset, model, file, key, command in ROWS:
        metrics = load(file, key)
        report.append(
            {"dataset": dataset, "model": model, "file": file, "command": command, "metrics": metrics}
        )
        if metrics is None:
            table.append(f"| {dataset} | {model} | not run yet | | | | | | | `{command}` |")
            continue
        cells = [f"{metrics[k]:.4f}" if k != "users" else str(metrics[k]) for k in KEYS]
        cost = budget(metrics) if key is None else "-"
        table.append(f"| {dataset} | {model} | " + " | ".join(cells) + f" | {cost} | `{command}` |")

    lines = [
        "# Quality: the LLM against SASRec-CE and popularity, same splits, same evaluation code",
        "",
        "Written by `python scripts/quality_report.py` from the metrics files in this folder. Full",
        "ranking over the whole catalogue, leave-one-out test split, history items excluded from the",
        "ranking (except in the two Beauty rows marked RecBole). SASRec-CE: causal self-attention, softmax",
        "cross-entropy over all items, early stopping on validation NDCG@10, MRR@10 in the RecBole-settings",
        "row (`llmrec baseline CONFIG --model sasrec`). Wall times are those of the machine each row ran",
        "on (2-core CPUs of different speeds), so compare them only between rows run in one session.",
        "",
        "| dataset | model | " + " | ".join(KEYS) + " | budget | reproduce |",
        "|" + "---|" * (len(KEYS) + 4),
        *table,
    ]
    for file, protocol in (
        ("beauty-sasrec-metrics-test.json", "history masked (ours)"),
        ("beauty-unmasked-sasrec-metrics-test.json", "history not masked (RecBole's)"),
        ("beauty-recbole-sasrec-metrics-test.json", "RecBole's protocol and model settings"),
    ):
        if (beauty := load(file, None)) is not None:
            gap = beauty["ndcg@10"] / PUBLISHED_BEAUTY_SASREC_CE_NDCG10 - 1
            lines += [
                "",
                f"Beauty SASRec-CE NDCG@10, {protocol}: {beauty['ndcg@10']:.4f} vs the published "
                f"{PUBLISHED_BEAUTY_SASREC_CE_NDCG10} (RecBole, full cross-entropy): {gap:+.1%}.",
            ]
    lines += suite_table()
    notes = DOCS / "quality-notes.md"  # the hand-written analysis of the numbers above
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    (DOCS / "quality.md").write_text("\n".join(lines) + "\n")
    (DOCS / "quality.json").write_text(json.dumps(report, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in report if r["metrics"] is not None]
    # wide enough that the long row labels leave the bars room to be read
    fig, ax = plt.subplots(figsize=(13, 0.4 * len(done) + 1))
    labels = [f"{r['dataset']}: {r['model']}" for r in done]
    bars = ax.barh(labels[::-1], [r["metrics"]["ndcg@10"] for r in done][::-1], color="#4477aa")
    ax.bar_label(bars, fmt="%.4f", padding=3, fontsize=8)
    ax.margins(x=0.12)
    ax.set_xlabel("NDCG@10 (test, full ranking)")
    fig.tight_layout()
    fig.savefig(DOCS / "quality.png", dpi=120)


if __name__ == "__main__":
    main()
