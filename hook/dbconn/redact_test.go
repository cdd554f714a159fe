package dbconn

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

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
		if got := Redact(in); got != want {
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
		red := Redact(s)
		if cfg2, err := pgconn.ParseConfig(red); err == nil && cfg2.Password == cfg.Password {
			t.Fatalf("Redact(%q) = %q still parses to password %q", s, red, cfg.Password)
		}
	})
}
