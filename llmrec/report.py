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
    if "by_domain" in metrics:
        print_domains(metrics, label)


def print_domains(metrics: dict, label: str) -> None:
    """A run over several domains: every model's metrics per domain (the rows of a domain add up,
    weighted by users, to the whole above)."""
    keys = ["hr@10", "ndcg@10", "mrr"]
    table = Table(title=f"{metrics.get('split', '')} metrics by domain")
    for column in ("domain", "users", "model", *keys):
        table.add_column(column, justify="left" if column in ("domain", "model") else "right")
    baselines = metrics.get("baselines", {})
    models = [(label, metrics)] + [(BASELINE_LABELS.get(n, n), b) for n, b in baselines.items()]
    for domain in metrics["by_domain"]:
        for name, numbers in models:
            row = numbers.get("by_domain", {}).get(domain)
            if row is not None:
                table.add_row(domain, str(row["users"]), name, *(f"{row[k]:.4f}" for k in keys))
    Console(width=max(Console().width, 120)).print(table)
