"""llmrec's benchmarks: one entry point, named suites, one result schema.

    python -m benchmarks prepare industrial [--from DIR]   # a data set, checked against its sha256
    python -m benchmarks quality run --datasets industrial --seeds 0 1 2
    python -m benchmarks render [--check]                  # docs/benchmarks.md from results/ alone

Suites live in benchmarks/suites (one module each, `python -m benchmarks SUITE --help`); every result
is benchmarks/results/SUITE/NAME.json in the schema of benchmarks.common.Result. Benchmarks call the
library and report; they never patch it.
"""
