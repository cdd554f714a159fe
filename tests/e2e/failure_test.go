package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestFailedMigration: an upgrade whose new migration fails. The release fails with an error
// that names the Job, the database stays at the previous version, clean, the old pods keep
// serving untouched, and the failed Job is kept with a log that says which file, which line and
// which SQLSTATE. The corrected migration then goes through on the next upgrade, whose hook
// replaces the failed Job under the same name.
func TestFailedMigration(t *testing.T) { helmMajors(t, testFailedMigration) }

func testFailedMigration(t *testing.T, s *suite) {
	s.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	s.migrationsConfigMap("migrations-v5-failing", union(exampleMigrations(t, 4), testdataMigrations(t, "failing")))
	s.migrationsConfigMap("migrations-v5-fixed", union(exampleMigrations(t, 4), testdataMigrations(t, "fixed")))

	if _, err := s.install(s.values("migrations-v4", "schemahook.config.updateSchema=true"), true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	s.assertSchema(4, tablesV4, nil)
	serving := s.assertAppReady()
	before := s.deployment()
	rows := s.rowVersions()
	s.takeHookLogs()

	_, _, err := s.upgrade(s.values("migrations-v5-failing", "schemahook.config.updateSchema=true"), true)
	if err == nil {
		t.Fatal("helm upgrade with a failing migration succeeded")
	}
	// Helm's own error differs between majors: what failed is read from the Job and the release.
	// The release failed at revision 2; the database is still at 4, clean, nothing written (the
	// failed file's CREATE TABLE was rolled back with it).
	s.assertFailedUpgradeChangedNothing(rows)

	// The old release keeps serving: Helm stopped before touching the Deployment.
	after := s.deployment()
	if after.Generation != before.Generation || migrationsVolume(after) != "migrations-v4" {
		t.Errorf("the Deployment changed: generation %d → %d, migrations %s", before.Generation, after.Generation, migrationsVolume(after))
	}
	if still := s.assertAppReady(); !slices.Equal(podUIDs(serving), podUIDs(still)) {
		t.Errorf("the app pods changed: %v → %v", podUIDs(serving), podUIDs(still))
	}

	// The failed Job is kept for inspection, with its pod; its log says what failed, where.
	ctx := ctxT(t, 30*time.Second)
	job, err := s.kube.BatchV1().Jobs(s.ns).Get(ctx, schemaUpdateName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the failed Job was not kept: %v", err)
	}
	if c := jobCondition(job, "Failed"); c == nil || c.Reason != "BackoffLimitExceeded" {
		t.Errorf("Job %s conditions %v, want Failed (BackoffLimitExceeded)", job.Name, job.Status.Conditions)
	}
	pods := s.jobPods(ctx, schemaUpdateName)
	if len(pods) != 1 {
		t.Fatalf("the failed Job has %d pods, want 1 (backoffLimit 0)", len(pods))
	}
	if st := pods[0].Status.ContainerStatuses; len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 3 {
		t.Errorf("the hook pod did not exit 3 (a migration failed): %s", podState(pods[0]))
	}
	log := s.podLog(pods[0].Name, "schema-update")
	for _, want := range []string{
		"migration 000005_audit_log.up.sql failed at line 8",
		"SQLSTATE 42P01",
		`relation \"audit_logs\" does not exist`,
		"the database is still at version 4, clean",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the failed hook pod's log does not contain %q:\n%s", want, log)
		}
	}
	// Helm streamed the same log (helm.sh/hook-output-log-policy: hook-failed), and its last
	// line, what a user reads right above Helm's own error, is the error as plain text.
	logs := s.takeHookLogs()
	if !strings.Contains(logs, "SQLSTATE 42P01") {
		t.Errorf("Helm did not stream the failed hook's log:\n%s", logs)
	}
	s.assertLastHookLine(logs, schemaUpdateName, "Error: migration 000005_audit_log.up.sql failed at line 8, column 13 (SQLSTATE 42P01)")
	// Nothing else of the hook is left: Helm (3.19 and later) deleted the succeeded ConfigMap.
	if left := s.hookObjects(ctx); !slices.Equal(left, []string{"Job/" + schemaUpdateName, "Pod/" + pods[0].Name}) {
		t.Errorf("after the failure, hook objects are %v; want only the failed Job and its pod", left)
	}

	// The corrected migration: the next upgrade replaces the failed Job (same name) and applies it.
	if _, _, err := s.upgrade(s.values("migrations-v5-fixed", "schemahook.config.updateSchema=true"), true); err != nil {
		t.Fatalf("helm upgrade with the fixed migration: %v", err)
	}
	if rel := s.lastRelease(); rel.Version != 3 || rel.Info.Status != release.StatusDeployed {
		t.Errorf("release revision %d is %s, want revision 3 deployed", rel.Version, rel.Info.Status)
	}
	s.assertSchema(5, append(slices.Clone(tablesV4), "audit_log"), nil)
	var n int
	if err := s.db.QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 1 {
		t.Errorf("audit_log has %d rows (%v), want 1", n, err)
	}
	if now := s.assertAppReady(); slices.Equal(podUIDs(serving), podUIDs(now)) {
		t.Error("the app pods were not replaced after the fixed upgrade")
	}
	s.assertNoHookObjects("after the fixed upgrade")
	if ps := s.jobPods(ctx, schemaUpdateName); len(ps) != 0 {
		t.Errorf("pods of the hook Job are left: %v", ps[0].Name)
	}
}
