"""python -m benchmarks SUITE [ARGS]: run a suite, `prepare` a data set, or `render` the results page."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

SUITES = sorted(p.stem for p in (Path(__file__).parent / "suites").glob("*.py") if p.stem != "__init__")


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\ncommands: prepare, render, " + ", ".join(SUITES))
        return
    command, rest = argv[0], argv[1:]
    if command == "prepare":
        from benchmarks import data

        parser = argparse.ArgumentParser(prog="python -m benchmarks prepare", description=data.__doc__)
        parser.add_argument("datasets", nargs="+", choices=list(data.datasets()))
        parser.add_argument("--from", dest="source", type=Path, help="a folder holding the data set's files")
        args = parser.parse_args(rest)
        for name in args.datasets:
            data.prepare(name, args.source)
    elif command == "render":
        from benchmarks import render

        render.main(rest)
    elif command in SUITES:
        importlib.import_module(f"benchmarks.suites.{command}").main(rest)
    else:
        raise SystemExit(f"unknown command {command!r}: prepare, render, {', '.join(SUITES)}")


main(sys.argv[1:])
