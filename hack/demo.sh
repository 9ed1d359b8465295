#!/usr/bin/env bash
# make demo: the operator at work on a local control plane and the Spectrum
# API simulator, with no cluster and no Cloudflare account.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[36m$ %s\033[0m\n' "$*"; "$@"; }

bold "1/8 Starting the local control plane, the Spectrum API simulator and the operator"
eval "$(bash hack/dev.sh up)"

bold "2/8 Applying the samples (config/samples) and waiting until Cloudflare has them"
run kubectl apply -k config/samples
run kubectl wait --for=condition=Ready spectrumapps -l app.kubernetes.io/name=spectrum-operator --timeout=90s
run kubectl get spectrumapps

bold "3/8 Traffic: each app's connections, and an app whose origins fail"
# The simulator gives every app a connection a second from its creation.
# Cloudflare's analytics come in whole minutes, so the demo gives each app
# the same traffic for the last ten minutes (a past it does not have to wait
# for), and ssh's origin refuses nine connections in ten of them. The
# operator reads each zone's Spectrum analytics, one request per zone, on
# spare slots of the token's budget (every 5 s here; every minute by
# default).
zone=023e105f4ecef8ad9ca31a8372d0c353
ten_minutes_ago="$(date -u -d '-10 min' +%Y-%m-%dT%H:%M:%SZ)"
printf '\033[36m$ curl -X PUT http://127.0.0.1:18787/_simulator/apps/<zone>/<app>/traffic -d {"connectionsPerMinute":60,...,"from":"<ten minutes ago>"}\033[0m\n'
for id in $(kubectl get spectrumapps -o jsonpath='{.items[*].status.applicationID}'); do
  curl -sf -X PUT "http://127.0.0.1:18787/_simulator/apps/$zone/$id/traffic" \
    -d "{\"connectionsPerMinute\":60,\"bytesIngressPerConnection\":2048,\"bytesEgressPerConnection\":8192,\"durationMilliseconds\":1500,\"from\":\"$ten_minutes_ago\"}" >/dev/null
done
ssh_id="$(kubectl get spectrumapp ssh -o jsonpath='{.status.applicationID}')"
printf '\033[36m$ curl -X PUT http://127.0.0.1:18787/_simulator/apps/<zone>/%s/origin-errors -d {"share":0.9,...}\033[0m\n' "$ssh_id"
curl -sf -X PUT "http://127.0.0.1:18787/_simulator/apps/$zone/$ssh_id/origin-errors" \
  -d "{\"share\":0.9,\"from\":\"$ten_minutes_ago\"}" >/dev/null
run kubectl wait --for=condition=OriginsHealthy=False spectrumapp/ssh --timeout=60s
# shellcheck disable=SC2046 # one argument per app
run kubectl wait --for=condition=OriginsHealthy=True $(kubectl get spectrumapps -o name | grep -vx 'spectrumapp.spectrum.cloudflare-operator.io/ssh') --timeout=60s
run kubectl get spectrumapps -o wide
run kubectl get events --field-selector reason=OriginErrors
printf '\033[36m$ kubectl get spectrumapp ssh -o jsonpath=...OriginsHealthy...\033[0m\n'
kubectl get spectrumapp ssh -o jsonpath='{range .status.conditions[?(@.type=="OriginsHealthy")]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'
# Heal it for the rest of the demo.
curl -sf -X PUT "http://127.0.0.1:18787/_simulator/apps/$zone/$ssh_id/origin-errors" \
  -d "{\"share\":0,\"from\":\"$ten_minutes_ago\"}" >/dev/null

bold "4/8 An app only a person can fix: Argo Smart Routing on an account without it"
# A second demo run starts this step afresh.
kubectl delete spectrumapp ssh-argo --ignore-not-found --wait=true >/dev/null
curl -sf -X POST http://127.0.0.1:18787/_simulator/entitlements \
  -d '{"account":"9a7806061c88ada191ed06f989cc3dac","entitlement":"argo","enabled":false}' >/dev/null
argo='apiVersion: spectrum.cloudflare-operator.io/v1alpha1
kind: SpectrumApp
metadata:
  name: ssh-argo
spec:
  zoneID: 023e105f4ecef8ad9ca31a8372d0c353
  credentialsRef: {name: cloudflare-credentials}
  protocol: tcp/2222
  dns: {type: CNAME, name: ssh-argo.example.com}
  originDirect: ["tcp://192.0.2.10:22"]
  argoSmartRouting: true'
printf '%s\n' "$argo"
printf '\033[36m$ kubectl apply -f ssh-argo.yaml\033[0m\n'
printf '%s\n' "$argo" | kubectl apply -f -
run kubectl wait --for=condition=Stalled spectrumapp/ssh-argo --timeout=60s
run kubectl describe spectrumapp ssh-argo

bold "5/8 A mistake the webhook rejects before anything reaches Cloudflare"
bad='apiVersion: spectrum.cloudflare-operator.io/v1alpha1
kind: SpectrumApp
metadata:
  name: broken
