#!/usr/bin/env bash
# Full ML-100K run on the embedded SmolLM2: prepare, train, evaluate all 943 test users, and copy the
# metrics (with training budget and wall times) to docs/benchmarks/.
#   bash scripts/ml100k_full.sh            semantic ids -> docs/benchmarks/ml100k-metrics-test.json
#   bash scripts/ml100k_full.sh title      title ids    -> docs/benchmarks/ml100k-title-metrics-test.json
#   bash scripts/ml100k_full.sh numeric    numeric ids  -> docs/benchmarks/ml100k-numeric-metrics-test.json
#   bash scripts/ml100k_full.sh sasrec-semantic
#       semantic ids clustered from SASRec-CE's item embeddings (LC-Rec's collaborative ids; needs
#       `bash scripts/baselines.sh ml100k` first) -> docs/benchmarks/ml100k-sasrec-semantic-metrics-test.json
#   bash scripts/ml100k_full.sh SCHEME [--steps N] [--lr X] [--history N] [--examples N]
#       the same with N training steps instead of the config's 400 (the cosine schedule spans them
#       all), peak learning rate X instead of 2e-3, the N most recent items in each prompt instead
#       of 15 (prompts.max_prompt_tokens, 160, still drops the oldest that do not fit), and/or the N
#       most recent training targets per user instead of 8; each option adds to the run's name:
#       --steps 800 --lr 1e-3 -> runs/ml100k-SCHEME-800steps-lr1e-3, docs/benchmarks/ml100k-SCHEME-800steps-lr1e-3-metrics-test.json
# Every run uses scripts/ml100k_full.yaml; only the ids settings, the options above and the output
# folders differ (--set).
set -euo pipefail
cd "$(dirname "$0")/.."
config=scripts/ml100k_full.yaml
scheme=${1:-semantic}
shift $(( $# > 0 ? 1 : 0 ))
suffix=''; levers=()
while (( $# > 0 )); do
  case "$1" in
    --steps) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "--steps needs a positive integer, got '${2:-}'" >&2; exit 2; }
             suffix+=-${2}steps; levers+=(--set "train.max_steps=$2") ;;
    --lr) [[ ${2:-} =~ ^[0-9.]+(e-?[0-9]+)?$ ]] || { echo "--lr needs a number such as 1e-3, got '${2:-}'" >&2; exit 2; }
          suffix+=-lr$2; levers+=(--set "train.lr=$2") ;;
    --history) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "--history needs a positive integer, got '${2:-}'" >&2; exit 2; }
               suffix+=-history$2; levers+=(--set "prompts.max_history=$2") ;;
    --examples) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "--examples needs a positive integer, got '${2:-}'" >&2; exit 2; }
                suffix+=-examples$2; levers+=(--set "prompts.max_examples_per_user=$2") ;;
    *) echo "unknown option '$1' (--steps N, --lr X, --history N, --examples N)" >&2; exit 2 ;;
  esac
  shift 2
done
case "$scheme" in
  semantic) runs=runs/ml100k; out=ml100k-metrics-test.json; overrides=() ;;
  title|numeric)
    runs=runs/ml100k-$scheme; out=ml100k-$scheme-metrics-test.json
    # paths in overrides resolve against the config's folder (scripts/), as they would in the file
    overrides=(--set "ids.scheme=$scheme" --set "prepared_dir=../$runs/prepared"
               --set "run_dir=../$runs/run" --set "baselines_dir=../$runs/baselines") ;;
  sasrec-semantic)
    embeddings=runs/ml100k/baselines/sasrec/item-embeddings.parquet
    [[ -f $embeddings ]] || { echo "$embeddings not found: run bash scripts/baselines.sh ml100k" >&2; exit 2; }
    runs=runs/ml100k-$scheme; out=ml100k-$scheme-metrics-test.json
    overrides=(--set ids.embeddings=file --set "ids.embeddings_file=../$embeddings"
               --set "prepared_dir=../$runs/prepared" --set "run_dir=../$runs/run"
               --set "baselines_dir=../$runs/baselines") ;;
  *) echo "unknown id scheme $scheme (semantic, title, numeric or sasrec-semantic)" >&2; exit 2 ;;
esac
if [[ -n $suffix ]]; then
  name=ml100k-$scheme$suffix; runs=runs/$name; out=$name-metrics-test.json
  overrides+=("${levers[@]}" --set "prepared_dir=../$runs/prepared" --set "run_dir=../$runs/run"
              --set "baselines_dir=../$runs/baselines")
fi
start=$(date +%s)
llmrec prepare "$config" "${overrides[@]}"
llmrec train "$config" "${overrides[@]}"
llmrec evaluate "$runs/run" --split test
python - "$start" "$runs" "$config ${overrides[*]}" "$out" <<'PY'
import json, sys, time
start, runs, config, out = sys.argv[1:]
m = json.load(open(f"{runs}/run/metrics-test.json"))
m["prepare"] = json.load(open(f"{runs}/prepared/manifest.json"))
m["config"] = config.strip()
m["total_wall_s"] = round(time.time() - int(start), 1)
json.dump(m, open(f"docs/benchmarks/{out}", "w"), indent=2)
PY
