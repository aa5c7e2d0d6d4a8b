#!/usr/bin/env bash
# The LLM on Amazon Beauty (all 22,363 test users), for a CUDA machine: prepare, train, evaluate with
# the vLLM backend. Writes runs/beauty/run/metrics-test.json; copy it to docs/benchmarks/ with the run.
set -euo pipefail
cd "$(dirname "$0")/.."
llmrec prepare scripts/beauty.yaml
llmrec train scripts/beauty.yaml
llmrec evaluate runs/beauty/run --split test --backend vllm
cp runs/beauty/run/metrics-test.json docs/benchmarks/beauty-llm-metrics-test.json