spec:
  zoneID: 023e105f4ecef8ad9ca31a8372d0c353
  credentialsRef: {name: cloudflare-credentials}
  protocol: tcp/5432
  dns: {type: ADDRESS, name: db.example.com}
  originDirect: ["tcp://2001:db8::5:5432", "tcp://192.0.2.7:5432"]
  virtualNetworkID: my-network'
printf '%s\n' "$bad"
printf '\033[36m$ kubectl apply -f broken.yaml\033[0m\n'
if printf '%s\n' "$bad" | kubectl apply -f - ; then
  echo "demo: the webhook accepted an invalid app" >&2
  exit 1
fi

bold "6/8 Exporting the apps a zone already has, ready for kubectl apply"
# legacy-ssh.example.com was made outside Kubernetes, years ago (the
# simulator serves it in the old response shapes). Export only reads.
printf '\033[36m$ CLOUDFLARE_API_TOKEN=... kubectl spectrum export --zone 023e105f4ecef8ad9ca31a8372d0c353 --reconcile-policy observe\033[0m\n'
exported="$(CLOUDFLARE_API_TOKEN=demo-enterprise-token bin/kubectl-spectrum export \
  --zone 023e105f4ecef8ad9ca31a8372d0c353 --reconcile-policy observe \
  --api-url http://127.0.0.1:18787/client/v4)"
printf '%s\n' "$exported" | awk '
  /^---$/ { if (keep) printf "%s", doc; doc = ""; keep = 0; n++; next }
  { doc = doc $0 "\n" }
  /^  name: legacy-ssh/ { keep = 1 }
  END { if (keep) printf "%s", doc; printf "# ... %d documents in all, one per application of the zone; pipe them to kubectl apply -f -\n", n + 1 }'

bold "7/8 What Prometheus sees: the metrics, scraped with a ServiceAccount token over HTTPS"
# As the chart's metrics-reader ClusterRole lets Prometheus: get on /metrics.
# The manager checks the token with a TokenReview and a SubjectAccessReview.
{
  kubectl create namespace monitoring --dry-run=client -o yaml
  echo ---
  kubectl -n monitoring create serviceaccount prometheus --dry-run=client -o yaml
  echo ---
  kubectl create clusterrole spectrum-operator-metrics-reader --verb=get --non-resource-url=/metrics --dry-run=client -o yaml
  echo ---
  kubectl create clusterrolebinding spectrum-operator-metrics-reader --clusterrole=spectrum-operator-metrics-reader \
    --serviceaccount=monitoring:prometheus --dry-run=client -o yaml
} | kubectl apply -f - >/dev/null
printf '\033[36m$ TOKEN=$(kubectl -n monitoring create token prometheus)\033[0m\n'
TOKEN="$(kubectl -n monitoring create token prometheus --duration=10m)"
metrics_url="https://${METRICS_ADDR:-127.0.0.1:18080}/metrics"
printf '\033[36m$ curl -sk -H "Authorization: Bearer $TOKEN" %s | grep ...\033[0m\n' "$metrics_url"
# -k: the manager's serving certificate is self-signed, as in a pod without
# cert-manager (Prometheus skips verification the same way).
scraped="$(curl -sfk -H "Authorization: Bearer $TOKEN" "$metrics_url")"
printf '%s\n' "$scraped" | grep -E '^(spectrum_apps(_by_policy|_stalled|_origins)?|spectrum_app_traffic_connections|spectrum_cloudflare_(responses_total|rate_limited_total|rate_limit_pause_seconds_total|ratelimit_remaining_ratio)|spectrum_drift_corrections_total|spectrum_app_ready_duration_seconds_(count|sum)|spectrum_cloudflare_request_duration_seconds_count)[{ ]'
echo "# every metric, its labels and example queries: docs/metrics.md"

bold "8/8 Keep playing"
cat <<EOF
The operator, the simulator and the control plane keep running:

  export KUBECONFIG=$KUBECONFIG
  kubectl get spectrumapps                  # short name: sapp
  kubectl explain spectrumapp.spec          # every field, documented
  curl -s http://127.0.0.1:18787/_simulator/state   # the simulated Cloudflare (docs/simulator.md)
  tail -f bin/dev/manager.log
  curl -sk -H "Authorization: Bearer \$(kubectl -n monitoring create token prometheus)" https://${METRICS_ADDR:-127.0.0.1:18080}/metrics

Grant Argo to the simulated account, then ask for a retry, and ssh-argo becomes Ready:

  curl -s -X POST http://127.0.0.1:18787/_simulator/entitlements \\
    -d '{"account":"9a7806061c88ada191ed06f989cc3dac","entitlement":"argo","enabled":true}'
  kubectl annotate spectrumapp ssh-argo spectrum.cloudflare-operator.io/reconcile-requested-at="\$(date +%s)" --overwrite
  kubectl wait --for=condition=Ready spectrumapp/ssh-argo

Stop everything with:  make dev-down
EOF
