#!/usr/bin/env bash
# SASRec-CE and popularity on the same split the LLM uses, through the same evaluation code.
#   bash scripts/baselines.sh ml100k          -> docs/benchmarks/ml100k-sasrec-metrics-test.json
#   bash scripts/baselines.sh beauty          -> docs/benchmarks/beauty-sasrec-metrics-test.json
#   bash scripts/baselines.sh beauty-unmasked -> docs/benchmarks/beauty-unmasked-sasrec-metrics-test.json
#   bash scripts/baselines.sh beauty-recbole  -> docs/benchmarks/beauty-recbole-sasrec-metrics-test.json
#   bash scripts/baselines.sh ml100k --seed N -> docs/benchmarks/ml100k-sasrec-seedN-metrics-test.json
#     (SASRec-CE's training seed N: its initial weights and batch order; seed 0 is the plain row)
# "unmasked" keeps the user's history items in the ranking (generate.exclude_history: false) for
# training-time validation and test: RecBole's protocol for sequential models, under which the
# published SASRec-CE figure was measured. "recbole" adds RecBole's SASRec defaults: its block
# layout, 2 heads, early stopping on MRR@10, and batches of ~2,048 training targets (350 Beauty
# sequences of 5.9 targets on average; RecBole batches 2,048 sequence prefixes).
set -euo pipefail
cd "$(dirname "$0")/.."
unmasked=(--set generate.exclude_history=false)
name=${1:?ml100k, beauty, beauty-unmasked or beauty-recbole}
case "$name" in
  ml100k)
    config=scripts/ml100k_full.yaml; out=runs/ml100k/baselines; overrides=()
    if [[ ${2:-} == --seed ]]; then
      [[ ${3:-} =~ ^[0-9]+$ ]] || { echo "--seed needs a whole number, got '${3:-}'" >&2; exit 2; }
      name=ml100k-seed$3; out=runs/ml100k/baselines-seed$3
      overrides=(--set "baselines.sasrec.seed=$3" --set "baselines_dir=../$out")
    fi ;;
  beauty) config=scripts/beauty.yaml; out=runs/beauty/baselines; overrides=() ;;
  beauty-unmasked)
    config=scripts/beauty.yaml; out=runs/beauty/baselines-unmasked
    # paths in overrides resolve against the config's folder (scripts/), as they would in the file
    overrides=("${unmasked[@]}" --set "baselines_dir=../$out") ;;
  beauty-recbole)
    config=scripts/beauty.yaml; out=runs/beauty/baselines-recbole
    overrides=("${unmasked[@]}" --set "baselines_dir=../$out" --set baselines.sasrec.layout=recbole
               --set baselines.sasrec.heads=2 --set baselines.sasrec.valid_metric=mrr@10
               --set baselines.sasrec.batch_size=350) ;;
  *) echo "unknown dataset $1" >&2; exit 2 ;;
esac
llmrec baseline "$config" --model popularity "${overrides[@]}"
llmrec baseline "$config" --model sasrec "${overrides[@]}"
python - "$out" "$name" <<'PY'
import json, os, shutil, sys
out, name = sys.argv[1], sys.argv[2]
m = json.load(open(f"{out}/sasrec/metrics-test.json"))
m["baselines"] = {"popularity": json.load(open(f"{out}/popularity/metrics-test.json"))}
stem = name.replace("-seed", "-sasrec-seed") if "-seed" in name else f"{name}-sasrec"
json.dump(m, open(f"docs/benchmarks/{stem}-metrics-test.json", "w"), indent=2)
os.makedirs("docs/benchmarks/lists", exist_ok=True)  # each user's list, for paired comparisons
shutil.copy(f"{out}/sasrec/lists-test.parquet", f"docs/benchmarks/lists/{stem}-lists-test.parquet")
PY
python scripts/quality_report.py
