#!/usr/bin/env bash
# Runs every Go fuzz target of the module (each `func FuzzXxx` in a _test.go
# file) for FUZZTIME each, default 10s: `make fuzz`, and `make fuzz-short`
# (5s each) as part of `make test`. A failing input is written under the
# package's testdata/fuzz/FuzzXxx/, where it becomes a regression case that
# plain `go test` runs from then on.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
FUZZTIME="${FUZZTIME:-10s}"

# "DIR NAME" per target, found in the sources so new targets are picked up.
targets="$(grep -rlE --include='*_test.go' --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]*\(' . |
  while read -r file; do
    sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' "$file" | sed "s|^|$(dirname "$file") |"
  done | sort -u)"
if [[ -z "$targets" ]]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi

failed=()
while read -r dir name; do
  echo "fuzz: $name ($dir) for $FUZZTIME" >&2
  # -run '^$' skips the package's tests (and -fuzz runs only one target).
  if ! go test "$dir" -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME"; then
    failed+=("$name")
  fi
done <<<"$targets"

if (( ${#failed[@]} > 0 )); then
  echo "fuzz: FAILED: ${failed[*]} (failing inputs are under testdata/fuzz/)" >&2
  exit 1
fi
echo "fuzz: $(wc -l <<<"$targets") targets passed" >&2
