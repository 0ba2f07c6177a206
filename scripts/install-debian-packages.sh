#!/usr/bin/env bash
# The Debian packages the tests use, each installed only where it is missing: Chromium for the
# browser tests (Playwright cannot download its own browser here) and Fashion-MNIST (the four
# IDX files in /usr/share/datasets/fashion-mnist/) for the real-data runs.
set -euo pipefail
declare -A needs=(
    [chromium]=/usr/bin/chromium
    [dataset-fashion-mnist]=/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
)
missing=()
for package in "${!needs[@]}"; do
    [ -e "${needs[$package]}" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
