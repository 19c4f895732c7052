"""Converts api/openapi.yaml to the JSON the server embeds and serves."""
import json
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    spec = yaml.safe_load(f)
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(spec, f, separators=(",", ":"))
