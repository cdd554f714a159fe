package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// documentedRefusal reads the message the chart's README ("Rollbacks") documents for a refused
// rollback and turns it into a pattern: the README's example has its own version numbers, so
// every number matches any number; the rest must match word for word (whitespace aside).
func documentedRefusal(t *testing.T) *regexp.Regexp {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(schemahookDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n## Rollbacks")
	if i < 0 {
		t.Fatal("the chart README has no section \"Rollbacks\"")
	}
	doc = doc[i:]
	start := strings.Index(doc, "```text\n")
	if start < 0 {
		t.Fatal("the chart README's section \"Rollbacks\" documents no message (```text block)")
	}
	doc = doc[start+len("```text\n"):]
	msg := strings.Join(strings.Fields(doc[:strings.Index(doc, "```")]), " ")
	pattern := regexp.MustCompile(`[0-9]+`).ReplaceAllString(regexp.QuoteMeta(msg), `[0-9]+`)
	return regexp.MustCompile("^" + pattern + "$")
}

// exitLine finds the JSON log line with the exit code and returns its msg.
func exitLine(t *testing.T, log string, code int) (string, bool) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		var rec struct {
			Msg      string `json:"msg"`
			ExitCode *int   `json:"exit_code"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.ExitCode != nil && *rec.ExitCode == code {
			return strings.Join(strings.Fields(rec.Msg), " "), true
		}
	}
	return "", false
}

// upgradedTo5 installs revision 1 at schema 4 (migrations-v4) with the extra sets, upgrades to
// revision 2 at schema 5 (migrations-v5).
func (s *suite) upgradedTo5(rev1Sets ...string) {
	s.t.Helper()
	s.migrationsConfigMap("migrations-v4", exampleMigrations(s.t, 4))
	s.migrationsConfigMap("migrations-v5", exampleMigrations(s.t, 5))
	if _, err := s.install(s.values("migrations-v4", append([]string{"schemahook.config.updateSchema=true"}, rev1Sets...)...), true); err != nil {
		s.t.Fatalf("helm install (revision 1, schema 4): %v", err)
	}
	if _, _, err := s.upgrade(s.values("migrations-v5", "schemahook.config.updateSchema=true"), true); err != nil {
		s.t.Fatalf("helm upgrade (revision 2, schema 5): %v", err)
	}
	s.assertSchema(5, tablesV5, nil)
	s.takeHookLogs()
}

// TestRollbackRefusedOnNewerSchema: `helm rollback` to a revision whose migrations end below the
// database's version is stopped by that revision's pre-rollback guard before Helm changes any
// object. The Deployment and its pods stay those of the newer revision, the database is not
// touched, and the guard's log (kept with its Job) says why and what to do. Rolling back to the
// revision that is still deployed, as the README says, then clears the pending rollback.
func TestRollbackRefusedOnNewerSchema(t *testing.T) { helmMajors(t, testRollbackRefusedOnNewerSchema) }

func testRollbackRefusedOnNewerSchema(t *testing.T, s *suite) {
	s.upgradedTo5()
	serving := s.assertAppReady()
	before := s.deployment()
	rows := s.rowVersions()

	err := s.rollback(1)
	if err == nil {
		t.Fatal("helm rollback to the revision with schema 4 succeeded on a database at 5")
	}
	// Helm's own error differs between majors: the guard Job's state and log say what failed.

	// Nothing changed: the Deployment (still revision 2's), its pods, the database.
	after := s.deployment()
	if after.Generation != before.Generation || migrationsVolume(after) != "migrations-v5" {
		t.Errorf("the refused rollback changed the Deployment: generation %d → %d, migrations %s",
			before.Generation, after.Generation, migrationsVolume(after))
	}
	if still := s.assertAppReady(); !slices.Equal(podUIDs(serving), podUIDs(still)) {
		t.Errorf("the app pods changed: %v → %v", podUIDs(serving), podUIDs(still))
	}
	s.assertSchema(5, tablesV5, nil)
	if got := s.rowVersions(); !slices.Equal(rows, got) {
		t.Errorf("the refused rollback wrote to the version tables:\nbefore %v\nafter  %v", rows, got)
	}

	// The guard Job is kept; its pod's log, read through the API, has the documented message
	// and exit code 5 (the database is newer than this release).
	ctx := ctxT(t, 30*time.Second)
	job, err := s.kube.BatchV1().Jobs(s.ns).Get(ctx, guardName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the failed guard Job was not kept: %v", err)
	}
	if c := jobCondition(job, "Failed"); c == nil {
		t.Errorf("guard Job conditions %v, want Failed", job.Status.Conditions)
	}
	log := s.jobLog(guardName)
	if msg, ok := exitLine(t, log, 5); !ok {
		t.Errorf("the guard's log has no line with exit code 5:\n%s", log)
	} else {
		if want := "rolling back to a release whose schema is version 4, but the database is at 5."; !strings.Contains(msg, want) {
			t.Errorf("the guard's message does not say %q: %s", want, msg)
		}
		if doc := documentedRefusal(t); !doc.MatchString(msg) {
			t.Errorf("the guard's message is not the one the chart README documents (section Rollbacks):\nlogged:     %s\ndocumented: %s", msg, doc)
		}
	}
	logs := s.takeHookLogs()
	if !strings.Contains(logs, "database is newer than this release") {
		t.Errorf("Helm did not stream the guard's log:\n%s", logs)
	}
	s.assertLastHookLine(logs, guardName, "Error: database is newer than this release: rolling back to a release whose schema is version 4, but")
	pods := s.jobPods(ctx, guardName)
	if left := s.hookObjects(ctx); len(pods) != 1 || !slices.Equal(left, []string{"Job/" + guardName, "Pod/" + pods[0].Name}) {
		t.Errorf("after the refusal, hook objects are %v; want only the guard Job and its pod", left)
	}
	// Helm records nothing when a pre-rollback hook fails: revision 3 stays pending.
	if rel := s.lastRelease(); rel.Version != 3 || rel.Info.Status != release.StatusPendingRollback {
		t.Errorf("release revision %d is %s, want revision 3 pending-rollback (README, Rollbacks)", rel.Version, rel.Info.Status)
	}

	// The documented way out: roll back to the revision that is still deployed. Its guard
	// passes (the database is at its head) and nothing changes.
	if err := s.rollback(2); err != nil {
		t.Fatalf("helm rollback to the deployed revision 2: %v", err)
	}
	if rel := s.lastRelease(); rel.Version != 4 || rel.Info.Status != release.StatusDeployed {
		t.Errorf("release revision %d is %s, want revision 4 deployed", rel.Version, rel.Info.Status)
	}
	if logs := s.takeHookLogs(); !strings.Contains(logs, "rollback is safe for the schema") {
		t.Errorf("the guard's log does not say the rollback to revision 2 is safe:\n%s", logs)
	}
	s.assertSchema(5, tablesV5, nil)
	if got := s.rowVersions(); !slices.Equal(rows, got) {
		t.Errorf("the rollback to revision 2 wrote to the version tables:\nbefore %v\nafter  %v", rows, got)
	}
	if still := s.assertAppReady(); !slices.Equal(podUIDs(serving), podUIDs(still)) {
		t.Errorf("the rollback to the same revision replaced the app pods: %v → %v", podUIDs(serving), podUIDs(still))
	}
	s.assertNoHookObjects("after the rollback to revision 2")
	s.assertCreated("Job", guardName)
}

// TestRollbackDowngradesWhenAllowed: with config.allowDowngrade=true in the revision rolled
// back to, its guard reverts the newer migration with the down SQL stored when it was applied;
// the database ends at the old head, the newer table is gone (data in older tables stays), and
// the old revision's pods pass their gate and come up.
func TestRollbackDowngradesWhenAllowed(t *testing.T) {
	helmMajors(t, testRollbackDowngradesWhenAllowed)
}

func testRollbackDowngradesWhenAllowed(t *testing.T, s *suite) {
	// Only revision 1 allows downgrades: the target revision's values decide.
	s.upgradedTo5("schemahook.config.allowDowngrade=true")
	newer := s.assertAppReady()
	ctx := context.Background()
	if _, err := s.db.Exec(ctx, "INSERT INTO accounts (email, name) VALUES ('ada@example.com', 'Ada')"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, "INSERT INTO account_settings (account_id) SELECT id FROM accounts"); err != nil {
		t.Fatal(err)
	}

	if err := s.rollback(1); err != nil {
		t.Fatalf("helm rollback to revision 1 (allowDowngrade=true): %v", err)
	}
	if rel := s.lastRelease(); rel.Version != 3 || rel.Info.Status != release.StatusDeployed {
		t.Errorf("release revision %d is %s, want revision 3 deployed", rel.Version, rel.Info.Status)
	}
	logs := s.takeHookLogs()
	for _, want := range []string{"downgrading schema with stored down migrations", "schema downgraded"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the guard's log does not contain %q:\n%s", want, logs)
		}
	}
	s.assertSchema(4, tablesV4, []string{"account_settings"})
	var n int
	if err := s.db.QueryRow(ctx, "SELECT count(*) FROM accounts").Scan(&n); err != nil || n != 1 {
		t.Errorf("accounts has %d rows (%v) after the downgrade, want 1", n, err)
	}

	// Revision 1's pods: its migrations, its gate passed, Ready.
	if d := s.deployment(); migrationsVolume(d) != "migrations-v4" {
		t.Errorf("the Deployment mounts %s after the rollback, want migrations-v4", migrationsVolume(d))
	}
	old := s.assertAppReady()
	if slices.Equal(podUIDs(newer), podUIDs(old)) {
		t.Error("the rollback did not replace the app pods")
	}
	for _, p := range old {
		if log := s.podLog(p.Name, gateContainer); !strings.Contains(log, "schema is current") {
			t.Errorf("the gate of %s did not pass:\n%s", p.Name, log)
		}
	}
	s.assertNoHookObjects("after the downgrading rollback")
	s.assertCreated("Job", guardName)
}
