# syntax=docker/dockerfile:1
# The schemahook hook image: one static binary on distroless/static, running as nonroot 65532.
# scripts/image.sh builds the equivalent image without Docker (same entrypoint, user and files);
# the GitHub workflow loads this one into kind.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t schemahook:dev .

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first: this layer stays cached until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X github.com/schemahook/schemahook/hook/version.Version=${VERSION}" \
      -o /out/schemahook ./hook/cmd/schemahook

FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="schemahook" \
      org.opencontainers.image.description="Initializes or upgrades a PostgreSQL schema from a Helm hook Job" \
      org.opencontainers.image.source="https://github.com/schemahook/schemahook" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/schemahook /schemahook
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/schemahook"]
