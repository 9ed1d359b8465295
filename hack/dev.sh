#!/usr/bin/env bash
# Local development environment: a kube-apiserver + etcd (envtest binaries),
# the Spectrum API simulator, and the manager running out of cluster with its
# webhook registered. Everything listens on 127.0.0.1 only.
#
#   hack/dev.sh up      start (or confirm running) and print `export KUBECONFIG=...`
#   hack/dev.sh down    stop exactly what `up` started (by PID file)
#   hack/dev.sh status  say what is running
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

DEV_DIR="${DEV_DIR:-bin/dev}"
SIM_CONFIG="${SIM_CONFIG:-config/simulator/demo.yaml}"
SIM_ADDR="${SIM_ADDR:-127.0.0.1:18787}"
WEBHOOK_PORT="${WEBHOOK_PORT:-19443}"
PROBE_ADDR="${PROBE_ADDR:-127.0.0.1:18081}"
METRICS_ADDR="${METRICS_ADDR:-127.0.0.1:18080}"
# As in a cluster: HTTPS, each scrape's token checked with a TokenReview and
# a SubjectAccessReview. false serves plain HTTP without authentication.
METRICS_SECURE="${METRICS_SECURE:-true}"
RESYNC_PERIOD="${RESYNC_PERIOD:-30s}"
# How often each zone's traffic is read (the manager's default is a minute).
TRAFFIC_INTERVAL="${TRAFFIC_INTERVAL:-5s}"
DEMO_TOKEN="${DEMO_TOKEN:-demo-enterprise-token}"

# Started in this order, stopped in the reverse one.
components=(devcluster simulator manager)

