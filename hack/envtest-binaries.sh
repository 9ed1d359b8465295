#!/usr/bin/env bash
# Provides real kube-apiserver and etcd binaries for controller-runtime's envtest,
# and kube-controller-manager for the tests that need the namespace and
# garbage-collector controllers (envtest itself ignores it).
#
# setup-envtest downloads prebuilt binaries from a bucket this machine cannot
# reach, so we build them from source through the Go module proxy instead. The
# result is cached outside the clone, keyed by version, so only the first run
# on a machine pays for the build (kube-apiserver: ~9 min and ~2.5 GiB on 2 cores;
# kube-controller-manager, built in the same module and sharing the apiserver's
# libraries, ~8 more minutes for its own controllers; a cache that already has
# kube-apiserver and etcd builds only kube-controller-manager).
#
# Prints the directory holding the binaries (suitable for KUBEBUILDER_ASSETS)
# on stdout; progress goes to stderr.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
CACHE_ROOT="${SPECTRUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spectrum-operator}"
ASSETS="$CACHE_ROOT/envtest/k8s-${KUBE_VERSION}-etcd-${ETCD_VERSION}"

log() { echo "envtest: $*" >&2; }

have() { [[ -x "$ASSETS/kube-apiserver" && -x "$ASSETS/kube-controller-manager" && -x "$ASSETS/etcd" ]]; }

if have; then echo "$ASSETS"; exit 0; fi

mkdir -p "$ASSETS"
# Two make targets may ask at once; the second waits for the first build.
exec 9>"$ASSETS/.lock"
flock 9
if have; then echo "$ASSETS"; exit 0; fi

work="$(mktemp -d "$CACHE_ROOT/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off

# replace_local_paths rewrites every "module => ./relative/path" replace of a
# published go.mod into "module => module@version": the staging or sibling
# modules were published to the proxy under that version.
replace_local_paths() {
  local gomod="$1" version="$2"
  awk '/=>[ \t]*\.\.?\// && !/FORBIDDEN/ { for (i = 1; i <= NF; i++) if ($(i) == "=>") print $(i-1) }' "$gomod" |
    sort -u | while read -r mod; do
      go mod edit -replace "${mod}=${mod}@${version}"
    done
}

build_etcd() {
  [[ -x "$ASSETS/etcd" ]] && return
  log "building etcd v${ETCD_VERSION} from source (first run only, about a minute)"
  local dir="$work/etcd"; mkdir -p "$dir"; cd "$dir"
  go mod init envtest.local/etcd >/dev/null 2>&1
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod edit -require "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}"
  local upstream
  upstream="$(go mod download -json "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  replace_local_paths "$upstream" "v${ETCD_VERSION}"
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$ASSETS/etcd.tmp" . >&2
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

# kube_module prepares, once per run, the throwaway module both Kubernetes
# binaries are built in: one k8s.io/kubernetes version, one dependency graph,
# so the second binary reuses the first one's compiled packages.
kube_dir=""
kube_ldflags=""
kube_module() {
  [[ -n "$kube_dir" ]] && return
  kube_dir="$work/kube"; mkdir -p "$kube_dir"; cd "$kube_dir"
  go mod init envtest.local/kube >/dev/null 2>&1
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  go mod edit -require "k8s.io/kubernetes@v${KUBE_VERSION}"
  local upstream minor
  upstream="$(go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  minor="$(echo "$KUBE_VERSION" | cut -d. -f2)"
  replace_local_paths "$upstream" "v0.${KUBE_VERSION#1.}"
  go mod tidy >&2
  # Without the stamp the binary reports v0.0.0-master, which Helm's
  # kubeVersion checks and kubectl's version-skew warnings reject.
  local pkg=k8s.io/component-base/version
  kube_ldflags="-s -w -X ${pkg}.gitVersion=v${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
  kube_ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v${KUBE_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
}

# build_kube BINARY ESTIMATE builds k8s.io/kubernetes/cmd/BINARY unless it is cached;
# it is moved into place whole, so an interrupted build never looks cached.
build_kube() {
  local bin="$1" estimate="$2"
  [[ -x "$ASSETS/$bin" ]] && return
  log "building $bin v${KUBE_VERSION} from source (first run only, ${estimate} on 2 cores with a cold Go build cache)"
  kube_module
  cd "$kube_dir"
  local t0=$SECONDS
  go build -trimpath -ldflags "$kube_ldflags" -o "$ASSETS/$bin.tmp" "k8s.io/kubernetes/cmd/$bin" >&2
  mv "$ASSETS/$bin.tmp" "$ASSETS/$bin"
  log "$bin built in $(( SECONDS - t0 ))s"
}

start=$(date +%s)
build_etcd
build_kube kube-apiserver "~9 minutes"
# Shares ~2,070 of its ~2,440 packages with kube-apiserver; its own controllers are the rest.
build_kube kube-controller-manager "~8 more minutes"
log "binaries ready in $ASSETS ($(( $(date +%s) - start ))s)"
echo "$ASSETS"
