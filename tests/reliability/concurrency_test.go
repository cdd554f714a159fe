package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// concurrencyFiles: each migration inserts its version into runs, so a migration applied twice
// shows two rows; 3 and 5 build indexes CONCURRENTLY outside a transaction — the case where a
// blocking pg_advisory_lock waiter deadlocks with the index build (CIC waits for the waiter's
// transaction, the waiter for the lock the CIC session holds); 2 is slow, so that the other
// hooks are all waiting for the migration lock while the migrations run.
var concurrencyFiles = map[string]string{
	"000001_items.up.sql": `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
CREATE TABLE runs (version int NOT NULL, pid int NOT NULL DEFAULT pg_backend_pid(), at timestamptz NOT NULL DEFAULT clock_timestamp());
INSERT INTO runs (version) VALUES (1);
`,
	"000001_items.down.sql": "DROP TABLE runs;\nDROP TABLE items;\n",
	"000002_slow.up.sql":    "INSERT INTO runs (version) VALUES (2);\nSELECT pg_sleep(0.5);\n",
	"000002_slow.down.sql":  "DELETE FROM runs WHERE version = 2;\n",
	"000003_name_idx.up.sql": `-- schemahook:no-transaction
INSERT INTO runs (version) VALUES (3);
CREATE INDEX CONCURRENTLY items_name_idx ON items (name);
`,
	"000003_name_idx.down.sql": "-- schemahook:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS items_name_idx;\nDELETE FROM runs WHERE version = 3;\n",
	"000004_note.up.sql":       "ALTER TABLE items ADD COLUMN note text;\nINSERT INTO runs (version) VALUES (4);\n",
	"000004_note.down.sql":     "ALTER TABLE items DROP COLUMN note;\nDELETE FROM runs WHERE version = 4;\n",
	"000005_id_name.up.sql": `-- schemahook:no-transaction
CREATE UNIQUE INDEX CONCURRENTLY items_id_name_idx ON items (id, name);
INSERT INTO runs (version) VALUES (5);
`,
	"000005_id_name.down.sql": "-- schemahook:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS items_id_name_idx;\nDELETE FROM runs WHERE version = 5;\n",
	"000006_last.up.sql":      "INSERT INTO runs (version) VALUES (6);\n",
	"000006_last.down.sql":    "DELETE FROM runs WHERE version = 6;\n",
}

// TestEightHooksAtOnce starts 8 update processes at the same moment against one empty
// database: every one must exit 0 within a bound (no deadlock), and every migration must be
// applied exactly once.
func TestEightHooksAtOnce(t *testing.T) {
	const hooks = 8
	db := newDB(t)
	env := migrationsEnv(writeDir(t, concurrencyFiles))
	started := time.Now()
	procs := make([]*proc, hooks)
	for i := range procs {
		procs[i] = start(t, db.URL, env, "update", "--timeout", "60s", "--lock-wait", "60s")
	}
	for _, p := range procs {
		p.assertArgsClean()
	}
	applied := map[int]int{} // version → number of "applied migration" log lines across all hooks
	waited := 0
	var slowest time.Duration
	for i, p := range procs {
		r := p.wait(90 * time.Second) // well past every internal deadline: hitting it is a hang
		slowest = max(slowest, r.elapsed)
		if r.code != exitOK {
			t.Errorf("hook %d: exit %d after %s\n%s", i, r.code, r.elapsed, r.stderr)
		}
		for _, line := range strings.Split(r.stderr, "\n") {
			var rec struct {
				Msg     string `json:"msg"`
				Version int    `json:"version"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			switch rec.Msg {
			case "applied migration":
				applied[rec.Version]++
			case "waiting for the migration lock":
				waited++
			}
		}
	}
	t.Logf("%d hooks finished within %s of the start (slowest %s); %d waited for the migration lock",
		hooks, time.Since(started).Round(time.Millisecond), slowest.Round(time.Millisecond), waited)

	c := connect(t, db.AdminURL)
	ctx := context.Background()
	for v := 1; v <= 6; v++ {
		if applied[v] != 1 {
			t.Errorf("migration %d was applied by %d hooks, want exactly 1 (logs: %v)", v, applied[v], applied)
		}
	}
	rows, _ := c.Query(ctx, "SELECT version, count(*)::int FROM runs GROUP BY 1 ORDER BY 1")
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var v, n int
		err := r.Scan(&v, &n)
		return fmt.Sprintf("%d×%d", v, n), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"1×1", "2×1", "3×1", "4×1", "5×1", "6×1"}; !slices.Equal(got, want) {
		t.Errorf("runs rows per version = %v, want %v (each migration exactly once)", got, want)
	}
	if h := historyVersions(t, c); !slices.Equal(h, seq(1, 6)) {
		t.Errorf("history = %v, want 1..6", h)
	}
	if v, dirty := versionRow(t, c); v != 6 || dirty {
		t.Errorf("schema_migrations = (%d, %t), want (6, false)", v, dirty)
	}
	var valid, invalid int
	if err := c.QueryRow(ctx, `SELECT count(*) FILTER (WHERE indisvalid AND indisready), count(*) FILTER (WHERE NOT (indisvalid AND indisready))
		FROM pg_index WHERE indexrelid IN ('items_name_idx'::regclass, 'items_id_name_idx'::regclass)`).Scan(&valid, &invalid); err != nil {
		t.Fatal(err)
	}
	if valid != 2 || invalid != 0 {
		t.Errorf("concurrent indexes: %d valid, %d invalid; want 2 valid", valid, invalid)
	}
}
