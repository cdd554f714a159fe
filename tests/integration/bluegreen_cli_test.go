package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/bluegreen"
)

// The copy strategy through the binary, configured by environment as the chart does: the hook
// copies, the gate of each release checks its own database, the guard of the older release
// refuses the switch back after writes (exit 11) and switches back when accepted.
func TestCopyStrategyCLI(t *testing.T) {
	s := newBGSite(t)
	ctx := ctxT(t, time.Minute)
	if _, err := newRunner(t, s.db, writeDir(t, upTo(exampleFiles(t), 2)), pgdriverOpts()).Update(ctx); err != nil {
		t.Fatal(err)
	}
	v2, v5 := writeDir(t, upTo(exampleFiles(t), 2)), writeDir(t, exampleFiles(t))
	lineage := bluegreen.DefaultLineage(s.base)
	hook := func(dir, target string, version string, extra ...string) result {
		env := append([]string{"SCHEMAHOOK_MIGRATIONS=" + dir, "SCHEMAHOOK_STRATEGY=copy", "SCHEMAHOOK_COPY_DATABASE=" + target,
			"SCHEMAHOOK_COPY_VERSION=" + version, "SCHEMAHOOK_COPY_LINEAGE=" + lineage}, extra...)
		return cli(t, s.adminURL(s.base), env, "update")
	}
	gate := func(dir, database string) result {
		return cli(t, s.adminURL(database), []string{"SCHEMAHOOK_MIGRATIONS=" + dir, "SCHEMAHOOK_COPY_LINEAGE=" + lineage}, "check")
	}
	if r := hook(v2, s.name(2), "2"); r.Code != 0 {
		t.Fatalf("update v2: exit %d", r.Code)
	}
	if r := hook(v5, s.name(5), "4"); r.Code != 2 || !strings.Contains(r.Stderr, "the migrations' head is 5") {
		t.Fatalf("update with the wrong schema version: exit %d, want 2 naming the head", r.Code)
	}
	if r := hook(v5, s.name(5), "5"); r.Code != 0 {
		t.Fatalf("update v5: exit %d", r.Code)
	}
	if r := hook(v5, s.name(5), "5"); r.Code != 0 || !strings.Contains(r.Stderr, `"action":"current"`) {
		t.Fatalf("re-run: exit %d, want 0 and action current", r.Code)
	}
	if r := gate(v5, s.name(5)); r.Code != 0 {
		t.Fatalf("gate of the new release: exit %d", r.Code)
	}
	if r := gate(v2, s.name(2)); r.Code != 0 {
		t.Fatalf("gate of the old release before any write: exit %d", r.Code)
	}
	if err := s.write(s.name(5), 2); err != nil {
		t.Fatal(err)
	}
	if r := gate(v2, s.name(2)); r.Code != 11 || !strings.Contains(r.Stderr, "public.accounts (2 inserted") {
		t.Fatalf("gate of the old release after writes: exit %d, want 11 naming the lost rows", r.Code)
	}
	// Drift is only a warning for the gate, and must not skip the lineage check behind it.
	drifted := upTo(exampleFiles(t), 2)
	for name := range drifted {
		if strings.HasPrefix(name, "000001_") && strings.HasSuffix(name, ".up.sql") {
			drifted[name] += "\n-- edited after it was applied\n"
		}
	}
	if r := gate(writeDir(t, drifted), s.name(2)); r.Code != 11 || !strings.Contains(r.Stderr, "drift") {
		t.Fatalf("gate of the old release with drift after writes: exit %d, want 11 after the drift warning:\n%s", r.Code, r.Stderr)
	}
	guard := func(extra ...string) result {
		env := append([]string{"SCHEMAHOOK_MIGRATIONS=" + v2, "SCHEMAHOOK_STRATEGY=copy", "SCHEMAHOOK_COPY_DATABASE=" + s.name(2),
			"SCHEMAHOOK_COPY_LINEAGE=" + lineage}, extra...)
		return cli(t, s.adminURL(s.base), env, "guard")
	}
	if r := guard(); r.Code != 11 || !strings.Contains(r.Stderr, "acceptWriteLoss") {
		t.Fatalf("guard after writes: exit %d, want 11", r.Code)
	}
	if s.serving() != s.name(5) {
		t.Fatal("the refused guard switched anyway")
	}
	if r := guard("SCHEMAHOOK_ACCEPT_WRITE_LOSS=true"); r.Code != 0 {
		t.Fatalf("guard accepting the loss: exit %d", r.Code)
	}
	if s.serving() != s.name(2) || s.frozen(s.name(2)) {
		t.Fatal("not switched back")
	}
	s.with(s.name(2), func(c *pgx.Conn) {
		if v, _ := versionRow(t, c); v != 2 {
			t.Fatalf("the older database is at %d, want 2 (no down migration)", v)
		}
	})
	if r := gate(v5, s.name(5)); r.Code != 8 {
		t.Fatalf("gate of the newer release after the switch back: exit %d, want 8 (not serving)", r.Code)
	}
}
