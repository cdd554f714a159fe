package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/schemahook/schemahook/migrations"
)

// Helpers of the suite that read and seed the database and the migrations.

// Migrations ------------------------------------------------------------------------------------

// exampleMigrations returns the repository's example migrations (migrations/) up to version
// upTo, by file name.
func exampleMigrations(t *testing.T, upTo int) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(migrations.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		var v int
		if _, err := fmt.Sscanf(p, "%d_", &v); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if v <= upTo {
			b, err := fs.ReadFile(migrations.FS, p)
			out[p] = string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testdataMigrations returns the *.sql files of testdata/<dir>.
func testdataMigrations(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations in testdata/%s (%v)", dir, err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = string(b)
	}
	return out
}

func union(sets ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// migrationsConfigMap creates the ConfigMap that migrations.configMap names. Each set of
// migrations gets its own name, as the chart's README recommends, so that a revision (and a
// rollback to it) keeps seeing its own set.
func (s *suite) migrationsConfigMap(name string, files map[string]string) {
	s.t.Helper()
	_, err := s.kube.CoreV1().ConfigMaps(s.ns).Create(ctxT(s.t, 30*time.Second), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Data:       files,
	}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("creating ConfigMap %s: %v", name, err)
	}
}

// Database assertions ----------------------------------------------------------------------------

// schemaVersion reads schema_migrations: (-1, false) when the database has no schema yet.
func (s *suite) schemaVersion() (int, bool) {
	s.t.Helper()
	if !s.tableExists("schema_migrations") {
		return -1, false
	}
	var v int
	var dirty bool
	err := s.db.QueryRow(context.Background(), "SELECT version, dirty FROM schema_migrations").Scan(&v, &dirty)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, false
	}
	if err != nil {
		s.t.Fatalf("reading schema_migrations: %v", err)
	}
	return v, dirty
}

func (s *suite) tableExists(name string) bool {
	s.t.Helper()
	var ok bool
	if err := s.db.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", "public."+name).Scan(&ok); err != nil {
		s.t.Fatal(err)
	}
	return ok
}

// history is the versions in schemahook_history, ascending.
func (s *suite) history() []int {
	s.t.Helper()
	rows, _ := s.db.Query(context.Background(), "SELECT version FROM schemahook_history ORDER BY version")
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		s.t.Fatalf("reading schemahook_history: %v", err)
	}
	return vs
}

// rowVersions identifies the physical version of every row of schema_migrations and
// schemahook_history (xmin, the transaction that wrote it): equal before and after a step
// assertFailedUpgradeChangedNothing checks what a failed migration must leave behind after the
// upgrade to revision 2 with the failing 000005 file: the release failed, the database still at
// 4 with only its tables, and the version and history rows exactly as they were (rows, from
// rowVersions before the upgrade).
func (s *suite) assertFailedUpgradeChangedNothing(rows []string) {
	s.t.Helper()
	if rel := s.lastRelease(); rel.Version != 2 || rel.Info.Status != release.StatusFailed {
		s.t.Errorf("release revision %d is %s, want revision 2 failed", rel.Version, rel.Info.Status)
	}
	s.assertSchema(4, tablesV4, []string{"audit_log"})
	if after := s.rowVersions(); !slices.Equal(rows, after) {
		s.t.Errorf("the failed upgrade wrote to the version tables:\nbefore %v\nafter  %v", rows, after)
	}
}

// means the step wrote nothing there.
func (s *suite) rowVersions() []string {
	s.t.Helper()
	rows, _ := s.db.Query(context.Background(), `
		SELECT 'schema_migrations v' || version || ' xmin ' || xmin::text FROM schema_migrations
		UNION ALL
		SELECT 'schemahook_history v' || version || ' xmin ' || xmin::text FROM schemahook_history
		ORDER BY 1`)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		s.t.Fatalf("reading row versions: %v", err)
	}
	return out
}

// assertSchema checks that the database is at version want, clean, with history rows 1..want
// and the given tables present or absent.
func (s *suite) assertSchema(want int, present, absent []string) {
	s.t.Helper()
	v, dirty := s.schemaVersion()
	if v != want || dirty {
		s.t.Errorf("schema_migrations = (version %d, dirty %v), want (%d, false)", v, dirty, want)
	}
	var wantHist []int
	for i := 1; i <= want; i++ {
		wantHist = append(wantHist, i)
	}
	if got := s.history(); !slices.Equal(got, wantHist) {
		s.t.Errorf("schemahook_history versions = %v, want %v", got, wantHist)
	}
	for _, tbl := range present {
		if !s.tableExists(tbl) {
			s.t.Errorf("table %s is missing at version %d", tbl, want)
		}
	}
	for _, tbl := range absent {
		if s.tableExists(tbl) {
			s.t.Errorf("table %s exists at version %d", tbl, want)
		}
	}
}
