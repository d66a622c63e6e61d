#!/usr/bin/env bash
# Fetch the Debian packages of the debian_docs corpus with `apt-get download` and unpack them with
# `dpkg -x` under DEST (default data/debian); no root needed. A package already unpacked (its version
# is recorded in DEST/.packages/NAME) is skipped, so running it again is cheap.
set -euo pipefail

dest=${1:-data/debian}
packages=(linux-doc-6.1 python3.11-doc dict-gcide sword-text-kjv sword-text-web r-cran-janeaustenr)
stamps="$dest/.packages"
mkdir -p "$stamps"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for package in "${packages[@]}"; do
    if [[ -s "$stamps/$package" ]]; then
        echo "debian_docs: $package $(cat "$stamps/$package") is already unpacked in $dest"
        continue
    fi
    echo "debian_docs: fetching $package"
    if ! (cd "$work" && apt-get download "$package"); then
        echo "debian_docs: apt-get cannot fetch $package: run \`sudo apt-get update\` and retry" >&2
        exit 1
    fi
    deb=$(find "$work" -maxdepth 1 -name "${package}_*.deb" | head -n 1)
    dpkg -x "$deb" "$dest"
    dpkg-deb -f "$deb" Version >"$stamps/$package"
    echo "debian_docs: unpacked $package $(cat "$stamps/$package") into $dest"
    rm -f "$deb"
done
echo "debian_docs: $(du -sh "$dest" | cut -f1) in $dest"
