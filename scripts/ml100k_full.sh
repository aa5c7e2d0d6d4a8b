#!/usr/bin/env bash
# Full ML-100K run on the embedded SmolLM2: prepare, train, evaluate all 943 test users, and copy the
# metrics (with training budget and wall times) to docs/benchmarks/.
#   bash scripts/ml100k_full.sh            semantic ids -> docs/benchmarks/ml100k-metrics-test.json
#   bash scripts/ml100k_full.sh title      title ids    -> docs/benchmarks/ml100k-title-metrics-test.json
#   bash scripts/ml100k_full.sh numeric    numeric ids  -> docs/benchmarks/ml100k-numeric-metrics-test.json
# Every scheme shares scripts/ml100k_full.yaml; only ids.scheme and the output folders differ.
set -euo pipefail
cd "$(dirname "$0")/.."
scheme=${1:-semantic}
case "$scheme" in
  semantic) config=scripts/ml100k_full.yaml; runs=runs/ml100k; out=ml100k-metrics-test.json ;;
  title|numeric)
    runs=runs/ml100k-$scheme; out=ml100k-$scheme-metrics-test.json; config=$runs/config.yaml
    mkdir -p "$runs"
    python - "$scheme" "$config" <<'PY'
import sys, yaml
scheme, path = sys.argv[1], sys.argv[2]
cfg = yaml.safe_load(open("scripts/ml100k_full.yaml"))
cfg["ids"]["scheme"] = scheme
cfg["data"]["path"] = "builtin:ml-100k"
# paths in a config resolve against its own folder: this one lives in runs/ml100k-<scheme>/
cfg["prepared_dir"], cfg["run_dir"], cfg["baselines_dir"] = "prepared", "run", "baselines"
yaml.safe_dump(cfg, open(path, "w"), sort_keys=False)
PY
    ;;
  *) echo "unknown id scheme $scheme (semantic, title or numeric)" >&2; exit 2 ;;
esac
start=$(date +%s)
llmrec prepare "$config"
llmrec train "$config"
llmrec evaluate "$runs/run" --split test
python - "$start" "$runs" "$config" "$out" <<'PY'
import json, sys, time
start, runs, config, out = sys.argv[1:]
m = json.load(open(f"{runs}/run/metrics-test.json"))
m["prepare"] = json.load(open(f"{runs}/prepared/manifest.json"))
m["config"] = config
m["total_wall_s"] = round(time.time() - int(start), 1)
json.dump(m, open(f"docs/benchmarks/{out}", "w"), indent=2)
PY
