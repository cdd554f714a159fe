package argocd

import (
	"io"
	"log"
	"os"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

func TestMain(m *testing.M) {
	// Quiet what the libraries print on their own: Helm's chart loader notes the symlinked
	// migrations on every render, client-go the API server's deprecation warnings for the kinds
	// the cluster cache watches (Argo CD's controller silences them too), and klog the cache's
	// watches ending with each test. gitops-engine's own log goes to the test log (engineLogger).
	log.SetOutput(io.Discard)
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	os.Exit(m.Run())
}
