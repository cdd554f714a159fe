//go:build tools

// Package etcdbuild is a scratch module for building etcd v3.5.21 from the Go module proxy:
// go.etcd.io/etcd/server/v3 cannot be `go install`ed (its go.mod has replace directives), so
// this module pins every etcd module to the release instead. The import keeps `go mod tidy`
// from dropping the requirement; tests/e2e/cluster/build.sh builds the package.
package etcdbuild

import _ "go.etcd.io/etcd/server/v3"
