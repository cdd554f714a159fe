# syntax=docker/dockerfile:1
# The schemahook hook image: one static binary on distroless/static, running as nonroot 65532.
# scripts/image.sh builds the equivalent image without Docker (same entrypoint, user and files);
# the GitHub workflow loads this one into kind.
#
#   docker build --build-arg VERSION=$(git describe --tags --match 'v[0-9]*' --always --dirty) -t schemahook:dev .
#   docker build --target example -t schemahook-example:dev .   # with the example schema
#
# The image carries no migrations. The `example` target is a derived image, the way a user ships
# migrations without an application image: the example schema in /migrations, and
# SCHEMAHOOK_MIGRATIONS pointing there. CI's chart tests run it.

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

FROM gcr.io/distroless/static:nonroot AS release
ARG VERSION=dev
LABEL org.opencontainers.image.title="schemahook" \
      org.opencontainers.image.description="Initializes or upgrades a PostgreSQL schema from a Helm hook Job" \
      org.opencontainers.image.source="https://github.com/schemahook/schemahook" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/schemahook /schemahook
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/schemahook"]

FROM release AS example
COPY migrations/*.sql /migrations/
ENV SCHEMAHOOK_MIGRATIONS=/migrations

# The default target: the image without migrations.
FROM release
