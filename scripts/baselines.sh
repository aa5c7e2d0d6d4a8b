#!/usr/bin/env bash
# SASRec-CE and popularity on the same split the LLM uses, through the same evaluation code.
#   bash scripts/baselines.sh ml100k          -> docs/benchmarks/ml100k-sasrec-metrics-test.json
#   bash scripts/baselines.sh beauty          -> docs/benchmarks/beauty-sasrec-metrics-test.json
#   bash scripts/baselines.sh beauty-unmasked -> docs/benchmarks/beauty-unmasked-sasrec-metrics-test.json
# "unmasked" keeps the user's history items in the ranking (generate.exclude_history: false) for
# training-time validation and test: RecBole's protocol for sequential models, under which the
# published SASRec-CE figure was measured.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:?ml100k, beauty or beauty-unmasked}" in
  ml100k) config=scripts/ml100k_full.yaml; out=runs/ml100k/baselines ;;
  beauty) config=scripts/beauty.yaml; out=runs/beauty/baselines ;;
  beauty-unmasked)
    out=runs/beauty/baselines-unmasked; config=$out/config.yaml
    mkdir -p "$out"
    python - "$config" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open("scripts/beauty.yaml"))
cfg["generate"]["exclude_history"] = False
# paths in a config resolve against its own folder: this one lives in runs/beauty/baselines-unmasked/
cfg["prepared_dir"], cfg["baselines_dir"], cfg["run_dir"] = "../prepared", ".", "../run"
cfg["data"]["path"] = "../../../" + cfg["data"]["path"].removeprefix("../")
yaml.safe_dump(cfg, open(sys.argv[1], "w"), sort_keys=False)
PY
    ;;
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
