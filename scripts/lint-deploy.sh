#!/usr/bin/env bash
# Lints what builds and deploys the server, offline (no Docker engine, no
# cluster): the scripts of CI and of the image (shellcheck), the Dockerfile
# (hadolint), the compose files (docker-compose config), and the Kubernetes
# manifests, base, GPU and KEDA variants, rendered by kustomize and checked
# against the Kubernetes API schemas (kubernetes-validate --strict), and the
# KEDA and KServe custom resources against their CRDs' schemas, vendored in
# deploy/schemas (validate_crs.py), which must refuse a planted bad field.
# CTest runs it (deploy_lint).
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=1.30  # the oldest Kubernetes the manifests are checked against

step() { echo "lint-deploy: $*"; }

step shellcheck
shellcheck .ci/run scripts/{setup,fetch-vocab,fetch-swagger-ui,build,run,test,lint-deploy}.sh docker/*.sh

step hadolint
hadolint docker/Dockerfile

step docker-compose config
docker-compose -f docker/compose.yaml config -q
docker-compose -f docker/compose.yaml -f docker/compose.gpu.yaml config -q

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
for variant in base gpu keda; do
  step "kustomize + kubernetes-validate deploy/k8s/$variant"
  kubectl kustomize "deploy/k8s/$variant" > "$rendered/$variant.yaml"
  kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$rendered/$variant.yaml" 2>&1 |
    { grep -v "Couldn't find schema for kind \(ScaledObject\|ServingRuntime\|InferenceService\)" || true; }
done
kubernetes-validate --strict --quiet -k "$K8S_VERSION" deploy/kserve/*.yaml 2>&1 |
  { grep -v "Couldn't find schema for kind \(ScaledObject\|ServingRuntime\|InferenceService\)" || true; }

step "validate_crs deploy/k8s/keda deploy/kserve"
scripts/validate_crs.py "$rendered/keda.yaml" deploy/kserve/*.yaml
# The check must have teeth: an HPA-style field name in the ScaledObject, a
# misspelt one in the InferenceService.
sed 's/minReplicaCount:/minReplicas:/' deploy/k8s/keda/scaledobject.yaml > "$rendered/bad-keda.yaml"
sed 's/modelFormat:/modelformat:/' deploy/kserve/inferenceservice.yaml > "$rendered/bad-kserve.yaml"
for bad in bad-keda bad-kserve; do
  if scripts/validate_crs.py "$rendered/$bad.yaml" > "$rendered/$bad.out"; then
    echo "lint-deploy: validate_crs accepted the planted bad field of $bad.yaml" >&2
    exit 1
  fi
  grep -q "Additional properties are not allowed" "$rendered/$bad.out"
done
step ok
