package reliability

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPasswordNeverShown: the database password appears in no output of any command — logs,
// errors, `status -o json` — and not in the process's arguments, which every user of the node
// can read from /proc. (Every other test in this package checks the output of each run it makes
// too; this one adds a password made of the characters that break naive redaction.)
func TestPasswordNeverShown(t *testing.T) {
	db := newDB(t)
	// URL delimiters, a quote, a space, percent signs and a keyword=value lookalike: each one
	// would let a regexp-based redaction stop early or miss the encoded form.
	password := "S3cr@t:/p%41ss?w=1&password=x #'" + randomHex(6)
	admin := connect(t, db.AdminURL)
	if _, err := admin.Exec(context.Background(), fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", db.Role, strings.ReplaceAll(password, "'", "''"))); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(db.URL)
	u.User = url.UserPassword(db.Role, password)
	dbURL := u.String()
	addSecret(t, password)
	addSecret(t, strings.SplitN(u.User.String(), ":", 2)[1]) // percent-encoded, as in the URL

	files := map[string]string{
		"000001_slow.up.sql":   "CREATE TABLE t (id int);\nSELECT pg_sleep(1);\n",
		"000001_slow.down.sql": "DROP TABLE t;\n",
	}
	env := migrationsEnv(writeDir(t, files))

	// A running update: its command line, while it works, holds no password.
	p := start(t, dbURL, env, "update")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%pg_sleep(1)%' AND state = 'active'", db.Role).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the update never reached its migration:\n%s", p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
	if err != nil {
		t.Skipf("needs /proc to read a process's command line: %v", err)
	}
	if !strings.Contains(string(cmdline), "update") {
		t.Fatalf("/proc/%d/cmdline = %q is not the update", p.cmd.Process.Pid, cmdline)
	}
	p.assertArgsClean()
	if r := p.wait(60 * time.Second); r.code != exitOK {
		t.Fatalf("update: exit %d\n%s", r.code, r.stderr)
	}

	// Every reading command, in both output formats, and failures that print connection details.
	r := run(t, dbURL, env, "status", "-o", "json")
	var st struct {
		Database string `json:"database"`
		State    string `json:"state"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != exitOK || st.State != "current" {
		t.Fatalf("status -o json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if want := fmt.Sprintf("%s@%s/%s", db.Role, u.Host, db.Name); st.Database != want {
		t.Errorf("status database = %q, want %q", st.Database, want)
	}
	run(t, dbURL, env, "status")
	run(t, dbURL, env, "check")
	run(t, dbURL, env, "plan")
	wrong := *u
	wrong.User = url.UserPassword(db.Role, password+"-wrong")
	if r := run(t, wrong.String(), env, "update"); r.code != exitError {
		t.Errorf("wrong password: exit %d, want %d", r.code, exitError)
	}
	if r := run(t, withHost(t, dbURL, closedAddr(t)), append(env, "SCHEMAHOOK_WAIT_FOR_DB=500ms"), "status", "-o", "json"); r.code != exitTimeout {
		t.Errorf("unreachable: exit %d, want %d", r.code, exitTimeout)
	}
	if r := run(t, dbURL+"&sslmode=bogus", env, "check"); r.code != exitUsage {
		t.Errorf("malformed settings: exit %d, want %d", r.code, exitUsage)
	}

	// The /proc check can fail: a URL passed as an argument is visible there (which is why the
	// chart passes it in the environment). The output of that run must still be redacted.
	leaky := start(t, "", nil, "update", "--database-url", withHost(t, dbURL, closedAddr(t)), "--wait-for-db", "30s")
	defer leaky.kill()
	if !leaky.waitLog("waiting for the database", 10*time.Second) {
		t.Fatalf("update with an unreachable --database-url did not wait:\n%s", leaky.stderr.String())
	}
	args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", leaky.cmd.Process.Pid))
	if !strings.Contains(string(args), u.User.String()) {
		t.Fatalf("self-check: /proc/%d/cmdline does not show the --database-url argument: %q", leaky.cmd.Process.Pid, args)
	}
	leaky.kill()
}

// passwordRunes are what a generated password is made of: letters and digits, and every
// character that means something in a URL, a key=value string, a pgpass or service file, JSON
// or a log line.
const passwordRunes = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@/:?#%&=+ ;,'\"\\$!*()[]{}<>~^|`-_."

// randomPassword returns n random bytes of passwordRunes.
func randomPassword(n int) string {
	b := make([]byte, n)
	seed := make([]byte, n)
	_, _ = rand.Read(seed)
	for i := range b {
		b[i] = passwordRunes[int(seed[i])%len(passwordRunes)]
	}
	return string(b)
}

// placeholder is password with its letters and digits replaced by others of the same kind (hex
// digits stay hex digits) and every other byte kept: given the same way, it takes the same path
// through parsing and connecting, and the output differs only where the password shows.
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

// volatile matches what differs between two runs of one command: timestamps, durations,
// attempt counts.
var volatile = regexp.MustCompile(`"time":"[^"]*"|\b[0-9.]+(ns|µs|ms|s|m)\b|\d+ attempts`)

// TestPasswordFragmentsNeverShown: a wrong password against the real server, and the right one
// towards a host that does not answer, given every way a user can give one — a URL raw or
// percent-encoded, key=value, PGPASSWORD, a pgpass file, a service file — never shows 3
// consecutive bytes of the password. Each run is compared with the same run on a placeholder
// password of the same shape, so that fixed text sharing a 3-gram with the password ("app",
// "127") does not count. A raw URL that the password makes ambiguous is refused at once.
func TestPasswordFragmentsNeverShown(t *testing.T) {
	db := newDB(t)
	u, _ := url.Parse(db.URL)
	host, port, _ := strings.Cut(u.Host, ":")
	dbName := strings.TrimPrefix(u.Path, "/")
	closedHost, closedPort, _ := strings.Cut(closedAddr(t), ":")
	files := map[string]string{"000001_t.up.sql": "CREATE TABLE t (id int);\n", "000001_t.down.sql": "DROP TABLE t;\n"}
	migrations := migrationsEnv(writeDir(t, files))

	type form struct {
		name  string
		given func(dir, host, port, password string) (dbURL string, env []string)
	}
	kv := func(host, port string) string {
		return fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", host, port, db.Role, dbName)
	}
	forms := []form{
		{"raw URL", func(_, host, port, pw string) (string, []string) {
			return "postgres://" + db.Role + ":" + pw + "@" + host + ":" + port + "/" + dbName + "?sslmode=disable", nil
		}},
		{"percent-encoded URL", func(_, host, port, pw string) (string, []string) {
			return "postgres://" + url.UserPassword(db.Role, pw).String() + "@" + host + ":" + port + "/" + dbName + "?sslmode=disable", nil
		}},
		{"key=value", func(_, host, port, pw string) (string, []string) {
			return kv(host, port) + " password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "'", nil
		}},
		{"PGPASSWORD", func(_, host, port, pw string) (string, []string) {
			return kv(host, port), []string{"PGPASSWORD=" + pw}
		}},
		{"pgpass file", func(dir, host, port, pw string) (string, []string) {
			file := filepath.Join(dir, "pgpass")
			line := "*:*:*:" + db.Role + ":" + strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(pw) + "\n"
			if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
				t.Fatal(err)
			}
			return kv(host, port), []string{"PGPASSFILE=" + file}
		}},
		{"service file", func(dir, host, port, pw string) (string, []string) {
			file := filepath.Join(dir, "pg_service.conf")
			body := fmt.Sprintf("[app]\nhost=%s\nport=%s\nuser=%s\ndbname=%s\nsslmode=disable\npassword=%s\n", host, port, db.Role, dbName, pw)
			if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			return "service=app", []string{"PGSERVICEFILE=" + file}
		}},
	}
	// The password always holds an '@' and a '/': the characters that move a raw URL's parts.
	password := randomPassword(10) + "@" + randomPassword(6) + "/" + randomPassword(10)
	password = strings.TrimSpace(password) // a service file trims its values
	addSecret(t, password)
	if _, err := connect(t, db.AdminURL).Exec(context.Background(), fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", db.Role, strings.ReplaceAll(password, "'", "''"))); err != nil {
		t.Fatal(err)
	}
	wrong := randomPassword(12) + "@/" + randomPassword(12)
	wrong = strings.TrimSpace(wrong)
	addSecret(t, wrong)

	output := func(f form, host, port, pw string, args ...string) (string, result) {
		dir := t.TempDir()
		dbURL, env := f.given(dir, host, port, pw)
		// A raw URL is refused before any connection: a long wait would show if it were not.
		wait := "1s"
		if f.name == "raw URL" {
			wait = "30s"
		}
		env = append(append(env, migrations...), "SCHEMAHOOK_WAIT_FOR_DB="+wait, "PGSYSCONFDIR="+dir)
		r := run(t, dbURL, env, args...)
		return volatile.ReplaceAllString(r.stdout+r.stderr, "…"), r
	}
	for _, f := range forms {
		for _, c := range []struct {
			what, password, host, port string
			args                       []string
		}{
			{"wrong password, real server", wrong, host, port, []string{"update"}},
			{"right password, no server", password, closedHost, closedPort, []string{"status", "-o", "json"}},
		} {
			t.Run(f.name+"/"+c.what, func(t *testing.T) {
				got, r := output(f, c.host, c.port, c.password, c.args...)
				ref, _ := output(f, c.host, c.port, placeholder(c.password), c.args...)
				for i := 0; i+3 <= len(c.password); i++ {
					if g := c.password[i : i+3]; strings.Count(got, g) > strings.Count(ref, g) {
						t.Errorf("%q of the password %q is shown:\n%s\n--- with a placeholder password:\n%s", g, c.password, got, ref)
						break
					}
				}
				if f.name == "raw URL" && (r.code != exitUsage || r.elapsed > 5*time.Second) {
					t.Errorf("raw URL with '@' and '/' in the password: exit %d after %s, want %d at once", r.code, r.elapsed.Round(time.Millisecond), exitUsage)
				}
			})
		}
	}
}
