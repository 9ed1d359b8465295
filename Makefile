# spectrum-operator Makefile: the front door, in kubebuilder's order.

# Image URL to use for building/pushing image targets.
IMG ?= ghcr.io/cloudflare-operator/spectrum-operator:$(VERSION)
VERSION ?= 0.1.0

# Tool versions, pinned here and nowhere else. controller-gen is a Go `tool`
# directive in go.mod (so `go tool controller-gen` is always that version).
ENVTEST_K8S_VERSION ?= 1.37.2
ENVTEST_ETCD_VERSION ?= 3.6.16
HELM_VERSION ?= v3.22.0

# Tools and the envtest binaries are cached outside the clone, keyed by
# version, so a fresh clone on a warm machine does not rebuild them.
CACHE_DIR ?= $(or $(SPECTRUM_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/spectrum-operator)
export SPECTRUM_CACHE_DIR := $(CACHE_DIR)

CONTROLLER_GEN ?= go tool controller-gen
KUBECTL ?= kubectl

# Setting SHELL to bash allows bash commands to be executed by recipes.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate CRDs, RBAC and webhook configuration from markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." \
		output:crd:artifacts:config=config/crd/bases \
		output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook

.PHONY: generate
generate: ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: verify
verify: ## Fail when generated files are stale or code is not gofmt-clean.
	bash hack/verify-generated.sh

.PHONY: envtest
envtest: ## Build (once, cached) kube-apiserver, etcd and kube-controller-manager for the tests.
	@bash hack/envtest-binaries.sh >/dev/null

.PHONY: test
test: verify vet envtest helm fuzz-short ## Run all tests against a real kube-apiserver and etcd.
	KUBEBUILDER_ASSETS="$$(bash hack/envtest-binaries.sh)" HELM="$$(HELM_VERSION=$(HELM_VERSION) bash hack/helm.sh)" go test ./... -count=1 -timeout 30m

# The chaos suite at scale (make chaos); `make test` runs it with 100 apps.
CHAOS_APPS ?= 1000
CHAOS_DURATION ?= 120s
CHAOS_RESTARTS ?= 8
FUZZTIME ?= 10s

.PHONY: chaos
chaos: envtest ## Run the reliability suite at scale: CHAOS_APPS apps under faults for CHAOS_DURATION, CHAOS_RESTARTS manager kills.
	KUBEBUILDER_ASSETS="$$(bash hack/envtest-binaries.sh)" CHAOS_APPS=$(CHAOS_APPS) CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_RESTARTS=$(CHAOS_RESTARTS) \
		CHAOS_HANDOFF_REQUEST_TIMEOUT=30s \
		go test ./test/chaos/ -count=1 -v -timeout 60m

# make bench takes about 3 minutes on 2 cores. Knobs (environment or make
# variables): BENCH_APPS, BENCH_RATE, BENCH_RESYNC, BENCH_SCALE_APPS, BENCH_ONLY
# and more; see docs/benchmarks.md.
.PHONY: bench
bench: envtest ## Benchmark the real manager, apiserver and simulator; table on stdout, JSON in bin/bench/results.json.
	KUBEBUILDER_ASSETS="$$(bash hack/envtest-binaries.sh)" go test -tags bench ./test/bench -run TestBench -v -timeout 60m -count=1

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 10s).
	FUZZTIME=$(FUZZTIME) bash hack/fuzz.sh

.PHONY: fuzz-short
fuzz-short: ## Run every fuzz target for 5s each (for make test).
	FUZZTIME=5s bash hack/fuzz.sh

##@ Build

.PHONY: build
build: ## Build the manager, kubectl-spectrum and simulator binaries into bin/.
	go build -o bin/manager ./cmd/manager
	go build -o bin/kubectl-spectrum ./cmd/kubectl-spectrum
	@if [ -d cmd/spectrum-simulator ]; then go build -o bin/spectrum-simulator ./cmd/spectrum-simulator; fi

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig (webhook off; pass flags with ARGS=...).
	go run ./cmd/manager --enable-webhooks=false $(ARGS)

.PHONY: dev-up
dev-up: ## Start a local kube-apiserver + etcd, the simulator and the manager (bin/dev/kubeconfig).
	@bash hack/dev.sh up

.PHONY: dev-down
dev-down: ## Stop what dev-up started.
	@bash hack/dev.sh down

.PHONY: demo
demo: ## Show the operator at work on the local control plane and the simulator.
	@bash hack/demo.sh

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests ## Install CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Uninstall CRDs. Call with ignore-not-found=true to ignore missing resources.
	$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator to the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Undeploy the operator. Call with ignore-not-found=true to ignore missing resources.
	$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k config/default

##@ Helm and image

CONTAINER_TOOL ?= docker
CHART_DIR ?= charts/spectrum-operator

.PHONY: helm
helm: ## Build (once, cached) the helm binary; prints nothing.
	@HELM_VERSION=$(HELM_VERSION) bash hack/helm.sh >/dev/null

.PHONY: chart-sync
chart-sync: manifests ## Copy the generated CRD, RBAC and webhook rules into the chart and set its version to VERSION.
	VERSION=$(VERSION) bash hack/chart-sync.sh

.PHONY: helm-lint
helm-lint: helm ## Lint the chart (strict).
	"$$(HELM_VERSION=$(HELM_VERSION) bash hack/helm.sh)" lint --strict $(CHART_DIR)

.PHONY: docker-build
docker-build: ## Build the manager image IMG.
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the manager image IMG.
	$(CONTAINER_TOOL) push $(IMG)
