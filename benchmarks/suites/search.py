"""The trie beam search's own cost, without a model: `trie_beam_search` over a fixed table of
next-token log-probs (SmolLM2's vocabulary, semantic ids of 3 levels x 32 codes for ML-100K's 1,682
items, 16 users a batch), as this checkout has it and as a git revision had it, side by side in one
process, with the lists each returns (results/search/trie-beam-search.json).

    python -m benchmarks search [--before 3ef1210] [--beams 20 50]

Why: on a GPU the model's step is milliseconds, so what the search does between steps decides its
speed (the H200 run in results/gpu decoded fewer users/s with it than with `generate()`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import ROOT, record
from llmrec.generate import beam as current
from llmrec.generate.trie import ItemTrie


def module_at(revision: str):
    """llmrec/generate/beam.py as it was at `revision`, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{revision}:llmrec/generate/beam.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "beam_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("beam_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["beam_before"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="3ef1210", help="the revision to compare with")
    parser.add_argument("--beams", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    vocab, codebook, levels, items, batch = 49152, 32, 3, 1682, 16
    gen = torch.Generator().manual_seed(0)
    codes = torch.randperm(codebook**levels, generator=gen)[:items]
    digits = [[int(c) // codebook ** (levels - 1 - lv) % codebook for lv in range(levels)] for c in codes]
    ids = [[vocab + lv * codebook + d for lv, d in enumerate(code)] for code in digits]
    trie = ItemTrie(ids, 2)
    before = module_at(args.before)
    rows = []
    for width in args.beams:
        table = torch.log_softmax(torch.randn(batch * width, vocab + levels * codebook, generator=gen), -1)

        def advance(parents, tokens, nodes, table=table):
            return table[: batch if parents is None else len(parents)]

        seconds, lists = {}, {}
        for name, module in [("before", before), ("now", current)] * 2:  # alternating, warm after the first
            t0 = time.perf_counter()
            for _ in range(args.repeats):
                found = module.trie_beam_search(advance, batch, trie, num_beams=width, top_k=10)
            seconds.setdefault(name, []).append((time.perf_counter() - t0) / args.repeats)
            lists[name] = [[(s.item, round(s.score, 5)) for s in row] for row in found]
        row = {
            "beams": width,
            "users": batch,
            "search_s_per_batch": {k: round(min(v), 4) for k, v in seconds.items()},
            "speedup": round(min(seconds["before"]) / min(seconds["now"]), 1),
            "same_lists": lists["before"] == lists["now"],
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "before": args.before,
        "results": rows,
    }
    summary = {f"{r['beams']} beams speedup": r["speedup"] for r in rows}
    record("search", "trie-beam-search", result, summary, dataset="ml100k", variant=f"against {args.before}")


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
