#!/usr/bin/env bash
# Provides a helm binary for the chart tests and the helm make targets.
#
# Release tarballs come from get.helm.sh, which this machine cannot reach, so
# helm is built from source through the Go module proxy instead. The binary is
# cached outside the clone, keyed by version (the same cache root as
# envtest-binaries.sh), so only the first run on a machine pays for the build
# (about 2 minutes on 2 cores).
#
# Prints the path of the helm binary on stdout; progress goes to stderr.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${SPECTRUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spectrum-operator}"
DIR="$CACHE_ROOT/helm/${HELM_VERSION}"
HELM="$DIR/helm"

if [[ -x "$HELM" ]]; then echo "$HELM"; exit 0; fi

mkdir -p "$DIR"
# make test and make helm may ask at once; the second waits for the first build.
exec 9>"$DIR/.lock"
flock 9
if [[ -x "$HELM" ]]; then echo "$HELM"; exit 0; fi

echo "helm: building helm ${HELM_VERSION} from source (first run only, about 2 minutes)" >&2
start=$(date +%s)
# Install into a scratch GOBIN and move the result into place, so an
# interrupted build never leaves a half-written binary that looks cached.
tmp="$(mktemp -d "$DIR/build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# GOFLAGS/GOWORK are cleared so the clone's go.mod, vendor settings or a
# go.work never influence helm's own dependency versions (and it runs
# outside the clone).
export CGO_ENABLED=0 GOFLAGS= GOWORK=off
cd "$tmp"
# The ldflags helm's own Makefile sets for a release. Without the Kubernetes
# version stamp, `helm template` and `helm lint` assume Kubernetes 1.20 and
# reject charts that require anything newer.
gomod="$(go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")" # v0.MINOR.PATCH
k8s_minor="$(echo "$client_go" | cut -d. -f2)"
[[ -n "$k8s_minor" ]] || { echo "helm: cannot find helm's client-go version in $gomod" >&2; exit 1; }
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${k8s_minor}"
done
GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
mv "$tmp/helm" "$HELM"
echo "helm: ready in $(( $(date +%s) - start ))s" >&2
echo "$HELM"
