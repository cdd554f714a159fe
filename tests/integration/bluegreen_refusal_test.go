package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/bluegreen"
)

// role creates a login role with attrs (e.g. "CREATEDB") for the test and returns its URL;
// whatever it owns is given back to the test's superuser and the role dropped at the end.
func (s *bgSite) role(attrs string) (name, roleURL string) {
	s.t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name = "bg_" + hex.EncodeToString(b[:])
	pw := hex.EncodeToString(b[:]) + "pw"
	s.with("postgres", func(c *pgx.Conn) {
		if _, err := c.Exec(context.Background(), "CREATE ROLE "+name+" LOGIN PASSWORD '"+pw+"' "+attrs); err != nil {
			s.t.Fatal(err)
		}
	})
	s.t.Cleanup(func() {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, s.adminURL("postgres"))
		if err != nil {
			s.t.Errorf("dropping role %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		for _, q := range []string{"REASSIGN OWNED BY " + name + " TO CURRENT_USER", "DROP OWNED BY " + name, "DROP ROLE " + name} {
			if _, err := c.Exec(ctx, q); err != nil {
				s.t.Errorf("%s: %v", q, err)
			}
		}
	})
	u, _ := url.Parse(s.db.URL)
	u.User = url.UserPassword(name, pw)
	return name, u.String()
}

// refused runs the engine as roleURL and checks it refused with ErrCannotCopy saying each of
// parts, and that nothing changed: no copy, the base serving, unfrozen, its data as before.
func (s *bgSite) refused(roleURL string, head int, o bluegreen.Options, parts ...string) {
	s.t.Helper()
	before := s.databases()
	cat, data := s.snapshot(s.base)
	_, err := s.engineAs(roleURL, head, o).Activate(ctxT(s.t, time.Minute))
	if !errors.Is(err, bluegreen.ErrCannotCopy) {
		s.t.Fatalf("activate = %v, want ErrCannotCopy", err)
	}
	mustContain(s.t, err, parts...)
	after := s.databases()
	if !slices.Equal(after, before) {
		s.t.Fatalf("databases changed: %v → %v", before, after)
	}
	if s.frozen(s.base) {
		s.t.Fatal("the base was left frozen")
	}
	if c2, d2 := s.snapshot(s.base); c2 != cat || !equalMaps(d2, data) {
		s.t.Fatal("the base changed")
	}
}

func step(t *testing.T, name string, fn func()) {
	t.Helper()
	t.Log("case: " + name)
	fn()
}

// Every input the copy cannot work with is refused before anything changes, saying what to do.
func TestCopyRefusals(t *testing.T) {
	s := newBGSite(t)
	ctx := ctxT(t, time.Minute)
	if _, err := newRunner(t, s.db, writeDir(t, upTo(exampleFiles(t), 2)), pgdriverOpts()).Update(ctx); err != nil {
		t.Fatal(err)
	}
	s.with(s.base, func(c *pgx.Conn) { seed(t, c, 300) })

	step(t, "no CREATEDB", func() {
		_, u := s.role("")
		s.refused(u, 5, bluegreen.Options{}, "may not create databases (no CREATEDB)", "CREATEDB", "strategy=inPlace")
	})
	step(t, "not the owner (managed services)", func() {
		_, u := s.role("CREATEDB")
		s.refused(u, 5, bluegreen.Options{}, "does not own database", "OWNER TO", "strategy=inPlace")
	})
	step(t, "name longer than 63 bytes", func() {
		long := s.base + "__" + strings.Repeat("v", 64-len(s.base)-2)
		s.refused(s.url, 5, bluegreen.Options{Target: long}, "64 bytes", "truncates")
	})
	step(t, "a database of that name schemahook did not make", func() {
		s.with("postgres", func(c *pgx.Conn) {
			if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.name(5)}.Sanitize()); err != nil {
				t.Fatal(err)
			}
		})
		defer s.with("postgres", func(c *pgx.Conn) { _, _ = c.Exec(ctx, "DROP DATABASE "+pgx.Identifier{s.name(5)}.Sanitize()) })
		s.refused(s.url, 5, bluegreen.Options{}, "exists and schemahook did not create it")
	})
	step(t, "not enough disk", func() {
		s.refused(s.url, 5, bluegreen.Options{DiskBudget: 1 << 20}, "diskBudget", "bytes", "keep")
	})
	step(t, "sessions that cannot be ended", func() {
		name, u := s.role("CREATEDB")
		s.with("postgres", func(c *pgx.Conn) {
			if _, err := c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{s.base}.Sanitize()+" OWNER TO "+name); err != nil {
				t.Fatal(err)
			}
		})
		defer s.with("postgres", func(c *pgx.Conn) {
			_, _ = c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{s.base}.Sanitize()+" OWNER TO CURRENT_USER")
		})
		// A superuser's session on the base: only a superuser may end it.
		hold, err := pgx.Connect(ctx, s.adminURL(s.base))
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Close(ctx)
		s.refused(u, 5, bluegreen.Options{}, "sessions that role", "may not end", "pg_signal_backend", "stopWorkloads")
	})
	step(t, "source newer than the release", func() {
		s.refused(s.url, 1, bluegreen.Options{}, "newer than this release's 1")
	})
}

// The copy has the source's database privileges, which CREATE DATABASE does not copy: a role
// that may connect to the source (the gate's) may connect to the copy, and PUBLIC, shut out of
// the source, is shut out of the copy.
func TestCopyKeepsDatabasePrivileges(t *testing.T) {
	s := newBGSite(t)
	ctx := ctxT(t, time.Minute)
	gate, _ := s.role("")
	other, _ := s.role("")
	s.with("postgres", func(c *pgx.Conn) {
		for _, q := range []string{"REVOKE ALL ON DATABASE " + pgx.Identifier{s.base}.Sanitize() + " FROM PUBLIC",
			"GRANT CONNECT ON DATABASE " + pgx.Identifier{s.base}.Sanitize() + " TO " + gate} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	})
	s.activate(5, bluegreen.Options{})
	s.with(s.name(5), func(c *pgx.Conn) {
		var gateOK, otherOK bool
		if err := c.QueryRow(ctx, `SELECT has_database_privilege($1, current_database(), 'CONNECT'), has_database_privilege($2, current_database(), 'CONNECT')`,
			gate, other).Scan(&gateOK, &otherOK); err != nil {
			t.Fatal(err)
		}
		if !gateOK || otherOK {
			t.Fatalf("CONNECT on the copy: granted role %t (want true), other role %t (want false)", gateOK, otherOK)
		}
	})
}
