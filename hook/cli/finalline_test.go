package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Whatever the log format, a failing command's last line on stderr is the error as plain
// text: what Helm shows last of a failed hook's log, on Helm 3 and Helm 4 alike. It carries no
// password and no JSON escaping.
func TestFailingCommandEndsWithPlainErrorLine(t *testing.T) {
	withoutSchemahookEnv(t)
	dir := t.TempDir()
	for name, body := range map[string]string{"000001_a.up.sql": "CREATE TABLE a (id int);\n", "000001_a.down.sql": "DROP TABLE a;\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing listens on port 1: the update fails to connect, after the logger is set up.
	url := "postgres://app:s3cr3t-pw@127.0.0.1:1/app?sslmode=disable&connect_timeout=2"
	for _, format := range []string{"auto", "json", "text"} {
		t.Run(format, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), []string{"update", "--database-url", url, "--migrations", dir, "--log-format", format, "--wait-for-db", "0"}, &stdout, &stderr)
			if code == ExitOK {
				t.Fatalf("exit 0, want a failure:\n%s", stderr.String())
			}
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "Error: ") || !strings.Contains(last, "127.0.0.1") || strings.ContainsAny(last, "{}\\") {
				t.Errorf("last line %q: want the error as plain text, naming the host, without JSON or escapes; stderr:\n%s", last, stderr.String())
			}
			if strings.Contains(stderr.String(), "s3cr3t-pw") {
				t.Errorf("the password is in the output:\n%s", stderr.String())
			}
			if len(lines) < 2 {
				t.Errorf("only the final line, want the log record before it:\n%s", stderr.String())
			}
		})
	}
	// A usage error ends with its one line too.
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"update", "--lock-timeout", "0s", "--migrations", dir}, &stdout, &stderr); code != ExitUsage {
		t.Fatalf("exit %d, want %d", code, ExitUsage)
	}
	if out := strings.TrimRight(stderr.String(), "\n"); strings.Contains(out, "\n") || !strings.HasPrefix(out, "Error: --lock-timeout 0s: must be positive") {
		t.Errorf("usage error output %q: want one line starting with the error", out)
	}
}

func TestFinalLineJoinsLines(t *testing.T) {
	got := finalLine("migration drift, refusing to migrate:\n  000002_b.up.sql: file changed\napplied migrations must not change")
	want := "Error: migration drift, refusing to migrate: 000002_b.up.sql: file changed; applied migrations must not change"
	if got != want {
		t.Errorf("finalLine = %q, want %q", got, want)
	}
}

// withoutSchemahookEnv unsets the caller's SCHEMAHOOK_* variables for the test (restored after):
// the commands read them and warn about unknown ones (such as the test suites'
// SCHEMAHOOK_TEST_DATABASE_URL), and these tests are about the output of the flags alone.
func withoutSchemahookEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SCHEMAHOOK_") {
			t.Setenv(k, "")
			if err := os.Unsetenv(k); err != nil {
				t.Fatal(err)
			}
		}
	}
}
