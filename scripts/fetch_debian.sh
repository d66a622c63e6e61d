#!/usr/bin/env bash
# Fetch Debian packages with `apt-get download` and unpack them with `dpkg -x` under DEST (default
# data/debian); no root needed. Usage: fetch_debian.sh [DEST [PACKAGE...]]; without packages, those of
# the debian_docs corpus (datasets/debian_docs/prepare.py and datasets/bible/prepare.py then write its
# text; make data-debian runs them all). A package already unpacked (its version is recorded in
# DEST/.packages/NAME) is skipped, so running it again is cheap.
set -euo pipefail

dest=${1:-data/debian}
packages=("${@:2}")
if [[ ${#packages[@]} -eq 0 ]]; then
    packages=(linux-doc-6.1 python3.11-doc dict-gcide sword-text-kjv sword-text-web r-cran-janeaustenr)
fi
stamps="$dest/.packages"
mkdir -p "$stamps"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for package in "${packages[@]}"; do
    if [[ -s "$stamps/$package" ]]; then
        echo "fetch_debian: $package $(cat "$stamps/$package") is already unpacked in $dest"
        continue
    fi
    echo "fetch_debian: fetching $package"
    if ! (cd "$work" && apt-get download "$package"); then
        echo "fetch_debian: apt-get cannot fetch $package: run \`sudo apt-get update\` and retry" >&2
        exit 1
    fi
    deb=$(find "$work" -maxdepth 1 -name "${package}_*.deb" | head -n 1)
    dpkg -x "$deb" "$dest"
    dpkg-deb -f "$deb" Version >"$stamps/$package"
    echo "fetch_debian: unpacked $package $(cat "$stamps/$package") into $dest"
    rm -f "$deb"
done
echo "fetch_debian: $(du -sh "$dest" | cut -f1) in $dest"
