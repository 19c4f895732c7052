#!/usr/bin/env bash
# Installs what is missing, builds, and starts the server. Without --model it
# serves a small random demo model (its outputs are meaningless).
#   scripts/run.sh [--model M.pth [--reranker R.pth]] [other serve flags]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

scripts/setup.sh --build-only
BUILD_DIR=$BUILD_DIR scripts/build.sh --target rwkv-emb-server
exec "$BUILD_DIR/rwkv-emb-server" serve "$@"
