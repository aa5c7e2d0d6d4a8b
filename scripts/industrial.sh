#!/usr/bin/env bash
# Amazon 2018 Industrial_and_Scientific, brought as two CSVs (scripts/industrial.yaml: the data
# section, everything else the default recipe): the LLM, SASRec-CE and popularity on one split,
# through one evaluation code.
#   bash scripts/industrial.sh           -> docs/benchmarks/industrial-metrics-test.json (the LLM,
#                                           popularity beside it) and industrial-sasrec-metrics-test.json
#   bash scripts/industrial.sh --set K=V ... the same with settings changed; name the output with
#                                           NAME=industrial-xyz bash scripts/industrial.sh --set ...
set -euo pipefail
cd "$(dirname "$0")/.."
config=scripts/industrial.yaml
name=${NAME:-industrial}
overrides=("$@")
runs=runs/$name
if [[ $name != industrial ]]; then
  overrides+=(--set "prepared_dir=../$runs/prepared" --set "run_dir=../$runs/run")
fi
start=$(date +%s)
llmrec prepare "$config" "${overrides[@]}"
llmrec train "$config" "${overrides[@]}"
llmrec evaluate "$runs/run" --split test
if [[ ! -f runs/industrial/baselines/sasrec/metrics-test.json ]]; then
  llmrec baseline "$config" --model popularity
  llmrec baseline "$config" --model sasrec
fi
python - "$start" "$runs" "$config ${overrides[*]}" "$name" <<'PY'
import json, shutil, sys, time
start, runs, config, name = sys.argv[1:]
m = json.load(open(f"{runs}/run/metrics-test.json"))
m["prepare"] = json.load(open(f"{runs}/prepared/manifest.json"))
m["config"] = config.strip()
m["total_wall_s"] = round(time.time() - int(start), 1)
json.dump(m, open(f"docs/benchmarks/{name}-metrics-test.json", "w"), indent=2)
s = json.load(open("runs/industrial/baselines/sasrec/metrics-test.json"))
s["baselines"] = {"popularity": json.load(open("runs/industrial/baselines/popularity/metrics-test.json"))}
json.dump(s, open("docs/benchmarks/industrial-sasrec-metrics-test.json", "w"), indent=2)
# each user's list, for paired comparisons
shutil.copy(f"{runs}/run/lists-test.parquet", f"docs/benchmarks/lists/{name}-lists-test.parquet")
shutil.copy("runs/industrial/baselines/sasrec/lists-test.parquet", "docs/benchmarks/lists/industrial-sasrec-lists-test.parquet")
PY
python scripts/quality_report.py
