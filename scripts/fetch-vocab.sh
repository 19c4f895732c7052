#!/usr/bin/env bash
# Puts the RWKV World vocabulary at third_party/vocab/rwkv_vocab_v20230424.txt,
# taken from the `rwkv` PyPI wheel and checked against the sha256 in docs/model.md.
# The build embeds this file into the binary.
set -euo pipefail
cd "$(dirname "$0")/.."

VOCAB=third_party/vocab/rwkv_vocab_v20230424.txt
SHA256=e6dee3d4e31b4d5c40ac99508ac6c701ceef4bed681bf2167ce9a908552bca89
RWKV_VERSION=0.8.32

if [ -f "$VOCAB" ] && echo "$SHA256  $VOCAB" | sha256sum -c --quiet - 2>/dev/null; then
  exit 0
fi
mkdir -p "$(dirname "$VOCAB")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet -d "$tmp" "rwkv==$RWKV_VERSION"
python3 - "$tmp" "$VOCAB" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/rwkv-*.whl")[0]
# The wheel ships the file with CRLF line ends; the sha256 of docs/model.md is of the LF
# form, which is also what Python's text-mode reader (the reference) sees.
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("rwkv/rwkv_vocab_v20230424.txt").replace(b"\r\n", b"\n"))
PY
if ! echo "$SHA256  $VOCAB" | sha256sum -c --quiet -; then
  echo "fetch-vocab: sha256 of $VOCAB does not match docs/model.md ($SHA256)" >&2
  rm -f "$VOCAB"
  exit 1
fi
echo "fetch-vocab: $VOCAB verified"
