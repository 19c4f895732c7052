#!/usr/bin/env python3
"""Validates custom resources (KEDA, KServe) in YAML files against the schemas
in deploy/schemas (named <group>_<version>_<kind lowercased>.yaml); other
kinds are skipped (kubernetes-validate checks those). Exit status 1 with one
line per problem when any resource is invalid or has no schema although its
group has schemas.
    scripts/validate_crs.py FILE..."""
import pathlib
import sys

import jsonschema
import yaml

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "schemas"


def schema_for(api_version, kind):
    group, _, version = api_version.rpartition("/")
    path = SCHEMAS / f"{group}_{version}_{kind.lower()}.yaml"
    known_group = any(SCHEMAS.glob(f"{group}_*.yaml")) if group else False
    return (yaml.safe_load(path.read_text()) if path.exists() else None), known_group


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
