#!/usr/bin/env bash
# Fails when a generated file (CRDs, RBAC, webhook configuration, deepcopy) is
# stale, or when Go code is not gofmt-clean. It regenerates into a scratch copy
# of the tree, so it never touches the working tree.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))"
if [[ -n "$unformatted" ]]; then
  echo "gofmt would change these files (run 'make fmt'):" >&2
  echo "$unformatted" >&2
  exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/tree"
tar -C "$root" --exclude=./bin --exclude=./.git -cf - . | tar -C "$scratch/tree" -xf -
(cd "$scratch/tree" && make --no-print-directory -s manifests generate >/dev/null)

stale=0
for path in api config/crd config/rbac config/webhook; do
  [[ -e "$root/$path" || -e "$scratch/tree/$path" ]] || continue
  if ! diff -r -q "$root/$path" "$scratch/tree/$path" >/dev/null; then
    echo "generated files under $path are stale; run 'make manifests generate' and commit:" >&2
    diff -r -u "$root/$path" "$scratch/tree/$path" | head -40 >&2 || true
    stale=1
  fi
done
exit "$stale"
