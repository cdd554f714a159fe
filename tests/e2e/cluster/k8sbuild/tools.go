//go:build tools

// Package k8sbuild is a scratch module: it exists only so that `go build` can resolve the
// Kubernetes v1.33.13 binaries from the Go module proxy (k8s.io/kubernetes itself cannot be
// `go install`ed because its go.mod replaces every staging module with ./staging/...).
// The build tag keeps it out of every normal build; tests/e2e/cluster/build.sh builds it.
package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
