#!/usr/bin/env bash
# Copies what controller-gen generates into the Helm chart, byte for byte, and
# stamps the chart with the release version. test/deploy fails when the chart's
# copies drift from config/, so run this after `make manifests`.
#
#   config/crd/bases/*.yaml        -> charts/spectrum-operator/crds/
#   config/rbac/role.yaml          -> charts/spectrum-operator/files/manager-role.yaml
#   config/webhook/manifests.yaml  -> charts/spectrum-operator/files/webhook-manifests.yaml
#   config/webhook/match_conditions_patch.yaml -> charts/spectrum-operator/files/webhook-match-conditions-patch.yaml
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
chart="$root/charts/spectrum-operator"
VERSION="${VERSION:?set VERSION (make chart-sync does)}"

# crds/ holds nothing but the generated CRDs: a CRD removed from the API
# disappears from the chart too.
rm -f "$chart"/crds/*.yaml
mkdir -p "$chart/crds" "$chart/files"
cp "$root"/config/crd/bases/*.yaml "$chart/crds/"
cp "$root/config/rbac/role.yaml" "$chart/files/manager-role.yaml"
cp "$root/config/webhook/manifests.yaml" "$chart/files/webhook-manifests.yaml"
cp "$root/config/webhook/match_conditions_patch.yaml" "$chart/files/webhook-match-conditions-patch.yaml"

sed -i -e "s/^version: .*/version: ${VERSION}/" -e "s/^appVersion: .*/appVersion: \"${VERSION}\"/" "$chart/Chart.yaml"
echo "chart-sync: $(ls "$chart/crds" | wc -l) CRD(s), manager role and webhook rules copied; chart version ${VERSION}" >&2
