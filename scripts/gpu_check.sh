#!/usr/bin/env bash
# lmforge on a CUDA GPU, in one prepared run: bf16 throughput and MFU (gpt2_small eager and compiled,
# tinyllama_1b, bert_base), DeepSpeed ZeRO-2/3, FSDP2, tuning-method memory, decoding, exact resume.
# Writes OUT/gpu-check.md (the report), OUT/gpu-check.json (every figure) and OUT/gpu-check.log.
#
#   scripts/gpu_check.sh OUT                  on a CUDA GPU; where gpu_wheels/ holds wheels (make
#                                             gpu-wheels, run where PyPI is reachable, for a machine
#                                             that cannot download) they are installed into a
#                                             temporary folder first
#   GPU_CHECK_DRY=1 scripts/gpu_check.sh OUT  the same steps at tiny sizes on the CPU, no wheels
#
# Settings (environment): PYTHON (default python3), GPU_CHECK_ONLY=step,step (the others are recorded
# as skipped), GPU_CHECK_BUDGET=seconds for all steps (default 480 on a GPU), GPU_CHECK_PEAK_TFLOPS
# (the bf16 peak MFU is measured against, where bench/gpu_check.py does not know the GPU).
# docs/gpu-check.md says what each step runs and what each figure means.
set -uo pipefail

out=${1:?usage: scripts/gpu_check.sh OUT_FOLDER (GPU_CHECK_DRY=1 for the CPU dry run)}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
out=$(mkdir -p "$out" && cd "$out" && pwd)  # absolute: the check runs from the checkout's root
work=$(mktemp -d "${TMPDIR:-/tmp}/lmforge-gpu-check.XXXXXX")
mkdir -p "$work/logs"
pythonpath=$root/src
args=(--work "$work")

shopt -s nullglob
wheels=("$root"/gpu_wheels/*.whl)
if [ -n "${GPU_CHECK_DRY:-}" ]; then
    args+=(--dry)
elif [ ${#wheels[@]} -gt 0 ]; then
    # hydra-core, omegaconf, antlr4, deepspeed and their few needs, for Python 3.12 (make gpu-wheels);
    # a failed install is recorded (gpu-check.log) and the steps go on, each saying what is missing
    "$python" -m pip install --quiet --no-index --no-deps --no-compile --disable-pip-version-check \
        --target "$work/site" "${wheels[@]}" >"$work/logs/install-wheels.log" 2>&1 \
        || echo "warning: installing gpu_wheels/ failed: see gpu-check.log" >&2
    pythonpath=$work/site:$pythonpath
elif ! "$python" -c "import hydra, omegaconf, deepspeed" 2>/dev/null; then
    echo "error: $python lacks hydra-core, omegaconf or deepspeed and gpu_wheels/ is empty: run" \
        "make gpu-wheels where PyPI is reachable and carry gpu_wheels/ here" >&2
    exit 2
fi
[ -n "${GPU_CHECK_ONLY:-}" ] && args+=(--only "$GPU_CHECK_ONLY")
[ -n "${GPU_CHECK_BUDGET:-}" ] && args+=(--budget "$GPU_CHECK_BUDGET")

export PYTHONPATH=$pythonpath${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled
settings=$(env | grep -E '^GPU_CHECK_(DRY|ONLY|BUDGET|PEAK_TFLOPS)=' | sort | tr '\n' ' ')
export GPU_CHECK_COMMAND="${settings}scripts/gpu_check.sh $out"
cd "$root" && "$python" bench/gpu_check.py "$out" "${args[@]}"
