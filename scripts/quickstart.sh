#!/usr/bin/env bash
# One command for a newcomer: install dependencies, build (Release), and plan a real job:
# Llama 3.1 405B on 16,384 H100s (the scale Meta reported), from the built-in catalog.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build build/release -j"$(nproc)"
echo
build/release/xpuplan train --model llama3.1-405b --system dgx-h100 --devices 16384 \
  --seq-len 8192 --global-batch 2048 --tp 8 --pp 16 --dp 128 "$@"
