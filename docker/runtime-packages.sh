#!/usr/bin/env bash
# Prints the Debian/Ubuntu packages that hold the shared libraries BINARY
# loads, one a line, for the runtime stage of an image to install. CUDA's own
# libraries (under /usr/local/cuda) come with the CUDA runtime image.
#   docker/runtime-packages.sh BINARY
set -euo pipefail

# The package owning a library; a link (alternatives, merged /usr) may be
# known to dpkg under its target or under the other half of /usr.
owner() {
  local path
  for path in "$(readlink -f "$1")" "$1" "/usr$1" "${1#/usr}"; do
    dpkg -S "$path" 2>/dev/null && return
  done
  echo "runtime-packages: no package holds $1" >&2
  return 1
}

ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | grep -v '^/usr/local/cuda' |
  while read -r lib; do owner "$lib" || exit 1; done | cut -d: -f1 | sort -u
