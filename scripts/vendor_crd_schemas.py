#!/usr/bin/env python3
"""Writes deploy/schemas/<group>_<version>_<kind lowercased>.json.gz: the
openAPIV3Schema of each version of the KEDA and KServe CRDs that
scripts/validate_crs.py checks our custom resources against, taken from the
upstream release tags below (the full CRDs are up to 2 MB of YAML; their
schemas alone, as compact JSON with sorted keys, gzip-compressed without a
timestamp, are reproducible byte for byte).

    scripts/vendor_crd_schemas.py KEDA_GIT_DIR KSERVE_GIT_DIR

Each directory is a clone (bare or not) of the upstream repository holding
the tag. Update the tags here and deploy/schemas/README.md together."""
import gzip
import json
import pathlib
import subprocess
import sys

import yaml

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "schemas"
# (repository, release tag, CRD files); the order of the command's arguments.
UPSTREAM = [
    ("kedacore/keda", "v2.20.2", ["config/crd/bases/keda.sh_scaledobjects.yaml"]),
    ("kserve/kserve", "v0.20.0", ["config/crd/full/serving.kserve.io_servingruntimes.yaml",
                                  "config/crd/full/serving.kserve.io_inferenceservices.yaml"]),
]


def git(git_dir, *args):
    return subprocess.run(["git", "-C", git_dir, *args], check=True, capture_output=True, text=True).stdout


def main(git_dirs):
    if len(git_dirs) != len(UPSTREAM):
        sys.exit(__doc__)
    SCHEMAS.mkdir(exist_ok=True)
    for git_dir, (repo, tag, paths) in zip(git_dirs, UPSTREAM):
        commit = git(git_dir, "rev-parse", f"{tag}^{{commit}}").strip()
        print(f"{repo} {tag} ({commit})")
        for path in paths:
            crd = yaml.safe_load(git(git_dir, "show", f"{commit}:{path}"))
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                out = SCHEMAS / f"{group}_{version['name']}_{kind.lower()}.json.gz"
                text = json.dumps(version["schema"]["openAPIV3Schema"], sort_keys=True, separators=(",", ":"))
                out.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
                print(f"  {path} {version['name']} -> {out.relative_to(SCHEMAS.parent.parent)} "
                      f"({len(text):,} bytes of JSON, {out.stat().st_size:,} compressed)")


if __name__ == "__main__":
    main(sys.argv[1:])
