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
BUILD_DIR=$BUILD_DIR JOBS=$JOBS scripts/build.sh -DRWKV_EMB_WERROR=ON
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 600
# The same tests under sanitizers, then every fuzz target for FUZZ_SECONDS
# (30 here, to keep CI within its time; scripts/fuzz.sh alone runs 60).
JOBS=$JOBS scripts/sanitize.sh
JOBS=$JOBS FUZZ_SECONDS=${FUZZ_SECONDS:-30} scripts/fuzz.sh
