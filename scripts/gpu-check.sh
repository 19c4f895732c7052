#!/usr/bin/env bash
# One-shot check of the CUDA backend on a GPU machine, in under 8 minutes:
#   nvidia-smi -> binaries -> GPU unit tests -> GPU benchmarks (one stage per
#   section) -> HTTP tests with the server on the GPU -> rerank over stored
#   states (bench/state_rerank_bench.py --device cuda).
# Binaries: from build-gpu-bundle/gpu-bundle.tar.xz when present (made by
# scripts/gpu-bundle.sh on a build machine: for GPU machines without a
# package registry, where the project's dependencies cannot be installed);
# otherwise built here for this GPU's architecture only (scripts/setup.sh
# first if something is missing and apt works).
# Everything goes to gpu-results.txt ($RESULTS; default $OUT/gpu-results.txt
# when $OUT is set, else ./gpu-results.txt), written as it goes and ending with
# a one-line status per stage, also when a stage fails or the time runs out.
#
#   scripts/gpu-check.sh
# Environment: GPU_BUNDLE (build-gpu-bundle/gpu-bundle.tar.xz), BUILD_DIR
# (build-gpu), RWKV_FIXTURES_DIR (../shared/fixtures, shared/fixtures or the
# bundle's), CUDA_ARCH (from nvidia-smi, else 90), TOTAL_SECONDS (470),
# SKIP_HTTP=1 to leave out the HTTP tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

GPU_BUNDLE=${GPU_BUNDLE:-build-gpu-bundle/gpu-bundle.tar.xz}
BUILD_DIR=${BUILD_DIR:-build-gpu}
RESULTS=${RESULTS:-${OUT:-.}/gpu-results.txt}
TOTAL_SECONDS=${TOTAL_SECONDS:-470}
DEADLINE=$(($(date +%s) + TOTAL_SECONDS))
SUMMARY=()
: >"$RESULTS"

log() { echo "$*" | tee -a "$RESULTS"; }
# Seconds left before the deadline (at least 5).
left() {
  local l=$((DEADLINE - $(date +%s)))
  echo $((l > 5 ? l : 5))
}
# stage NAME LIMIT_SECONDS COMMAND...: runs it under a timeout of at most
# LIMIT and what is left, appending its output to the results file. Returns
# the command's status (124/137: timed out).
stage() {
  local name=$1 limit=$2
  shift 2
  local t t0 rc=0 status
  t=$(left)
  ((t > limit)) && t=$limit
  log ""
  log "===== $name (timeout ${t}s): $*"
  t0=$(date +%s)
  timeout --kill-after=10 "$t" "$@" 2>&1 | tee -a "$RESULTS" || rc=${PIPESTATUS[0]}
  status="ok"
  ((rc == 124 || rc == 137)) && status="TIMED OUT"
  ((rc != 0 && rc != 124 && rc != 137)) && status="FAILED (exit $rc)"
  SUMMARY+=("$(printf '%-30s %-18s %4ss' "$name" "$status" $(($(date +%s) - t0)))")
  return "$rc"
}
# The summary is written however the script ends.
finish() {
  local rc=$?
  log ""
  log "===== summary (exit $rc)"
  for line in "${SUMMARY[@]}"; do log "$line"; done
}
trap finish EXIT

log "gpu-check: $(date -u +%FT%TZ) on $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

# ---- The GPU -----------------------------------------------------------------
stage "nvidia-smi" 20 nvidia-smi
CUDA_ARCH=${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
  head -1 | tr -d ' .' || true)}
CUDA_ARCH=${CUDA_ARCH:-90}

# ---- Binaries: the bundle, or a build of this architecture ---------------------
# cuBLAS/cuBLASLt/cudart come from the machine's CUDA toolkit (or PyTorch's wheels).
cuda_lib_dirs() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && printf '%s:' "$d"
  done
  python3 - 2>/dev/null <<'EOF' || true
import glob, os, site
for base in site.getsitepackages():
    for lib in glob.glob(os.path.join(base, "nvidia", "*", "lib", "libcublasLt.so*")):
        print(os.path.dirname(lib), end=":")
EOF
}

# The unit-test binaries that hold CUDA tests (tests/model/: the op tests, the
# engine on CUDA and the */cuda* backend parameters); gpu-bundle.sh packs them.
GPU_TEST_BINARIES=(rwkv_model_tests)

