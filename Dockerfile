# syntax=docker/dockerfile:1
# The manager image: a static binary on distroless, running as non-root.
# Build with `make docker-build IMG=...`.

FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace

# Modules first, in their own layer, so a source change does not download
# them again; the cache mount keeps them across builds too.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

# Only what the manager is built from (see .dockerignore).
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/

# Static (no cgo) for distroless/static; -trimpath and -s -w for a
# reproducible, smaller binary.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o /out/manager ./cmd/manager

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /out/manager /manager
# Numeric, so the kubelet can enforce runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["/manager"]
