#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on a GPU machine that cannot build
# the project (no package registry there, so no OpenBLAS, libzip, httplib...):
# builds the GPU test, server and benchmark binaries here for one CUDA
# architecture and packs them with the shared libraries they load that such a
# machine may lack (glibc, libstdc++ and the CUDA toolkit's own libraries are
# left to the machine), plus the test fixtures, into one compressed archive.
#
#   scripts/gpu-bundle.sh            -> build-gpu-bundle/gpu-bundle.tar.xz
# Environment: BUILD_DIR (build-gpu-bundle), CUDA_ARCH (90: H100/H200),
# RWKV_FIXTURES_DIR (../shared/fixtures). Needs what scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build-gpu-bundle}
CUDA_ARCH=${CUDA_ARCH:-90}
FIXTURES=${RWKV_FIXTURES_DIR:-../shared/fixtures}
# rwkv_model_tests: the unit tests with CUDA ones (tests/model/), as gpu-check.sh runs them.
BINARIES=(rwkv_model_tests rwkv-emb-server gpu_bench)

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_EMB_WERROR=ON \
  -DRWKV_EMB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH"
cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${BINARIES[@]}"

STAGE="$BUILD_DIR/gpu-bundle"
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/lib"
for b in "${BINARIES[@]}"; do cp "$BUILD_DIR/$b" "$STAGE/bin/"; done
# The libraries the binaries load, but CUDA's and those every Linux with a
# Python has (the C and C++ runtimes, OpenSSL, zlib, bzip2): the machine's own
# are used, so Python's modules and our binaries agree on them.
ldd "$STAGE"/bin/* | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | ld-linux* | \
      libstdc++.so.* | libgcc_s.so.* | libssl.so.* | libcrypto.so.* | libz.so.* | libbz2.so.* | \
      libcuda.so.* | libcudart.so.* | libcublas*.so.*) ;;
    *) cp -L "$lib" "$STAGE/lib/" ;;
  esac
done
if [ -f "$FIXTURES/expected.json" ]; then
  cp -r "$FIXTURES" "$STAGE/fixtures"
else
  echo "warning: no fixtures at $FIXTURES: the GPU fixture tests will skip" >&2
fi
git rev-parse --short HEAD >"$STAGE/commit" 2>/dev/null || echo unknown >"$STAGE/commit"
tar -C "$BUILD_DIR" -cJf "$BUILD_DIR/gpu-bundle.tar.xz" gpu-bundle
ls -l "$BUILD_DIR/gpu-bundle.tar.xz"
echo "carry $BUILD_DIR/gpu-bundle.tar.xz to the GPU machine and run scripts/gpu-check.sh there"
