// Package deps pins the test module's heavy dependencies until real code imports them.
package deps

import (
	_ "github.com/jackc/pgx/v5"
	_ "github.com/testcontainers/testcontainers-go/modules/postgres"
	_ "helm.sh/helm/v3/pkg/action"
	_ "helm.sh/helm/v3/pkg/chart/loader"
	_ "helm.sh/helm/v3/pkg/chartutil"
	_ "helm.sh/helm/v3/pkg/releaseutil"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/pod-security-admission/policy"
	_ "sigs.k8s.io/yaml"
)
