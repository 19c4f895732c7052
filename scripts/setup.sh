#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian 12 machine,
# then fetches the World tokenizer vocabulary from the `rwkv` PyPI package.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libopenblas-openmp-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libcpp-httplib-dev libzip-dev libcli11-dev prometheus-cpp-dev
  libhiredis-dev redis-server libgtest-dev libgmock-dev
  python3 python3-pip python3-venv clang-format
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python packages for the build (OpenAPI conversion) and the integration tests.
python3 -m pip install --quiet --disable-pip-version-check -r tests/integration/requirements.txt

scripts/fetch-vocab.sh
