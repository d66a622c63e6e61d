#!/usr/bin/env bash
# The wheels that the GPU machine's image lacks, for CPython 3.12 on x86-64 Linux, into FOLDER: what
# scripts/gpu_check.sh installs there, where nothing can be downloaded. The image has torch, lightning,
# transformers, tokenizers, safetensors, pyyaml, numpy and the rest of DeepSpeed's needs, but not
# hydra-core, omegaconf, the antlr4 runtime they read configs with, deepspeed, nor deepspeed's hjson
# and pydantic (pydantic-core, annotated-types, typing-inspection; typing-extensions, which pydantic
# wants new). Versions: those installed in the venv of PYTHON, which the tests here ran with.
#
#   scripts/gpu_wheels.sh [FOLDER] [PYTHON]     (make gpu-wheels: gpu_wheels/ from .venv/bin/python)
set -euo pipefail

folder=${1:-gpu_wheels}
python=${2:-.venv/bin/python}
# published as wheels: downloaded for CPython 3.12 (pydantic-core is compiled: manylinux x86-64)
downloaded="hydra-core omegaconf hjson pydantic pydantic-core annotated-types typing-inspection typing-extensions"
# published as sources only: built here into pure-Python wheels (DeepSpeed without its compiled ops,
# which it builds when first used, and the check uses none: it steps torch's AdamW)
built="antlr4-python3-runtime deepspeed"
target=(--python-version 3.12 --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

pinned() {  # NAME==VERSION as installed in the venv
    echo "$1==$("$python" -c "from importlib.metadata import version; print(version('$1'))")"
}

rm -rf "$folder"
mkdir -p "$folder"
for package in $downloaded; do
    "$python" -m pip download --quiet --no-deps --only-binary=:all: "${target[@]}" -d "$folder" "$(pinned "$package")"
done
for package in $built; do
    DS_BUILD_OPS=0 "$python" -m pip wheel --quiet --no-deps -w "$folder" "$(pinned "$package")"
done

# every wheel installs for CPython 3.12 on x86-64 Linux, as gpu_check.sh installs them (no index, no deps)
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
"$python" -m pip install --quiet --no-index --no-deps --only-binary=:all: "${target[@]}" --target "$check" "$folder"/*.whl
echo "$(ls "$folder" | wc -l) wheels in $folder ($(du -sh "$folder" | cut -f1)); they install for CPython 3.12:"
ls "$folder"
