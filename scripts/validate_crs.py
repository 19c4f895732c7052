#!/usr/bin/env python3
"""Validates custom resources (KEDA, KServe) in YAML files against the
openAPIV3Schema of their CRDs, vendored in deploy/schemas (named
<group>_<version>_<kind lowercased>.json.gz; see its README); other kinds are
skipped (kubernetes-validate checks those). As the API server's structural
pruning would silently drop them, fields a schema does not declare are errors,
except under x-kubernetes-preserve-unknown-fields. Exit status 1 with one line
per problem when any resource is invalid or has no schema although its group
has schemas.
    scripts/validate_crs.py FILE..."""
import gzip
import json
import pathlib
import sys

import jsonschema
import yaml

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "schemas"
# The object metadata every resource may carry (the API server checks it, not the CRD's schema).
OBJECT_META = {"type": "object"}


def closed(node, preserve=False):
    """The OpenAPI schema `node` as a JSON Schema that refuses undeclared fields
    (additionalProperties: false on every object that declares properties or
    none, unless it preserves unknown fields) and accepts null where nullable."""
    if isinstance(node, list):
        return [closed(n, preserve) for n in node]
    if not isinstance(node, dict):
        return node
    preserve = preserve or node.get("x-kubernetes-preserve-unknown-fields") is True
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: closed(sub, preserve) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "allOf", "anyOf", "oneOf", "not"):
            out[key] = closed(value, preserve)
        else:
            out[key] = value
    if node.get("type") == "object" and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    if node.get("nullable") is True and "type" in node:
        out["type"] = [node["type"], "null"]
    return out


def schema_for(api_version, kind):
    group, _, version = api_version.rpartition("/")
    path = SCHEMAS / f"{group}_{version}_{kind.lower()}.json.gz"
    known_group = any(SCHEMAS.glob(f"{group}_*.json.gz")) if group else False
    if not path.exists():
        return None, known_group
    schema = closed(json.loads(gzip.decompress(path.read_bytes())))
    schema["properties"]["metadata"] = OBJECT_META
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return schema, known_group


def problems(path):
    for n, doc in enumerate(yaml.safe_load_all(pathlib.Path(path).read_text())):
        if not isinstance(doc, dict):
            continue
        where = f"{path}: document {n} ({doc.get('kind')} {doc.get('metadata', {}).get('name')})"
        schema, known_group = schema_for(str(doc.get("apiVersion", "")), str(doc.get("kind", "")))
        if schema is None:
            if known_group:
                yield f"{where}: no schema for {doc.get('apiVersion')} {doc.get('kind')}"
            continue
        for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
            field = ".".join(str(p) for p in error.absolute_path) or "(top)"
            yield f"{where}: {field}: {error.message}"


def main(paths):
    found = [p for path in paths for p in problems(path)]
    for p in found:
        print(p)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
