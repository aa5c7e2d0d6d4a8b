"""What the commands print: the metrics table of `evaluate` and `baseline` and the names of the
models in it (the CLI, the quickstart and the notebook show these)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

MIX_LABELS = {"none": "LLM alone", "hybrid": "hybrid (SASRec-CE + LLM)", "content": "content mix"}
BASELINE_LABELS = {"llm_alone": "LLM alone", "sasrec": "SASRec-CE"}


def print_metrics(metrics: dict, label: str = "llm") -> None:
    keys = ["hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr", "valid_rate", "distinct_rate"]
    table = Table(title=f"{metrics.get('split', '')} metrics, {metrics['users']} users (full ranking)")
    table.add_column("model")
    for key in keys:
        table.add_column(key, justify="right")
    table.add_row(label, *(f"{metrics[k]:.4f}" for k in keys))
    for name, base in metrics.get("baselines", {}).items():
        table.add_row(BASELINE_LABELS.get(name, name), *(f"{base[k]:.4f}" for k in keys))
    Console(width=max(Console().width, 120)).print(table)
