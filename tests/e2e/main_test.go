// Package e2e runs the charts and the hook image on a real Kubernetes cluster against a real
// PostgreSQL server: Helm installs, upgrades, fails, rolls back and tests releases of
// charts/example-app (with charts/schemahook as its dependency) through the Helm v3 SDK, and
// every step is checked both in the database and in the cluster. Argo CD syncs are tests/argocd's,
// with Argo CD's own sync engine.
//
// The cluster and the database come from the environment that tests/e2e/cluster/e2e-local.sh
// exports: KUBECONFIG, SCHEMAHOOK_E2E_IMAGE and SCHEMAHOOK_E2E_PG_*. Without them the tests skip
// with a message saying so, except under CI, where they fail: CI must never pass without a
// cluster. Each test gets its own namespace, enforcing Pod Security "restricted", and its own
// database, and removes both when it ends.
package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"
)

func TestMain(m *testing.M) {
	// Every API client of the process (Helm's, client-go's, the dynamic one) reports the API
	// server's warnings here; with the namespaces' `warn: restricted` label, a Pod Security
	// violation in any pod template shows up as one, even where enforcement would only surface
	// later as a FailedCreate event.
	rest.SetDefaultWarningHandler(&apiWarnings)
	os.Exit(m.Run())
}

// The settings the suite needs, and what provides them.
const harnessHint = "tests/e2e/cluster/e2e-local.sh sets them up (a local real-node cluster and PostgreSQL)"

type settings struct {
	kubeconfig string
	image      string // repository:tag of the hook image, present on the node
	pgHost     string // what pods use to reach PostgreSQL
	pgPort     string
	pgUser     string // the application's role: owns each test database
	pgPassword string
	adminURL   string // superuser URL for the test process (setup and assertions)
	pgSSLMode  string // the chart's database.sslMode: require (the local harness serves TLS) unless set
}

// env reads the settings, skipping the test when the cluster is not configured; under CI
// a missing setting fails the test instead.
func env(t *testing.T) settings {
	t.Helper()
	s := settings{
		kubeconfig: os.Getenv("KUBECONFIG"),
		image:      os.Getenv("SCHEMAHOOK_E2E_IMAGE"),
		pgHost:     os.Getenv("SCHEMAHOOK_E2E_PG_HOST"),
		pgPort:     os.Getenv("SCHEMAHOOK_E2E_PG_PORT"),
		pgUser:     os.Getenv("SCHEMAHOOK_E2E_PG_USER"),
		adminURL:   os.Getenv("SCHEMAHOOK_E2E_PG_ADMIN_URL"),
		pgSSLMode:  os.Getenv("SCHEMAHOOK_E2E_PG_SSLMODE"),
	}
	if s.pgSSLMode == "" {
		s.pgSSLMode = "require"
	}
	required := map[string]string{
		"KUBECONFIG":                      s.kubeconfig,
		"SCHEMAHOOK_E2E_IMAGE":            s.image,
		"SCHEMAHOOK_E2E_PG_HOST":          s.pgHost,
		"SCHEMAHOOK_E2E_PG_PORT":          s.pgPort,
		"SCHEMAHOOK_E2E_PG_USER":          s.pgUser,
		"SCHEMAHOOK_E2E_PG_PASSWORD_FILE": os.Getenv("SCHEMAHOOK_E2E_PG_PASSWORD_FILE"),
		"SCHEMAHOOK_E2E_PG_ADMIN_URL":     s.adminURL,
	}
	var missing []string
	for _, name := range []string{"KUBECONFIG", "SCHEMAHOOK_E2E_IMAGE", "SCHEMAHOOK_E2E_PG_HOST", "SCHEMAHOOK_E2E_PG_PORT",
		"SCHEMAHOOK_E2E_PG_USER", "SCHEMAHOOK_E2E_PG_PASSWORD_FILE", "SCHEMAHOOK_E2E_PG_ADMIN_URL"} {
		if required[name] == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("needs a Kubernetes cluster and PostgreSQL: %s not set; %s", strings.Join(missing, ", "), harnessHint)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	pw, err := os.ReadFile(os.Getenv("SCHEMAHOOK_E2E_PG_PASSWORD_FILE"))
	if err != nil {
		t.Fatalf("reading the application's database password: %v", err)
	}
	s.pgPassword = strings.TrimRight(string(pw), "\r\n")
	return s
}

// warningRecorder collects the API server's warnings (client-go's default handler would only
// log them through klog).
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

var apiWarnings warningRecorder

func (w *warningRecorder) HandleWarningHeader(code int, _ string, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// take returns the warnings seen since the last call and forgets them.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}
