package dbconn

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

// golang-migrate URLs, as its CLI and library take them (database/pgx/v5 and database/postgres
// Open), are read with the same meaning or refused with what to write instead.
func TestTranslateMigrateURL(t *testing.T) {
	const pw = "s3cr3t-pw"
	cases := []struct {
		name, in, conn string
		flags          map[string]string
		warnings       int
		errHas         []string // substrings of the error; none: no error
	}{
		{name: "plain postgres URL unchanged", in: "postgres://u:" + pw + "@h:5432/db?sslmode=disable", conn: "postgres://u:" + pw + "@h:5432/db?sslmode=disable"},
		{name: "keyword/value unchanged", in: "host=h password=" + pw, conn: "host=h password=" + pw},
		{name: "pgx5 scheme", in: "pgx5://u:" + pw + "@h/db", conn: "postgres://u:" + pw + "@h/db"},
		{name: "pgx scheme", in: "pgx://u@h/db?sslmode=require", conn: "postgres://u@h/db?sslmode=require"},
		{name: "migrations table", in: "pgx5://u:" + pw + "@h/db?sslmode=disable&x-migrations-table=app_versions&application_name=x",
			conn: "postgres://u:" + pw + "@h/db?sslmode=disable&application_name=x", flags: map[string]string{"migrations-table": "app_versions"}},
		{name: "quoted table", in: "postgres://h/db?x-migrations-table=%22app_versions%22&x-migrations-table-quoted=1",
			conn: "postgres://h/db", flags: map[string]string{"migrations-table": "app_versions"}},
		{name: "quoted table with schema", in: "postgres://u:" + pw + "@h/db?x-migrations-table=%22meta%22.%22app_versions%22&x-migrations-table-quoted=true",
			errHas: []string{"x-migrations-table", "--migrations-table app_versions", "search_path", "meta"}},
		{name: "quoted flag without quotes", in: "postgres://h/db?x-migrations-table=v&x-migrations-table-quoted=true", errHas: []string{"must be quoted"}},
		{name: "bad quoted flag", in: "postgres://h/db?x-migrations-table-quoted=maybe", errHas: []string{"x-migrations-table-quoted", "true or false"}},
		{name: "statement timeout", in: "pgx5://h/db?x-statement-timeout=60000", conn: "postgres://h/db", flags: map[string]string{"statement-timeout": "1m0s"}},
		{name: "bad statement timeout", in: "pgx5://h/db?x-statement-timeout=1m", errHas: []string{"x-statement-timeout", "milliseconds", "--statement-timeout"}},
		{name: "multi statement", in: "pgx5://h/db?x-multi-statement=true&x-multi-statement-max-size=100", conn: "postgres://h/db", warnings: 1},
		{name: "multi statement off", in: "pgx5://h/db?x-multi-statement=false", conn: "postgres://h/db"},
		{name: "unknown x- parameter", in: "pgx5://u:" + pw + "@h/db?x-foo=1", errHas: []string{"x-foo", "remove it"}},
		{name: "password with a raw '@'", in: "pgx5://u:" + pw + "@x@h/db?x-migrations-table=v", errHas: []string{"percent-encoded"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := TranslateMigrateURL(c.in)
			if len(c.errHas) > 0 {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("err = %v, want ErrConfig", err)
				}
				for _, s := range c.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				if strings.Contains(err.Error(), pw) {
					t.Errorf("error shows the password: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tr.ConnString != c.conn {
				t.Errorf("connection string %q, want %q", tr.ConnString, c.conn)
			}
			if c.flags == nil {
				c.flags = map[string]string{}
			}
			if !maps.Equal(tr.Flags, c.flags) {
				t.Errorf("flags %v, want %v", tr.Flags, c.flags)
			}
			if len(tr.Warnings) != c.warnings {
				t.Errorf("warnings %q, want %d", tr.Warnings, c.warnings)
			}
			for _, n := range append(tr.Notes, tr.Warnings...) {
				if strings.Contains(n, pw) {
					t.Errorf("note shows the password: %q", n)
				}
			}
		})
	}
}

func TestConfigMigrateURL(t *testing.T) {
	cfg, err := Config("pgx5://u:pw@db.example:6543/app?sslmode=disable&x-multi-statement=true")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "db.example" || cfg.Port != 6543 || cfg.Database != "app" || cfg.User != "u" || cfg.Password != "pw" {
		t.Errorf("config %s, want u@db.example:6543/app", Describe(cfg))
	}
	if _, err := Config("pgx5://h/app?x-migrations-table=v"); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--migrations-table v") {
		t.Errorf("Config with x-migrations-table: %v, want ErrConfig naming --migrations-table v", err)
	}
	if got := Redact("connecting to pgx5://u:s3cr3t@h/db failed"); strings.Contains(got, "s3cr3t") {
		t.Errorf("Redact left the password of a pgx5 URL: %q", got)
	}
}
