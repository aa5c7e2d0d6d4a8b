#!/usr/bin/env bash
# SASRec-CE and popularity on the same split the LLM uses, through the same evaluation code.
#   bash scripts/baselines.sh ml100k   -> docs/benchmarks/ml100k-sasrec-metrics-test.json
#   bash scripts/baselines.sh beauty   -> docs/benchmarks/beauty-sasrec-metrics-test.json
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:?ml100k or beauty}" in
  ml100k) config=scripts/ml100k_full.yaml; out=runs/ml100k/baselines ;;
  beauty) config=scripts/beauty.yaml; out=runs/beauty/baselines ;;
  *) echo "unknown dataset $1" >&2; exit 2 ;;
esac
llmrec baseline "$config" --model popularity
llmrec baseline "$config" --model sasrec
python - "$out" "$1" <<'PY'
import json, sys
out, name = sys.argv[1], sys.argv[2]
m = json.load(open(f"{out}/sasrec/metrics-test.json"))
m["baselines"] = {"popularity": json.load(open(f"{out}/popularity/metrics-test.json"))}
json.dump(m, open(f"docs/benchmarks/{name}-sasrec-metrics-test.json", "w"), indent=2)
PY
python scripts/quality_report.py
