// The redaction tests are an external package so that they can run the whole command line,
// whose error and log rendering is what a user reads.
package dbconn_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/schemahook/schemahook/hook/cli"
	"github.com/schemahook/schemahook/hook/dbconn"
)

const mask = "xxxxx"

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"postgres://app:s3cret@db:5432/app?sslmode=disable":   "postgres://app:xxxxx@db:5432/app?sslmode=disable",
		"postgresql://app@db/app?password=s3cret":             "postgresql://app@db/app?password=xxxxx",
		"host=db user=app password=s3cret dbname=app":         "host=db user=app password=xxxxx dbname=app",
		"host=db password='s3 cr\\'et' dbname=app":            "host=db password=xxxxx dbname=app",
		"failed: postgres://u:p%40ss@h/d: connection refused": "failed: postgres://u:xxxxx@h/d: connection refused",
		"postgres://app@db/app":                               "postgres://app@db/app",
	}
	for in, want := range cases {
		if got := dbconn.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRedact: whatever the input, when pgconn finds a password in it, the redacted string must
// not yield that password back when parsed the same way.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"postgres://app:s3cret@db:5432/app", "host=db password=s3cret", "password='a b'",
		"postgres://u:p@h/d?password=q", "postgresql://:pw@/db?host=/tmp", "password = spaced user=x",
		"postgres://u:p@ss@h/d", "PASSWORD=UPPER host=h",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		t.Setenv("PGPASSWORD", "")
		t.Setenv("PGPASSFILE", "/nonexistent")
		cfg, err := pgconn.ParseConfig(s)
		if err != nil || len(cfg.Password) < 3 || cfg.Password == mask {
			return
		}
		red := dbconn.Redact(s)
		if cfg2, err := pgconn.ParseConfig(red); err == nil && cfg2.Password == cfg.Password {
			t.Fatalf("Redact(%q) = %q still parses to password %q", s, red, cfg.Password)
		}
	})
}

// passwordForm is one way of giving the password, pointed at a closed port of 127.0.0.1: the
// connection string, and what the environment and files must say.
type passwordForm struct {
	name  string
	build func(t *testing.T, dir, addr, password string) (connString string, env map[string]string, ok bool)
}

var passwordForms = []passwordForm{
	{"raw URL", func(_ *testing.T, _, addr, pw string) (string, map[string]string, bool) {
		return "postgres://app:" + pw + "@" + addr + "/app", nil, true
	}},
	{"percent-encoded URL", func(_ *testing.T, _, addr, pw string) (string, map[string]string, bool) {
		return "postgres://" + url.UserPassword("app", pw).String() + "@" + addr + "/app", nil, true
	}},
	{"URL query", func(_ *testing.T, _, addr, pw string) (string, map[string]string, bool) {
		return "postgresql://app@" + addr + "/app?sslmode=disable&password=" + url.QueryEscape(pw), nil, true
	}},
	{"key=value", func(_ *testing.T, _, addr, pw string) (string, map[string]string, bool) {
		host, port, _ := net.SplitHostPort(addr)
		quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)
		return fmt.Sprintf("host=%s port=%s user=app dbname=app password='%s'", host, port, quoted), nil, true
	}},
	{"PGPASSWORD", func(_ *testing.T, _, addr, pw string) (string, map[string]string, bool) {
		host, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf("host=%s port=%s user=app dbname=app", host, port), map[string]string{"PGPASSWORD": pw}, true
	}},
	{"pgpass file", func(t *testing.T, dir, addr, pw string) (string, map[string]string, bool) {
		if strings.ContainsAny(pw, "\r\n") {
			return "", nil, false // a line-based file cannot hold it
		}
		file := filepath.Join(dir, "pgpass")
		line := "*:*:*:app:" + strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(pw) + "\n"
		if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf("host=%s port=%s user=app dbname=app", host, port), map[string]string{"PGPASSFILE": file}, true
	}},
	{"service file", func(t *testing.T, dir, addr, pw string) (string, map[string]string, bool) {
		if strings.ContainsAny(pw, "\r\n") || strings.TrimSpace(pw) != pw {
			return "", nil, false
		}
		host, port, _ := net.SplitHostPort(addr)
		file := filepath.Join(dir, "pg_service.conf")
		body := fmt.Sprintf("[app]\nhost=%s\nport=%s\nuser=app\ndbname=app\npassword=%s\n", host, port, pw)
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return "service=app", map[string]string{"PGSERVICEFILE": file}, true
	}},
}

// closedAddr is a local address nothing listens on: connecting fails at once.
var closedAddr = sync.OnceValue(func() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
})

// placeholder is password with its letters and digits replaced by others of the same kind (hex
// digits stay hex digits), and every other byte kept: the connection string has the same
// structure, so the output takes the same path and differs only where the password shows.
func placeholder(password string) string {
	b := []byte(password)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'f':
			b[i] = 'b'
		case c >= 'A' && c <= 'F':
			b[i] = 'B'
		case c >= 'a' && c <= 'z':
			b[i] = 'q'
		case c >= 'A' && c <= 'Z':
			b[i] = 'Q'
		case c >= '0' && c <= '9':
			b[i] = '1'
		}
	}
	return string(b)
}

