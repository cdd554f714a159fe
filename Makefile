# schemahook — build, test and run targets. `make help` lists them.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := build

VERSION  ?= $(shell git describe --tags --match 'v[0-9]*' --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/schemahook/schemahook/hook/version.Version=$(VERSION)
BIN      := bin/schemahook
IMAGE_ARCHIVE := bin/schemahook-image.tar
GOFLAGS_STATIC := CGO_ENABLED=0 GOFLAGS=-trimpath

.PHONY: help build demo test test-unit test-integration test-chart lint check-chart-versions chart-docs image e2e-local bench diagram clean

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## static schemahook binary in bin/
	$(GOFLAGS_STATIC) go build -ldflags '$(LDFLAGS)' -o $(BIN) ./hook/cmd/schemahook

demo: build ## throwaway local Postgres: update, status, check, then stop it
	./scripts/demo.sh $(BIN)

test: test-unit test-integration test-chart ## every test that needs no cluster (Postgres is started if needed)

test-unit: ## unit tests and fuzz seed corpora of the binary's packages
	go test -count=1 ./...

test-integration: build ## tests against a real Postgres (see tests/pgtest)
	@rm -f bin/pgtest-backends.log
	cd tests && SCHEMAHOOK_BIN=$(CURDIR)/$(BIN) SCHEMAHOOK_TEST_BACKEND_LOG=$(CURDIR)/bin/pgtest-backends.log \
	  go test -count=1 ./pgtest/... ./integration/... ./authoring/... ./reliability/...; \
	  status=$$?; cat $(CURDIR)/bin/pgtest-backends.log 2>/dev/null; exit $$status

test-chart: ## chart tests through both Helm SDKs (v3, v4); the PrometheusRule through promtool, the READMEs through helm-docs
	cd tests/promtool && GOFLAGS=-tags=remove_all_sd go tool promtool --version >/dev/null
	cd tests && go tool helm-docs --help >/dev/null
	cd tests && go test -count=1 ./chart/...

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l hook migrations tests)" || { gofmt -l hook migrations tests; exit 1; }
	go vet ./...
	cd tests && go vet ./...
	cd tests/bench && go vet ./...
	cd tests/argocd && go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	cd tests && go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	cd tests/argocd && go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	./scripts/check-chart-versions.sh

chart-docs: ## regenerate charts/*/README.md from README.md.gotmpl and values.yaml's `# --` comments (helm-docs)
	./scripts/chart-docs.sh

check-chart-versions: ## fail when a chart changed since its release tag (<chart>-<version>) without a version bump
	./scripts/check-chart-versions.sh

image: ## OCI image archive of the hook, built without Docker (bin/schemahook-image.tar)
	./scripts/image.sh $(IMAGE_ARCHIVE)

e2e-local: ## end-to-end tests on a local real-node Kubernetes (built and cached on first run), torn down after
	./tests/e2e/cluster/e2e-local.sh

bench: ## schemahook vs golang-migrate, goose and psql on a throwaway local PostgreSQL; rewrites docs/benchmarks.md
	cd tests/bench && go run . $(BENCH_ARGS)

diagram: build ## regenerate docs/schema.md (Mermaid ER diagram of the example schema) on a throwaway PostgreSQL
	./scripts/diagram.sh $(BIN)

clean: ## remove build outputs
	rm -rf bin
