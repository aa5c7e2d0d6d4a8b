"""docs/benchmarks.md (and docs/benchmarks.png) from benchmarks/results alone.

    python -m benchmarks render           # write the page and the plot
    python -m benchmarks render --check   # exit 1 if the page is not what the results give (CI)

Every file is validated against the schema first. Quality cells are averaged over their training
seeds (mean ± sd, how many); every other current result is one row of its suite's table, showing
the numbers the suite chose for its summary; superseded results are listed last, as history.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, Result, load_results

PAGE = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks.png"
ROWS = ("chosen", "llm", "hybrid", "mix", "sasrec", "content", "popularity")
HEADERS = {
    "chosen": "chosen default",
    "llm": "LLM alone",
    "hybrid": "hybrid",
    "mix": "content mix",
    "sasrec": "SASRec-CE",
    "content": "content",
    "popularity": "popularity",
}


def link(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return f"[{path.stem}](../{rel.as_posix()})"


def cell(values: list[float]) -> str:
    if not values:
        return ""
    sd = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{sd} ({len(values)})"


def machine_of(result: Result) -> str:
    m = result.machine
    parts = [p for p in (m.cpu, m.isa if m.isa and m.isa not in (m.cpu or "") else None, m.gpu) if p]
    return ", ".join(parts) or "not recorded"


def quality_cells(results: dict[Path, Result]) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(data set, variant) -> row -> test NDCG@10 per seed; baselines join every variant of their set."""
    cells: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    baselines: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results.values():
        if r.run.suite != "quality" or r.run.status != "current" or "rows" not in r.metrics:
            continue
        rows = r.metrics["rows"]
        if set(rows) <= {"sasrec", "popularity", "content"}:
            for row, m in rows.items():
                baselines[r.run.dataset][row].append(m["ndcg@10"])
            continue
        target = cells[(r.run.dataset, r.run.variant)]
        for row, m in rows.items():
            target[row].append(m["ndcg@10"])
        chosen = r.metrics.get("chosen")
        if chosen in rows:
            target["chosen"].append(rows[chosen]["ndcg@10"])
            target["chosen_names"].append(chosen)
    for (dataset, _), rows in cells.items():
        for row, values in baselines[dataset].items():
            rows[row] = values
    return cells


def quality_table(results: dict[Path, Result]) -> list[str]:
    cells = quality_cells(results)
    machines = {
        machine_of(r)
        for r in results.values()
        if r.run.suite == "quality" and r.run.status == "current" and "rows" in r.metrics
    }
    lines = [
        "## Quality: the chosen default against SASRec-CE",
        "",
        "Test NDCG@10, full ranking over the catalogue, leave-one-out, history items masked; mean ± sd over "
        "training seeds (how many). *Chosen default*: what `llmrec train` picked on validation for each seed "
        "(the LLM alone, the hybrid with SASRec-CE, or the content mix) and `llmrec.load` serves. SASRec-CE "
        "at the settings its validation sweep chose. Wall-time caps are in each cell's file "
        "(`run.config`); a cell stopped by its cap is a lower bound of the recipe. "
        f"Machines: {'; '.join(sorted(machines))}.",
        "",
        "| data set | variant | " + " | ".join(HEADERS[r] for r in ROWS) + " | chosen / SASRec-CE | chosen |",
        "|---|---|" + "---|" * (len(ROWS) + 2),
    ]
    for (dataset, variant), rows in sorted(
        cells.items(), key=lambda kv: (kv[0][0], kv[0][1] != "default", kv[0][1])
    ):
        ratio = ""
        if rows.get("chosen") and rows.get("sasrec"):
            ratio = f"{statistics.mean(rows['chosen']) / statistics.mean(rows['sasrec']):.3f}x"
        names = rows.get("chosen_names", [])
        chosen = ", ".join(f"{n} ({names.count(n)})" for n in sorted(set(names)))
        lines.append(
            f"| {dataset} | {variant} | "
            + " | ".join(cell(rows.get(r, [])) for r in ROWS)
            + f" | {ratio} | {chosen} |"
        )
    return lines


def suite_tables(results: dict[Path, Result], status: str) -> list[str]:
    by_suite: dict[str, list[tuple[Path, Result]]] = defaultdict(list)
    for path, r in results.items():
        if r.run.status != status:
            continue
        if status == "current" and r.run.suite == "quality" and "rows" in r.metrics:
            continue  # in the quality table
        by_suite[r.run.suite].append((path, r))
    lines: list[str] = []
    for suite in sorted(by_suite):
        heading = f"## {suite}" if status == "current" else f"### {suite}"
        lines += [
            heading,
            "",
            "| result | data set | variant | numbers | machine | measured |",
            "|---|---|---|---|---|---|",
        ]
        for path, r in by_suite[suite]:
            numbers = "; ".join(
                f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in r.summary.items()
            )
            when = r.run.commit or "before the schema"
            if r.run.date:
                when += f", {r.run.date}"
            where = f"{r.run.dataset or ''} | {r.run.variant}"
            lines.append(f"| {link(path)} | {where} | {numbers} | {machine_of(r)} | {when} |")
        lines.append("")
    return lines


def page(results: dict[Path, Result]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m benchmarks render` from the files in `benchmarks/results/` alone (do not "
        "edit: CI fails when this page is stale). Each result file holds its exact command, the resolved "
        "settings, the machine and the data's source; `python -m benchmarks SUITE --help` says how to "
        "rerun one. Speed figures compare only within one file (measured side by side on one machine).",
        "",
        *quality_table(results),
        "",
        *suite_tables(results, "current"),
        "## Superseded",
        "",
        "Measured on recipes or code paths since replaced; kept as the history behind today's defaults.",
        "",
        *suite_tables(results, "superseded"),
    ]
    return "\n".join(lines).rstrip() + "\n"


def plot(results: dict[Path, Result]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = {k: v for k, v in quality_cells(results).items() if k[1] == "default"}
    names = sorted(d for d, _ in cells)
    shown = [
        r
        for r in ("chosen", "llm", "sasrec", "popularity")
        if any(cells[(d, "default")].get(r) for d in names)
    ]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(shown)
    for i, row in enumerate(shown):
        means = [statistics.mean(cells[(d, "default")].get(row) or [0.0]) for d in names]
        ax.bar([x + i * width for x in range(len(names))], means, width, label=HEADERS[row])
    ax.set_xticks([x + width * (len(shown) - 1) / 2 for x in range(len(names))], names)
    ax.set_ylabel("test NDCG@10")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110, metadata={"Software": None})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks render", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/benchmarks.md is stale")
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)  # tests
    parser.add_argument("--page", type=Path, default=PAGE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    results = load_results(args.results)
    text = page(results)
    if args.check:
        if not args.page.exists() or args.page.read_text() != text:
            raise SystemExit(f"{args.page} is stale: run `python -m benchmarks render`")
        print(f"{len(results)} result files valid; {args.page} is current")
        return
    PAGE.write_text(text)
    plot(results)
    print(f"wrote {PAGE.relative_to(ROOT)} and {PLOT.relative_to(ROOT)} from {len(results)} result files")
