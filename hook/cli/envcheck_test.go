package cli

import (
	"io"
	"strings"
	"testing"
)

func TestUnknownEnv(t *testing.T) {
	a := &app{stdout: io.Discard, stderr: io.Discard}
	root := a.rootCommand()
	got := unknownEnv(root, []string{
		"SCHEMAHOOK_LOCKTIMEOUT=500ms",         // typo of an update flag
		"SCHEMAHOOK_MIGRATION=/m",              // typo of a persistent flag
		"SCHEMAHOOK_FROBNICATE=1",              // nothing like it
		"SCHEMAHOOK_LOCK_TIMEOUT=500ms",        // known, on another command than the one running
		"SCHEMAHOOK_DATABASE_URL=postgres://x", // known
		"SCHEMAHOOK_CACHE_DIR=/tmp/c",          // read by lint, not a flag
		"SCHEMAHOOK_SERVICE_HOST=10.0.0.1",     // Kubernetes service links
		"SCHEMAHOOK_EXPORTER_PORT_9090_TCP_ADDR=10.0.0.2",
		"SCHEMAHOOK_PORT=tcp://10.0.0.1:80",
		"PGHOST=db", "HOME=/root",
	})
	want := []string{
		"environment variable SCHEMAHOOK_FROBNICATE is not a setting of schemahook and is ignored: each flag --some-flag is SCHEMAHOOK_SOME_FLAG",
		"environment variable SCHEMAHOOK_LOCKTIMEOUT is not a setting of schemahook and is ignored: did you mean SCHEMAHOOK_LOCK_TIMEOUT?",
		"environment variable SCHEMAHOOK_MIGRATION is not a setting of schemahook and is ignored: did you mean SCHEMAHOOK_MIGRATIONS?",
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %q, want %q", got[i], want[i])
		}
	}
}