// volatile matches what differs between two runs of the same command: timestamps, durations
// and attempt counts.
var volatile = regexp.MustCompile(`"time":"[^"]*"|\b[0-9.]+(ns|µs|ms|s|m)\b|\d+ attempts`)

// render runs the commands that print connection details against a password given in form,
// and returns everything they printed and the exit code of each.
func render(t *testing.T, form passwordForm, password string) (string, []int, bool) {
	t.Helper()
	dir := t.TempDir()
	connString, env, ok := form.build(t, dir, closedAddr(), password)
	if !ok {
		return "", nil, false
	}
	for _, k := range []string{"PGPASSWORD", "PGSERVICE", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE", "PGOPTIONS", "PGAPPNAME"} {
		t.Setenv(k, "")
	}
	t.Setenv("PGPASSFILE", filepath.Join(dir, "no-pgpass"))
	t.Setenv("PGSERVICEFILE", filepath.Join(dir, "no-service-file"))
	t.Setenv("PGSYSCONFDIR", dir)
	t.Setenv("DATABASE_URL", "")
	t.Setenv("SCHEMAHOOK_DATABASE_URL", connString)
	t.Setenv("SCHEMAHOOK_LOG_FORMAT", "json")
	// The binary carries no migrations: give the commands one, so that they get as far as the
	// connection.
	migs := filepath.Join(dir, "migrations")
	if err := os.MkdirAll(migs, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, sql := range map[string]string{"000001_a.up.sql": "CREATE TABLE a (id int);\n", "000001_a.down.sql": "DROP TABLE a;\n"} {
		if err := os.WriteFile(filepath.Join(migs, name), []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("SCHEMAHOOK_MIGRATIONS", migs)
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out strings.Builder
	var codes []int
	for _, args := range [][]string{{"status", "-o", "json", "--wait-for-db", "0"}, {"check"}, {"update", "--wait-for-db", "100ms"}} {
		var stdout, stderr strings.Builder
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		codes = append(codes, cli.Main(ctx, args, &stdout, &stderr))
		cancel()
		out.WriteString(stdout.String() + stderr.String())
		// The port is closed: an answer takes milliseconds, and a wait means the password moved
		// the connection somewhere else.
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("%s: schemahook %v with password %q took %s:\n%s%s", form.name, args, password, took, stdout.String(), stderr.String())
		}
	}
	return volatile.ReplaceAllString(out.String(), "…"), codes, true
}

// FuzzPasswordNeverShown: whatever a password holds and however it is given (a URL raw or
// percent-encoded, a URL query, key=value, PGPASSWORD, a pgpass or service file), no 3
// consecutive bytes of it appear in what status, check and update print — logs, errors and
// JSON — when the server cannot be reached. The comparison is with the same commands run on a
// placeholder of the same shape: a 3-gram of the password that is also fixed text ("app",
// "127") appears as often in both. A raw URL that the password's '@' or '/' makes ambiguous is
// refused at once (exit 2) and says how to encode it.
func FuzzPasswordNeverShown(f *testing.F) {
	for _, pw := range []string{"p@ss:w/rd?x#y%z", "a@b-secret", "S3cr@t:/p%41ss?w=1&password=x #'", "plain-Secret-12345",
		"with space'quote\\back", "app127.0.0.1:5432", "us%zzer", "semi;colon,comma=eq"} {
		for form := range passwordForms {
			f.Add(pw, uint8(form))
		}
	}
	f.Fuzz(func(t *testing.T, password string, form uint8) {
		if len(password) < 3 || len(password) > 80 || strings.IndexByte(password, 0) >= 0 {
			return
		}
		pf := passwordForms[int(form)%len(passwordForms)]
		got, codes, ok := render(t, pf, password)
		if !ok {
			return
		}
		ref, _, _ := render(t, pf, placeholder(password))
		for i := 0; i+3 <= len(password); i++ {
			if g := password[i : i+3]; strings.Count(got, g) > strings.Count(ref, g) {
				t.Fatalf("%s: %q of password %q is shown:\n%s\n--- with a placeholder password:\n%s", pf.name, g, password, got, ref)
			}
		}
		if pf.name == "raw URL" && strings.ContainsAny(password, "@/") {
			for _, code := range codes {
				if code != cli.ExitUsage {
					t.Fatalf("raw URL with password %q: exit codes %v, want %d (usage) at once:\n%s", password, codes, cli.ExitUsage, got)
				}
			}
			if !strings.Contains(got, "%40") || !strings.Contains(got, "PGPASSWORD") {
				t.Fatalf("the refusal does not say how to encode the password or where else to put it:\n%s", got)
			}
		}
	})
}
