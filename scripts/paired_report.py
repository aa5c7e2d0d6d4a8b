"""Paired comparisons from kept per-user lists (docs/benchmarks/lists/NAME-lists-test.parquet):
for each pair, the per-user NDCG@10 difference (first minus second), its mean, a bootstrap 95%
interval over users and a p-value (`llmrec.evaluate.metrics.paired_bootstrap`).

    python scripts/paired_report.py --out docs/benchmarks/industrial-paired.json \\
        industrial-align:industrial industrial-align:industrial-sasrec industrial:industrial-sasrec
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from llmrec.evaluate.metrics import paired_bootstrap, user_ndcg
from llmrec.io import write_json

LISTS = Path("docs/benchmarks/lists")


def user_ndcgs(path: Path) -> pd.Series:
    """Per-user NDCG@10 of a kept lists file (user, target, items), indexed by user."""
    lists = pd.read_parquet(path)
    values = [user_ndcg(t, list(items)) for t, items in zip(lists["target"], lists["items"], strict=True)]
    return pd.Series(values, index=lists["user"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="FIRST:SECOND list names")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = {"what": "test, per-user NDCG@10 of FIRST minus SECOND, bootstrap over users (10,000 resamples)"}
    for pair in args.pairs:
        first, second = pair.split(":")
        a, b = (user_ndcgs(LISTS / f"{name}-lists-test.parquet") for name in (first, second))
        out[f"{first} vs {second}"] = paired_bootstrap((a - b.loc[a.index]).to_numpy())
        print(pair, out[f"{first} vs {second}"], flush=True)
    write_json(args.out, out)


if __name__ == "__main__":
    main()
