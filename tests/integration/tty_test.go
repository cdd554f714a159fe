package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"

	"github.com/schemahook/schemahook/tests/clitest"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// onTerminal runs the binary with its standard streams on a pseudo-terminal and the default
// log format, and returns what the terminal showed and the exit code.
func onTerminal(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(clitest.Binary(), args...)
	cmd.Env = append(clitest.Env(), append([]string{"SCHEMAHOOK_LOG_FORMAT=auto", "TERM=xterm"}, env...)...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 400})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	// Reading the terminal's side ends with EIO once the process and its terminal are gone.
	if _, err := io.Copy(&out, tty); err != nil && !errors.Is(err, syscall.EIO) {
		t.Fatal(err)
	}
	code := 0
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatal(err)
		}
		code = exit.ExitCode()
	}
	// The terminal turns each line feed into CR LF.
	return strings.ReplaceAll(out.String(), "\r\n", "\n"), code
}

// On a terminal the logs are text for people: in colour unless NO_COLOR is set, a message of
// several lines printed as lines. Through a pipe they stay JSON lines.
func TestLogsOnATerminal(t *testing.T) {
	db := pgtest.New(t)
	if r := cli(t, db.URL, nil, "update"); r.Code != exitOK {
		t.Fatalf("update: exit %d\n%s", r.Code, r.Stderr)
	}
	// An applied file changed: update refuses with a report of several lines.
	files := exampleFiles(t)
	files["000004_projects_slug.up.sql"] = strings.Replace(files["000004_projects_slug.up.sql"], "slug", "slug ", 1)
	env := []string{"SCHEMAHOOK_DATABASE_URL=" + db.URL, "SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)}
	const driftLine = "\n      000004_projects_slug.up.sql: file changed after it was applied"

	out, code := onTerminal(t, append(env, "NO_COLOR="), "update")
	if code != exitDrift || !strings.Contains(out, "\x1b[") || !strings.Contains(out, driftLine) || strings.Contains(out, `\n`) {
		t.Errorf("on a terminal: exit %d, want %d, colour, and the drift report as lines without \\n escapes:\n%q", code, exitDrift, out)
	}
	if strings.Contains(out, `{"time"`) {
		t.Errorf("on a terminal the logs are JSON:\n%s", out)
	}

	out, code = onTerminal(t, append(env, "NO_COLOR=1"), "update")
	if code != exitDrift || strings.Contains(out, "\x1b") || !strings.Contains(out, driftLine) {
		t.Errorf("with NO_COLOR: exit %d, want %d, no escape sequences and the drift report as lines:\n%q", code, exitDrift, out)
	}

	r := cli(t, db.URL, []string{"SCHEMAHOOK_LOG_FORMAT=auto", "SCHEMAHOOK_MIGRATIONS=" + writeDir(t, files)}, "update")
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	// Every line but the last, the error as plain text, is JSON.
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "Error: ") || !strings.Contains(last, "file changed after it was applied") {
		t.Errorf("through a pipe, the last line is %q, want the error as plain text", last)
	}
	for _, l := range lines[:len(lines)-1] {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("through a pipe, a log line is not JSON: %q (%v)", l, err)
		}
	}
	if r.Code != exitDrift || !strings.Contains(r.Stderr, `file changed after it was applied`) {
		t.Errorf("through a pipe: exit %d, want %d\n%s", r.Code, exitDrift, r.Stderr)
	}
}
