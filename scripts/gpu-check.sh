#!/usr/bin/env bash
# One-shot check of the CUDA backend on a GPU machine, in under 8 minutes:
#   setup (only if something is missing) -> nvidia-smi -> CUDA build ->
#   GPU unit tests (rwkv_tests --gtest_filter='Cuda*:*/cuda') -> gpu_bench ->
#   HTTP integration tests with the server on the GPU (RWKV_EMB_DEVICE=cuda).
# Everything goes to gpu-results.txt ($RESULTS, default $OUT/gpu-results.txt
# when $OUT is set, else ./gpu-results.txt), ending with a one-line status per stage.
#
#   scripts/gpu-check.sh
# Environment: BUILD_DIR (build-gpu), RWKV_FIXTURES_DIR (../shared/fixtures or
# ./shared/fixtures), CUDA_ARCH (detected with nvidia-smi, else 90),
# TOTAL_SECONDS (470), SKIP_HTTP=1 to leave out the HTTP tests.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

BUILD_DIR=${BUILD_DIR:-build-gpu}
RESULTS=${RESULTS:-${OUT:-.}/gpu-results.txt}
TOTAL_SECONDS=${TOTAL_SECONDS:-470}
DEADLINE=$(($(date +%s) + TOTAL_SECONDS))
SUMMARY=()
: >"$RESULTS"

log() { echo "$*" | tee -a "$RESULTS"; }
# Seconds left before the deadline, keeping `reserve` for the stages after.
left() { local l=$((DEADLINE - $(date +%s) - ${1:-0})); echo $((l > 5 ? l : 5)); }
# stage NAME LIMIT_SECONDS COMMAND...: runs it under a timeout of at most
# LIMIT and what is left, appending its output to the results file.
stage() {
  local name=$1 limit=$2
  shift 2
  local t t0 rc status
  t=$(left)
  ((t > limit)) && t=$limit
  log ""
  log "===== $name (timeout ${t}s): $*"
  t0=$(date +%s)
  timeout --kill-after=10 "$t" "$@" 2>&1 | tee -a "$RESULTS"
  rc=${PIPESTATUS[0]}
  status="ok"
  ((rc == 124 || rc == 137)) && status="TIMED OUT"
  ((rc != 0 && rc != 124 && rc != 137)) && status="FAILED (exit $rc)"
  SUMMARY+=("$(printf '%-28s %-18s %4ss' "$name" "$status" $(($(date +%s) - t0)))")
  return "$rc"
}
finish() {
  log ""
  log "===== summary"
  for line in "${SUMMARY[@]}"; do log "$line"; done
  exit "${1:-0}"
}

log "gpu-check: $(date -u +%FT%TZ) on $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

# ---- Dependencies: scripts/setup.sh only when something is missing ----------
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null ||
  ! pkg-config --exists openblas 2>/dev/null || [ ! -f third_party/vocab/rwkv_vocab_v20230424.txt ]; then
  stage "setup.sh" 200 scripts/setup.sh || finish 1
fi

# ---- The GPU -----------------------------------------------------------------
stage "nvidia-smi" 20 nvidia-smi || finish 1
CUDA_ARCH=${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
  head -1 | tr -d ' .')}
CUDA_ARCH=${CUDA_ARCH:-90}

# ---- Build (only this GPU's architecture: faster) ----------------------------
[ -z "$NVCC" ] && { log "no nvcc found (PATH or /usr/local/cuda/bin)"; finish 1; }
stage "configure (sm_$CUDA_ARCH)" 60 cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DRWKV_EMB_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" || finish 1
stage "build" 240 cmake --build "$BUILD_DIR" -j "$(nproc)" --target rwkv_tests rwkv-emb-server gpu_bench ||
  finish 1

# ---- Fixtures for the numeric tests ------------------------------------------
if [ -z "${RWKV_FIXTURES_DIR:-}" ]; then
  for d in ../shared/fixtures shared/fixtures; do
    if [ -f "$d/expected.json" ]; then
      RWKV_FIXTURES_DIR=$(cd "$d" && pwd)
      export RWKV_FIXTURES_DIR
      break
    fi
  done
fi
log ""
log "fixtures: ${RWKV_FIXTURES_DIR:-NOT FOUND (fixture tests will skip)}"

# ---- GPU unit tests, benchmark, HTTP tests -----------------------------------
stage "GPU tests (Cuda*, */cuda)" 150 "$BUILD_DIR/rwkv_tests" --gtest_filter='Cuda*:*/cuda' --gtest_color=no
stage "gpu_bench" 150 "$BUILD_DIR/gpu_bench" --budget "$(($(left 60) < 120 ? $(left 60) : 120))"
if [ "${SKIP_HTTP:-0}" != 1 ]; then
  if python3 -c 'import pytest, requests' 2>/dev/null; then
    stage "HTTP tests (--device cuda)" 150 env RWKV_EMB_DEVICE=cuda \
      RWKV_EMB_SERVER="$PWD/$BUILD_DIR/rwkv-emb-server" \
      python3 -m pytest -q -x -p no:cacheprovider tests/integration
  else
    log "HTTP tests skipped: python3 pytest/requests not installed (scripts/setup.sh installs them)"
  fi
fi
finish 0
