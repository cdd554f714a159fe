package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An unknown --strategy is a usage error and nothing else: the copy strategy must not run
// because the flag merely failed to parse (update and guard).
func TestUnknownStrategyRunsNothing(t *testing.T) {
	withoutSchemahookEnv(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "000001_a.up.sql"), []byte("CREATE TABLE a (id int);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1: any attempt to reach the database shows in the output.
	url := "postgres://app@127.0.0.1:1/app?sslmode=disable&connect_timeout=2"
	for _, command := range []string{"update", "guard"} {
		t.Run(command, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{command, "--database-url", url, "--migrations", dir, "--log-format", "text",
				"--wait-for-db", "0", "--strategy", "Copy", "--copy-database", "app__v1", "--copy-version", "1"}
			if code := Main(context.Background(), args, &stdout, &stderr); code != ExitUsage {
				t.Errorf("exit %d, want %d (usage); stderr:\n%s", code, ExitUsage, stderr.String())
			}
			out := stderr.String()
			if !strings.Contains(out, `--strategy "Copy"`) {
				t.Errorf("stderr does not name the bad --strategy:\n%s", out)
			}
			if strings.Contains(out, "127.0.0.1") || strings.Count(strings.TrimSpace(out), "\n") > 0 {
				t.Errorf("more than the usage error (the copy strategy ran?):\n%s", out)
			}
		})
	}
}

// --copy-keep 0 is refused: the engine reads a zero as its default, so it would keep 3.
func TestCopyKeepZeroRefused(t *testing.T) {
	withoutSchemahookEnv(t)
	dir := t.TempDir()
	for name, body := range map[string]string{"000001_a.up.sql": "CREATE TABLE a (id int);\n", "000001_a.down.sql": "DROP TABLE a;\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	args := []string{"update", "--database-url", "postgres://app@127.0.0.1:1/app?sslmode=disable", "--migrations", dir,
		"--log-format", "text", "--wait-for-db", "0", "--strategy", "copy", "--copy-database", "app__v1", "--copy-keep", "0"}
	if code := Main(context.Background(), args, &stdout, &stderr); code != ExitUsage || !strings.Contains(stderr.String(), "--copy-keep 0") {
		t.Errorf("exit %d, want %d naming --copy-keep; stderr:\n%s", code, ExitUsage, stderr.String())
	}
}
