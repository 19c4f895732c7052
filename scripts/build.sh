#!/usr/bin/env bash
# Configures and builds with CMake and Ninja: the one build command of CI
# (test.sh), run.sh and the Docker images.
#   scripts/build.sh [--target T]... [-DOPTION=VALUE]...
# BUILD_DIR (default build) and JOBS (default: all cores) from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

targets=()
while [ "${1:-}" = --target ]; do
  targets+=(--target "$2")
  shift 2
done
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
