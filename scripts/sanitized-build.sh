#!/usr/bin/env bash
# Configures and builds a clang sanitizer build (CPU only) of the given targets:
#   scripts/sanitized-build.sh asan --target rwkv_unit_tests ...   ASan + UBSan in $ASAN_BUILD_DIR
#                                                   (default build-asan), with libFuzzer coverage
#                                                   so the fuzz targets share it
#   scripts/sanitized-build.sh tsan --target rwkv_scheduling_tests ...   TSan in $TSAN_BUILD_DIR
#                                                   (build-tsan)
# -O1 with line tables: reports get file:line, and the build stays quick.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/sanitized-build.sh asan|tsan --target T...}
shift
case "$kind" in
  asan) dir=${ASAN_BUILD_DIR:-build-asan}; flags=("-DRWKV_EMB_SANITIZE=address,undefined" -DRWKV_EMB_FUZZ=ON) ;;
  tsan) dir=${TSAN_BUILD_DIR:-build-tsan}; flags=(-DRWKV_EMB_SANITIZE=thread) ;;
  *) echo "unknown sanitizer build '$kind' (asan or tsan)" >&2; exit 2 ;;
esac
targets=()
while [ "${1:-}" = --target ]; do
  targets+=(--target "$2")
  shift 2
done
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
BUILD_DIR=$dir scripts/build.sh "${targets[@]}" \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DRWKV_EMB_CUDA=OFF -DRWKV_EMB_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
  "${launcher[@]}" "${flags[@]}" "$@"
