#!/usr/bin/env bash
# Full ML-100K run on the embedded SmolLM2: prepare, train, evaluate all 943 test users, and copy the
# metrics (with training budget and wall times) to docs/benchmarks/.
#   bash scripts/ml100k_full.sh            semantic ids -> docs/benchmarks/ml100k-metrics-test.json
#   bash scripts/ml100k_full.sh title      title ids    -> docs/benchmarks/ml100k-title-metrics-test.json
#   bash scripts/ml100k_full.sh numeric    numeric ids  -> docs/benchmarks/ml100k-numeric-metrics-test.json
#   bash scripts/ml100k_full.sh sasrec-semantic
#       semantic ids clustered from SASRec-CE's item embeddings (LC-Rec's collaborative ids; needs
#       `bash scripts/baselines.sh ml100k` first) -> docs/benchmarks/ml100k-sasrec-semantic-metrics-test.json
#   bash scripts/ml100k_full.sh atomic
#       one token per item, every item of each training window a target, a softmax over the catalogue
#       (SASRec's objective on the pretrained body), the 50 most recent items in a prompt
#       -> docs/benchmarks/ml100k-atomic-metrics-test.json
#   bash scripts/ml100k_full.sh SCHEME [OPTION VALUE ...]: the same with settings changed (--set):
#       --steps N                N training steps instead of 400 (the cosine schedule spans them all)
#       --lr X                   peak learning rate X instead of 2e-3
#       --history N              the N most recent items in each prompt instead of 15
#                                (prompts.max_prompt_tokens, 160, still drops the oldest that do not fit)
#       --examples N             the N most recent training targets per user instead of 8
#       --objective every_item   item-list prompts (prompts/item_list.j2), every item of a window a target
#       --lora all-linear        LoRA on every linear layer (attention and MLP, LC-Rec's setting)
#       --seed N                 training seed N instead of 0 (LoRA's initial weights, example order;
#                                the item ids stay the same)
#       --epochs X               X passes over the training examples instead of a step count
#       --finetune full          train every weight instead of LoRA
#     each option adds to the run's name:
#       --steps 800 --lr 1e-3 -> runs/ml100k-SCHEME-800steps-lr1e-3, docs/benchmarks/ml100k-SCHEME-800steps-lr1e-3-metrics-test.json
# Every run uses scripts/ml100k_full.yaml; only the ids settings, the options above and the output
# folders differ (--set).
set -euo pipefail
cd "$(dirname "$0")/.."
config=scripts/ml100k_full.yaml
scheme=${1:-semantic}
shift $(( $# > 0 ? 1 : 0 ))
positive_int() { [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "$1 needs a positive integer, got '${2:-}'" >&2; exit 2; }; }
suffix=''; levers=()
while (( $# > 0 )); do
  case "$1" in
    --steps) positive_int "$@"; suffix+=-${2}steps; levers+=(--set "train.max_steps=$2") ;;
    --lr) [[ ${2:-} =~ ^[0-9.]+(e-?[0-9]+)?$ ]] || { echo "--lr needs a number such as 1e-3, got '${2:-}'" >&2; exit 2; }
          suffix+=-lr$2; levers+=(--set "train.lr=$2") ;;
    --history) positive_int "$@"; suffix+=-history$2; levers+=(--set "prompts.max_history=$2") ;;
    --examples) positive_int "$@"; suffix+=-examples$2; levers+=(--set "prompts.max_examples_per_user=$2") ;;
    --objective) [[ ${2:-} == every_item ]] || { echo "--objective takes every_item, got '${2:-}'" >&2; exit 2; }
                 suffix+=-every-item; levers+=(--set prompts.objective=every_item --set prompts.template=item_list.j2) ;;
    --lora) [[ ${2:-} == all-linear ]] || { echo "--lora takes all-linear, got '${2:-}'" >&2; exit 2; }
            suffix+=-lora-all-linear
            levers+=(--set 'model.lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]') ;;
    --seed) [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "--seed needs a whole number, got '${2:-}'" >&2; exit 2; }
            suffix+=-seed$2; levers+=(--set "train.seed=$2") ;;
    --epochs) [[ ${2:-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "--epochs needs a number, got '${2:-}'" >&2; exit 2; }
              suffix+=-${2}epochs; levers+=(--set train.max_steps=null --set "train.epochs=$2") ;;
    --finetune) [[ ${2:-} == full ]] || { echo "--finetune takes full, got '${2:-}'" >&2; exit 2; }
                suffix+=-full; levers+=(--set model.finetune=full) ;;
    *) echo "unknown option '$1' (--steps N, --lr X, --history N, --examples N, --objective every_item," \
            "--lora all-linear, --seed N, --epochs X, --finetune full)" >&2; exit 2 ;;
  esac
  shift 2
done
case "$scheme" in
  semantic) overrides=() ;;
  title|numeric) overrides=(--set "ids.scheme=$scheme") ;;
  atomic) overrides=(--set ids.scheme=atomic --set prompts.objective=every_item --set prompts.template=item_list.j2
                     --set prompts.max_history=50 --set prompts.max_prompt_tokens=128
                     --set prompts.max_examples_per_user=100000) ;;
  sasrec-semantic)
    embeddings=runs/ml100k/baselines/sasrec/item-embeddings.parquet
    [[ -f $embeddings ]] || { echo "$embeddings not found: run bash scripts/baselines.sh ml100k" >&2; exit 2; }
    overrides=(--set ids.embeddings=file --set "ids.embeddings_file=../$embeddings") ;;
  *) echo "unknown id scheme $scheme (semantic, title, numeric, sasrec-semantic or atomic)" >&2; exit 2 ;;
esac
# the config's own folders are the plain semantic run's; every other run gets folders of its own name
if [[ $scheme == semantic && -z $suffix ]]; then name=ml100k; else name=ml100k-$scheme$suffix; fi
runs=runs/$name; out=$name-metrics-test.json
if [[ $name != ml100k ]]; then
  # paths in overrides resolve against the config's folder (scripts/), as they would in the file
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
# each user's list, for paired comparisons (scripts/seeds_report.py)
mkdir -p docs/benchmarks/lists && cp "$runs/run/lists-test.parquet" "docs/benchmarks/lists/${out%-metrics-test.json}-lists-test.parquet"
