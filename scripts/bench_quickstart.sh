#!/usr/bin/env bash
# `llmrec quickstart` timed as a user runs it, in a fresh folder, on an AVX2-only CPU (or emulated
# on an AVX-512 one: torch and oneDNN limited to AVX2, so `model.dtype: auto` picks fp32 as there).
#   bash scripts/bench_quickstart.sh [--emulate-avx2] [CONFIG]  -> a run added to docs/benchmarks/quickstart.json
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
emulate=(); [[ ${1:-} == --emulate-avx2 ]] && { emulate=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2); shift; }
config=${1:-}
work=$(mktemp -d); cd "$work"
start=$(date +%s)
env "${emulate[@]}" llmrec quickstart ${config:+--config "$config"}
seconds=$(( $(date +%s) - start ))
python - "$work" "$seconds" "${#emulate[@]}" "${config:-built-in}" "$repo/docs/benchmarks/quickstart.json" <<'PY'
import json, platform, subprocess, sys
work, seconds, emulated, config, out = sys.argv[1:]
run = f"{work}/runs/quickstart/run" if config == "built-in" else None
if run is None:
    import yaml, pathlib
    cfg = yaml.safe_load(open(config)); run = str(pathlib.Path(config).parent / cfg["run_dir"])
m = json.load(open(f"{run}/metrics-test.json"))
flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
cpu = ("AVX2 emulated on an AVX-512 CPU (ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2)" if int(emulated)
       else "avx512_bf16" if "avx512_bf16" in flags else "avx2" if "avx2" in flags else platform.machine())
report = json.load(open(out)) if __import__("os").path.exists(out) else {"runs": []}
report["runs"].append({
    "config": config, "cpu": cpu, "dtype": m["train"]["dtype"], "total_s": int(seconds),
    "train_s": m["train"]["train_wall_s"], "steps": m["train"]["steps"], "test_users": m["users"],
    "ndcg@10": m["ndcg@10"], "popularity_ndcg@10": m["baselines"]["popularity"]["ndcg@10"],
    "chosen": m["retriever"].get("chosen_on_validation", {}).get("chosen", "llm"),
    **{f"{name}_ndcg@10": m["baselines"][name]["ndcg@10"] for name in ("llm_alone", "sasrec") if name in m["baselines"]},
    "sasrec_for_choice": m["retriever"].get("chosen_on_validation", {}).get("sasrec"),
})
json.dump(report, open(out, "w"), indent=2)
print(json.dumps(report["runs"][-1], indent=2))
PY
