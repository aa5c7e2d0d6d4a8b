"""The package reads in data-flow order: each stage imports only from the stages before it (the
order is llmrec/__init__.py's docstring's), so a stage can be read and tested without later ones."""

from __future__ import annotations

import ast
from pathlib import Path

import llmrec

PACKAGE = Path(llmrec.__file__).parent
# foundation first, then the stages; the verbs and the CLI wire them all
ORDER = [
    "errors",
    "io",
    "config",
    "backbone",
    "data",
    "ids",
    "prompts",
    "model",
    "run_dir",
    "train",
    "generate",
    "catalogue",
    "evaluate",
    "baselines",
    "mix",
    "explain",
    "score",
    "serve",
    "report",
    "quickstart",
    "recipes",
    "cli",
    "__main__",
    "__init__",
]


def unit(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imported_units(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n.split(".")[1] for n in names if n.startswith("llmrec.")}
    return found


def test_each_stage_imports_only_the_stages_before_it():
    files = sorted(PACKAGE.rglob("*.py"))
    assert {unit(p) for p in files} <= set(ORDER), (
        "a new top-level module or package needs its place in ORDER"
    )
    late = [
        f"{p.relative_to(PACKAGE)} imports llmrec.{u}"
        for p in files
        for u in imported_units(p) - {unit(p)}
        if ORDER.index(u) > ORDER.index(unit(p))
    ]
    assert not late, "\n".join(late)


def test_the_documented_order_is_the_checked_one():
    stages = llmrec.__doc__.split("in data-flow order:")[1].split(".")[0]
    listed = [s.strip() for s in stages.replace("/", "->").split("->")]
    assert [s for s in ORDER if s in listed] == listed
