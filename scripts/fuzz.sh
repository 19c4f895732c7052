#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with ASan + UBSan and runs each
# for a bounded time; fails on any crash, leak, timeout, out-of-memory or
# sanitizer report, and names the input that caused it.
#   scripts/fuzz.sh [target...]          (default: every tests/fuzz/fuzz_*.cpp)
# FUZZ_SECONDS per target (default 60), FUZZ_JOBS targets at a time (default: JOBS or
# the cores), ASAN_BUILD_DIR (default build-asan). Seeds: tests/fuzz/corpus/<target>
# (read-only) plus, for fuzz_pickle, the data.pkl of each ../shared/fixtures/*.pth
# when present. New inputs go to $ASAN_BUILD_DIR/fuzz-corpus/<target>, crash
# inputs to $ASAN_BUILD_DIR/fuzz-artifacts/, logs to $ASAN_BUILD_DIR/fuzz-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-${JOBS:-$(nproc)}}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
export ASAN_BUILD_DIR
FIXTURES=${RWKV_FIXTURES_DIR:-../shared/fixtures}

if (($#)); then
  targets=("$@")
else
  targets=()
  for src in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi
scripts/sanitized-build.sh asan --target rwkv_fuzzers

out=$ASAN_BUILD_DIR
mkdir -p "$out/fuzz-artifacts" "$out/fuzz-logs"
# Leaks fail the run; UBSan stops at the first report (-fno-sanitize-recover).
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Real torch pickles for fuzz_pickle, taken from the fixture checkpoints.
fixture_seeds=$out/fuzz-fixture-seeds/pickle
rm -rf "$fixture_seeds" && mkdir -p "$fixture_seeds"
if compgen -G "$FIXTURES/*.pth" >/dev/null; then
  python3 - "$fixture_seeds" "$FIXTURES"/*.pth <<'PY'
import pathlib, sys, zipfile
for path in map(pathlib.Path, sys.argv[2:]):
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        (pathlib.Path(sys.argv[1]) / f"{path.stem}.pkl").write_bytes(z.read(name))
PY
fi

# Runs one target; its log ends with libFuzzer's final stats.
fuzz_one() {
  local target=$1 name=${1#fuzz_}
  local corpus=$out/fuzz-corpus/$name seeds=tests/fuzz/corpus/$name
  mkdir -p "$corpus"
  local extra=()
  [ "$name" = pickle ] && extra+=("$fixture_seeds")
  # -timeout: one input running over 10 s is a hang; -rss_limit_mb: over 2 GB is a failure.
  "$out/fuzz/$target" "$corpus" "$seeds" "${extra[@]}" \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/fuzz-artifacts/$target-" >"$out/fuzz-logs/$target.log" 2>&1
}

declare -A status
pending=("${targets[@]}")
running=()
start=$SECONDS
while ((${#pending[@]} || ${#running[@]})); do
  while ((${#pending[@]})) && ((${#running[@]} < FUZZ_JOBS)); do
    fuzz_one "${pending[0]}" &
    running+=("$!:${pending[0]}")
    pending=("${pending[@]:1}")
  done
  wait -n || true
  still=()
  for job in "${running[@]}"; do
    pid=${job%%:*} target=${job#*:}
    if kill -0 "$pid" 2>/dev/null; then
      still+=("$job")
    else
      wait "$pid" && status[$target]=ok || status[$target]=FAILED
    fi
  done
  running=("${still[@]}")
done

failed=0
printf '%-24s %8s %12s %9s %s\n' target seconds executions corpus result
for target in "${targets[@]}"; do
  log=$out/fuzz-logs/$target.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  units=$(find "$out/fuzz-corpus/${target#fuzz_}" -type f | wc -l)
  printf '%-24s %8s %12s %9s %s\n' "$target" "${secs:--}" "${execs:--}" "$units" "${status[$target]}"
  if [ "${status[$target]}" != ok ]; then
    failed=1
    echo "---- $log (last 60 lines) ----"
    tail -n 60 "$log"
    grep -h "Test unit written to" "$log" | sed 's/^/input kept: /' || true
  fi
done
echo "fuzzing: ${#targets[@]} targets, ${FUZZ_SECONDS} s each, $((SECONDS - start)) s in all"
exit "$failed"
