#!/usr/bin/env bash
# Puts Swagger UI's swagger-ui-bundle.js and swagger-ui.css (and their license)
# in third_party/swagger-ui/, taken from the `swagger-ui-py` PyPI wheel, which
# ships swagger-ui-dist 5.24.2, and checked against the sha256 sums below.
# The build embeds both files into the binary for the /docs page.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=third_party/swagger-ui
SWAGGER_UI_PY_VERSION=25.7.1
SUMS="2c2e2bfe20fc7cb996862067de67c3d34157929792b77988abf3aabef4663028  $DIR/swagger-ui-bundle.js
4f76417253f37d7fe5aab8d69beaf3017570e2ab611289c504968b2078a07236  $DIR/swagger-ui.css
cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30  $DIR/LICENSE"

if echo "$SUMS" | sha256sum -c --quiet - >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet -d "$tmp" "swagger-ui-py==$SWAGGER_UI_PY_VERSION"
python3 - "$tmp" "$DIR" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/swagger_ui_py-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"):
        with open(f"{sys.argv[2]}/{name}", "wb") as out:
            out.write(z.read(f"swagger_ui/static/{name}"))
PY
if ! echo "$SUMS" | sha256sum -c --quiet -; then
  echo "fetch-swagger-ui: the files in $DIR do not have the expected sha256" >&2
  rm -f "$DIR"/swagger-ui-bundle.js "$DIR"/swagger-ui.css "$DIR"/LICENSE
  exit 1
fi
echo "fetch-swagger-ui: $DIR verified (Swagger UI 5.24.2)"