say() { printf '%s\n' "$*" >&2; }
pidfile() { echo "$DEV_DIR/$1.pid"; }
running() { local f; f="$(pidfile "$1")"; [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; }
kubeconfig() { echo "$root/$DEV_DIR/kubeconfig"; }

# wait_for DESCRIPTION COMPONENT SECONDS COMMAND...: polls COMMAND, showing
# progress, and fails early with the log when COMPONENT's process died.
wait_for() {
  local what="$1" component="$2" seconds="$3"; shift 3
  local start=$SECONDS
  printf '  waiting for %s ' "$what" >&2
  until "$@" >/dev/null 2>&1; do
    if ! running "$component"; then
      say "FAILED: $component exited; last lines of $DEV_DIR/$component.log:"
      tail -20 "$DEV_DIR/$component.log" >&2 || true
      return 1
    fi
    if (( SECONDS - start > seconds )); then
      say "TIMED OUT after ${seconds}s; see $DEV_DIR/$component.log"
      return 1
    fi
    printf '.' >&2
    sleep 1
  done
  say " ready ($(( SECONDS - start ))s)"
}

start() {
  local name="$1"; shift
  nohup "$@" >"$DEV_DIR/$name.log" 2>&1 &
  echo $! >"$(pidfile "$name")"
}

up() {
  local all=1 any=0
  for c in "${components[@]}"; do
    if running "$c"; then any=1; else all=0; fi
  done
  if (( all )); then
    say "dev environment already running."
    echo "export KUBECONFIG=$(kubeconfig)"
    return 0
  fi
  if (( any )); then
    say "a partial dev environment is running; stopping it first."
    down
  fi

  mkdir -p "$DEV_DIR"
  rm -f "$DEV_DIR/devcluster.json"
  say "building the manager, kubectl-spectrum, the simulator and the local control plane ..."
  go build -o bin/manager ./cmd/manager
  go build -o bin/kubectl-spectrum ./cmd/kubectl-spectrum
  go build -o bin/spectrum-simulator ./cmd/spectrum-simulator
  go build -o bin/devcluster ./hack/devcluster
  local assets
  assets="$(bash hack/envtest-binaries.sh)"

  say "starting kube-apiserver and etcd ..."
  KUBEBUILDER_ASSETS="$assets" start devcluster bin/devcluster --dir "$DEV_DIR" --webhook-port "$WEBHOOK_PORT"
  say "starting the Spectrum API simulator on http://$SIM_ADDR ($SIM_CONFIG) ..."
  start simulator bin/spectrum-simulator --config "$SIM_CONFIG" --listen "$SIM_ADDR"
  wait_for "the control plane" devcluster 120 test -f "$DEV_DIR/devcluster.json"
  wait_for "the simulator" simulator 30 curl -sf "http://$SIM_ADDR/_simulator/state"

  # The samples use this Secret; its token is one of the simulator's.
  kubectl --kubeconfig "$(kubeconfig)" create secret generic cloudflare-credentials \
    --from-literal=apiToken="$DEMO_TOKEN" --dry-run=client -o yaml |
    kubectl label --local -f - spectrum.cloudflare-operator.io/credentials=true -o yaml |
    kubectl --kubeconfig "$(kubeconfig)" apply -f - >/dev/null

  install_identity
  say "starting the manager ..."
  start manager bin/manager \
    --kubeconfig "$root/$DEV_DIR/manager.kubeconfig" \
    --cloudflare-api-url "http://$SIM_ADDR/client/v4" \
    --cloudflare-requests-per-second 20 \
    --resync-period "$RESYNC_PERIOD" \
    --traffic-interval "$TRAFFIC_INTERVAL" --traffic-metrics-per-app \
    --webhook-host 127.0.0.1 --webhook-port "$WEBHOOK_PORT" --webhook-cert-dir "$DEV_DIR/webhook-certs" \
    --health-probe-bind-address "$PROBE_ADDR" \
    --metrics-bind-address "$METRICS_ADDR" --metrics-secure="$METRICS_SECURE"
  wait_for "the manager" manager 60 curl -sf "http://$PROBE_ADDR/readyz"

  say ""
  say "dev environment ready: kube-apiserver + etcd, simulator at http://$SIM_ADDR, manager (logs in $DEV_DIR/*.log)."
  echo "export KUBECONFIG=$(kubeconfig)"
}

# install_identity gives the manager the identity an installation gives it:
# config/default's ServiceAccount, ClusterRole, Roles and bindings (config/rbac
# with config/default's namespace and name prefix), and a kubeconfig holding a
# token of that ServiceAccount, never the admin's.
install_identity() {
  local ns=spectrum-operator-system sa=spectrum-operator-controller-manager admin token
  admin="$(kubeconfig)"
  mkdir -p "$DEV_DIR/rbac"
  printf 'namespace: %s\nnamePrefix: spectrum-operator-\nresources:\n- %s/config/rbac\n' "$ns" "$(realpath --relative-to="$DEV_DIR/rbac" "$root")" >"$DEV_DIR/rbac/kustomization.yaml"
  kubectl --kubeconfig "$admin" create namespace "$ns" --dry-run=client -o yaml | kubectl --kubeconfig "$admin" apply -f - >/dev/null
  kubectl --kubeconfig "$admin" apply --server-side -k "$DEV_DIR/rbac" >/dev/null
  token="$(kubectl --kubeconfig "$admin" create token "$sa" --namespace "$ns" --duration 24h)"
  cp "$admin" "$DEV_DIR/manager.kubeconfig"
  kubectl --kubeconfig "$DEV_DIR/manager.kubeconfig" config set-credentials "$sa" --token="$token" >/dev/null
  kubectl --kubeconfig "$DEV_DIR/manager.kubeconfig" config set-context --current --user="$sa" >/dev/null
  say "  the manager runs as system:serviceaccount:$ns:$sa with config/default's RBAC (token valid 24h)"
}

down() {
  local i c pid
  for (( i=${#components[@]}-1; i>=0; i-- )); do
    c="${components[$i]}"
    if running "$c"; then
      pid="$(cat "$(pidfile "$c")")"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      if kill -0 "$pid" 2>/dev/null; then
        say "$c (pid $pid) did not stop in 15s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      say "stopped $c (pid $pid)"
    fi
    rm -f "$(pidfile "$c")"
  done
  rm -f "$DEV_DIR/devcluster.json"
}

status() {
  for c in "${components[@]}"; do
    if running "$c"; then say "$c: running (pid $(cat "$(pidfile "$c")"))"; else say "$c: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) say "usage: $0 up|down|status"; exit 2 ;;
esac
