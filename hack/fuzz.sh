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

# fuzz_once runs one target; its output is also kept in $log.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
fuzz_once() {
  # -run '^$' skips the package's tests (and -fuzz runs only one target).
  go test "$1" -run '^$' -fuzz "^${2}\$" -fuzztime "$FUZZTIME" 2>&1 | tee "$log"
}

# deadline_flake tells the Go 1.26 fuzz coordinator's own race at the end
# of -fuzztime (go.dev/issue/75804, fixed in Go 1.27): a bare "context
# deadline exceeded" with no failing input written and no panic. Anything
# else is a finding.
deadline_flake() {
  grep -q 'context deadline exceeded' "$1" && ! grep -qE 'Failing input written|panic:' "$1"
}

failed=()
while read -r dir name; do
  echo "fuzz: $name ($dir) for $FUZZTIME" >&2
  if fuzz_once "$dir" "$name"; then
    continue
  fi
  if deadline_flake "$log"; then
    echo "fuzz: $name stopped on the fuzz engine's deadline race (go.dev/issue/75804), no input found; running it again" >&2
    fuzz_once "$dir" "$name" && continue
  fi
  failed+=("$name")
done <<<"$targets"

if (( ${#failed[@]} > 0 )); then
  echo "fuzz: FAILED: ${failed[*]} (failing inputs are under testdata/fuzz/)" >&2
  exit 1
fi
echo "fuzz: $(wc -l <<<"$targets") targets passed" >&2
