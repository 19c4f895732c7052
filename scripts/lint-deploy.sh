#!/usr/bin/env bash
# Lints what builds and deploys the server, offline (no Docker engine, no
# cluster): the scripts of CI and of the image (shellcheck), the Dockerfile
# (hadolint), the compose files (docker-compose config), and the Kubernetes
# manifests, base and GPU variant, rendered by kustomize and checked against
# the Kubernetes API schemas (kubernetes-validate --strict). CTest runs it
# (deploy_lint).
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=1.30  # the oldest Kubernetes the manifests are checked against

step() { echo "lint-deploy: $*"; }

step shellcheck
shellcheck .ci/run scripts/{setup,fetch-vocab,build,run,test,lint-deploy}.sh docker/*.sh

step hadolint
hadolint docker/Dockerfile

step docker-compose config
docker-compose -f docker/compose.yaml config -q
docker-compose -f docker/compose.yaml -f docker/compose.gpu.yaml config -q

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
for variant in base gpu; do
  step "kustomize + kubernetes-validate deploy/k8s/$variant"
  kubectl kustomize "deploy/k8s/$variant" > "$rendered/$variant.yaml"
  kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$rendered/$variant.yaml"
done
step ok
