#!/usr/bin/env bash
# The tests again under sanitizers (clang, CPU only; test.sh runs this after
# the main tests):
#   asan-unit  every unit test (each rwkv_<folder>_tests binary) with ASan + UBSan + LeakSanitizer
#   asan-http  the HTTP tests (tests/integration) against the ASan server
#   tsan       the scheduler tests (rwkv_scheduling_tests) with TSan
#   scripts/sanitize.sh [asan-unit] [asan-http] [tsan]     (default: all three)
# UBSan is built with -fno-sanitize-recover=all, so every report is fatal; a
# report in a server started by the HTTP tests fails that test (conftest.py's
# Server scans the server's output when it stops it).
# ASAN_BUILD_DIR (default build-asan), TSAN_BUILD_DIR (build-tsan), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
TSAN_BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
export ASAN_BUILD_DIR TSAN_BUILD_DIR
stages=("$@")
((${#stages[@]})) || stages=(asan-unit asan-http tsan)

export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

timings=()
timed() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  timings+=("$name: $((SECONDS - start)) s")
  echo "sanitizers: ${timings[-1]}"
}

# Runs a gtest binary as JOBS shards side by side; prints a shard's log when it fails.
run_sharded() {
  local binary=$1 logs=$2 pids=() failed=0
  mkdir -p "$logs"
  for ((i = 0; i < JOBS; i++)); do
    GTEST_TOTAL_SHARDS=$JOBS GTEST_SHARD_INDEX=$i "$binary" --gtest_brief=1 >"$logs/shard-$i.log" 2>&1 &
    pids+=($!)
  done
  for ((i = 0; i < JOBS; i++)); do
    if ! wait "${pids[$i]}"; then
      failed=1
      echo "---- $logs/shard-$i.log ----"
      cat "$logs/shard-$i.log"
    fi
  done
  grep -h "PASSED\|SKIPPED \] [0-9]" "$logs"/shard-*.log || true
  return "$failed"
}

# The unit-test binaries: one per tests/<folder>/, as CMakeLists.txt's
# rwkv_unit_test lines name them.
unit_test_binaries() { sed -n 's/^rwkv_unit_test(\([a-z_]*\) .*/rwkv_\1_tests/p' CMakeLists.txt; }

# Runs every unit-test binary of build folder $1 sharded, one log folder each;
# fails when one of them does, after running them all.
run_unit_tests() {
  local dir=$1 name failed=0
  for name in $(unit_test_binaries); do
    echo "sanitizers: $name"
    run_sharded "$dir/$name" "$dir/sanitize-logs/$name" || failed=1
  done
  return "$failed"
}

for stage in "${stages[@]}"; do
  case "$stage" in
    asan-unit)
      timed "asan build" scripts/sanitized-build.sh asan --target rwkv_unit_tests --target rwkv-emb-server
      timed "asan unit tests" run_unit_tests "$ASAN_BUILD_DIR"
      ;;
    asan-http)
      timed "asan build" scripts/sanitized-build.sh asan --target rwkv-emb-server
      timed "asan HTTP tests" env RWKV_EMB_SERVER="$PWD/$ASAN_BUILD_DIR/rwkv-emb-server" \
        RWKV_EMB_SANITIZER=address,undefined python3 -m pytest -q -p no:cacheprovider -rs \
        --durations=10 tests/integration
      ;;
    tsan)
      timed "tsan build" scripts/sanitized-build.sh tsan --target rwkv_scheduling_tests
      # OpenMP (libomp) and OpenBLAS are not built with TSan, which then cannot
      # see their barriers and may take the kernels' worker threads for racing:
      # one OpenMP thread (OpenBLAS follows OMP_NUM_THREADS) leaves the
      # scheduler's own threads (clients, engine loop) to check, and no
      # suppressions are needed.
      timed "tsan scheduler tests" env OMP_NUM_THREADS=1 "$TSAN_BUILD_DIR/rwkv_scheduling_tests" --gtest_brief=1
      ;;
    *) echo "unknown stage '$stage' (asan-unit, asan-http, tsan)" >&2; exit 2 ;;
  esac
done
echo "sanitizers: ${timings[*]/%/;}"
