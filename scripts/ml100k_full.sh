#!/usr/bin/env bash
# Full ML-100K run on the embedded SmolLM2: prepare, train, evaluate all 943 test users, and copy the
# metrics (with training budget and wall times) to docs/benchmarks/ml100k-metrics-test.json.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
llmrec prepare scripts/ml100k_full.yaml
llmrec train scripts/ml100k_full.yaml
llmrec evaluate runs/ml100k/run --split test
python - "$start" <<'PY'
import json, sys, time
m = json.load(open("runs/ml100k/run/metrics-test.json"))
m["prepare"] = json.load(open("runs/ml100k/prepared/manifest.json"))
m["config"] = "scripts/ml100k_full.yaml"
m["total_wall_s"] = round(time.time() - int(sys.argv[1]), 1)
json.dump(m, open("docs/benchmarks/ml100k-metrics-test.json", "w"), indent=2)
PY
