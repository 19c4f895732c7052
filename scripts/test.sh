#!/usr/bin/env bash
# Installs what is missing, builds everything, runs every test.
#   scripts/test.sh            (BUILD_DIR defaults to build)
# Fixtures are read from ../shared/fixtures (or $RWKV_FIXTURES_DIR); without
# them the numeric tests skip with a loud message.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

scripts/setup.sh
# Test processes run side by side (ctest -j): OpenMP threads that spin while
# waiting would steal the cores from each other.
export OMP_WAIT_POLICY=PASSIVE
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_EMB_WERROR=ON
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 600