if [ -f "$GPU_BUNDLE" ]; then
  BUNDLE_DIR=$(mktemp -d)/gpu-bundle
  stage "unpack bundle" 60 tar -C "$(dirname "$BUNDLE_DIR")" -xJf "$GPU_BUNDLE"
  log "bundle built at commit $(cat "$BUNDLE_DIR/commit")"
  BIN=$BUNDLE_DIR/bin
  LD_LIBRARY_PATH="$BUNDLE_DIR/lib:$(cuda_lib_dirs)${LD_LIBRARY_PATH:-}"
  export LD_LIBRARY_PATH
  [ -z "${RWKV_FIXTURES_DIR:-}" ] && [ -f "$BUNDLE_DIR/fixtures/expected.json" ] &&
    export RWKV_FIXTURES_DIR=$BUNDLE_DIR/fixtures
else
  NVCC=$(command -v nvcc || true)
  [ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
  [ -z "$NVCC" ] && {
    log "no nvcc (PATH or /usr/local/cuda/bin) and no bundle at $GPU_BUNDLE"
    exit 1
  }
  CONFIGURE=(cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_EMB_CUDA=ON
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH")
  if ! stage "configure (sm_$CUDA_ARCH)" 60 "${CONFIGURE[@]}"; then
    log "configure failed: installing dependencies (needs apt and PyPI; without them, carry a"
    log "bundle made by scripts/gpu-bundle.sh on a build machine)"
    stage "setup.sh" 200 scripts/setup.sh
    stage "configure (sm_$CUDA_ARCH)" 60 "${CONFIGURE[@]}"
  fi
  stage "build" 300 cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${GPU_TEST_BINARIES[@]}" \
    rwkv-emb-server gpu_bench
  BIN=$ROOT/$BUILD_DIR
fi

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

# ---- GPU unit tests and benchmarks ---------------------------------------------
# Later stages run whatever an earlier one did: each is reported on its own.
for binary in "${GPU_TEST_BINARIES[@]}"; do
  stage "GPU tests ($binary)" 150 "$BIN/$binary" --gtest_filter='Cuda*:*/cuda*' --gtest_color=no ||
    true
done
for section in embeddings:90 rerank:60 gemm:40 graphs:30 wkv:45; do
  name=${section%%:*} seconds=${section##*:}
  stage "gpu_bench $name" $((seconds + 30)) "$BIN/gpu_bench" --only "$name" --budget "$seconds" ||
    true
done

# ---- HTTP tests with the server on the GPU ---------------------------------------
# float32: the suite compares with the reference at float32 tolerances. Test
# files whose Python packages this machine lacks are left out (and listed).
if [ "${SKIP_HTTP:-0}" != 1 ]; then
  HTTP_TESTS=()
  while read -r line; do
    case "$line" in
      "left out"*) log "$line" ;;
      *) HTTP_TESTS+=("$line") ;;
    esac
  done < <(python3 - <<'EOF'
import ast, importlib.util, pathlib
here = pathlib.Path("tests/integration")
for name in ["test_http_api.py", "test_http_lifecycle.py", "test_states.py"]:
    missing = set()
    for node in ast.walk(ast.parse((here / name).read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for n in names:
            top = n.split(".")[0]
            if not (here / f"{top}.py").exists() and importlib.util.find_spec(top) is None:
                missing.add(top)
    print(f"left out {name}: missing {', '.join(sorted(missing))}" if missing else here / name)
EOF
  )
  if [ "${#HTTP_TESTS[@]}" -gt 0 ]; then
    stage "HTTP tests (cuda, float32)" 150 env RWKV_EMB_DEVICE=cuda RWKV_EMB_DTYPE=float32 \
      RWKV_EMB_SERVER="$BIN/rwkv-emb-server" python3 -m pytest -q -x -p no:cacheprovider \
      "${HTTP_TESTS[@]}" || true
  else
    log "HTTP tests skipped: python3 lacks pytest/requests/numpy (scripts/setup.sh installs them)"
  fi
fi

# ---- Rerank over stored states on the GPU: cold, warm, uncached ------------------
# Last, in what time is left (at most 150 s): 12 servers, each generating the
# random 0.1B model first. The memory store always; Redis too when this
# machine has redis-server.
STATE_STORES=memory
command -v redis-server >/dev/null && STATE_STORES=redis,memory
stage "state rerank bench (cuda)" 150 python3 bench/state_rerank_bench.py "$BIN/rwkv-emb-server" \
  --device cuda --stores "$STATE_STORES" --requests 5 || true
