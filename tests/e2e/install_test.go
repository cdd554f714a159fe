package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
)

// Tables of the example schema, by the version that creates them.
var (
	tablesV4 = []string{"accounts", "projects"}
	tablesV5 = []string{"accounts", "projects", "account_settings"}
)

// TestInstallAndUpgrade follows one release through its life with config.updateSchema on:
// install on an empty database, an upgrade that adds a migration, an upgrade with nothing new,
// and `helm test`. After each step the schema is where it should be, the app pods are Ready and
// no hook object is left; every pod (hook, gate, app, test) is admitted under Pod Security
// "restricted" (checked for every test when it ends, from the namespace's events and the API
// server's warnings).
func TestInstallAndUpgrade(t *testing.T) { helmMajors(t, testInstallAndUpgrade) }

func testInstallAndUpgrade(t *testing.T, s *suite) {
	s.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	s.migrationsConfigMap("migrations-v5", exampleMigrations(t, 5))

	// 1. Install on an empty database: the pre-install hook initializes the schema before the
	// app's pods exist, and their gate lets them start.
	if v, _ := s.schemaVersion(); v != -1 {
		t.Fatalf("the new database is at version %d", v)
	}
	rel, err := s.install(s.values("migrations-v4", "schemahook.config.updateSchema=true"), true)
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	if rel.Info.Status != release.StatusDeployed {
		t.Errorf("release status %s, want deployed", rel.Info.Status)
	}
	s.assertSchema(4, tablesV4, []string{"account_settings"})
	if !s.tableExists("accounts_email_lower_key") {
		t.Error("index accounts_email_lower_key (migration 3, no transaction) is missing")
	}
	if logs := s.takeHookLogs(); !strings.Contains(logs, "initializing empty database") {
		t.Errorf("the hook's log (streamed by Helm) does not say it initialized the database:\n%s", logs)
	}
	installed := s.assertAppReady()
	s.assertNoHookObjects("after install")

	// 2. An upgrade whose migrations ConfigMap has one more file: applied before the new pods
	// roll out.
	if _, _, err := s.upgrade(s.values("migrations-v5", "schemahook.config.updateSchema=true"), true); err != nil {
		t.Fatalf("helm upgrade adding migration 5: %v", err)
	}
	s.assertSchema(5, tablesV5, nil)
	if logs := s.takeHookLogs(); !strings.Contains(logs, "upgrading schema") {
		t.Errorf("the hook's log does not say it upgraded the schema:\n%s", logs)
	}
	upgraded := s.assertAppReady()
	if slices.Equal(podUIDs(installed), podUIDs(upgraded)) {
		t.Error("the app pods were not replaced by the upgrade that changed their migrations")
	}
	s.assertNoHookObjects("after the upgrade adding a migration")

	// The same upgrade again: nothing pending. The hook still runs (it always does with
	// updateSchema on, as on every Argo CD sync), quickly, and writes nothing.
	rows := s.rowVersions()
	_, took, err := s.upgrade(s.values("migrations-v5", "schemahook.config.updateSchema=true"), true)
	if err != nil {
		t.Fatalf("helm upgrade with nothing pending: %v", err)
	}
	t.Logf("no-op upgrade (hook Job included) took %s", took.Round(10*time.Millisecond))
	if took > 60*time.Second {
		t.Errorf("the upgrade with nothing pending took %s", took)
	}
	if logs := s.takeHookLogs(); !strings.Contains(logs, "schema is current") {
		t.Errorf("the hook's log does not say the schema was current:\n%s", logs)
	}
	if after := s.rowVersions(); !slices.Equal(rows, after) {
		t.Errorf("the no-op upgrade wrote to the version tables:\nbefore %v\nafter  %v", rows, after)
	}
	s.assertSchema(5, tablesV5, nil)
	if again := s.assertAppReady(); !slices.Equal(podUIDs(upgraded), podUIDs(again)) {
		t.Errorf("the no-op upgrade replaced the app pods: %v → %v", podUIDs(upgraded), podUIDs(again))
	}
	s.assertNoHookObjects("after the upgrade with nothing pending")

	// 6. `helm test`: the test pod runs `schemahook check` and is removed once it passes.
	tested, err := s.helmTest()
	if err != nil {
		t.Fatalf("helm test: %v", err)
	}
	ran := false
	for _, h := range tested.Hooks {
		if slices.Contains(h.Events, release.HookTest) {
			ran = true
			if h.LastRun.Phase != release.HookPhaseSucceeded {
				t.Errorf("test hook %s: phase %s", h.Name, h.LastRun.Phase)
			}
		}
	}
	if !ran {
		t.Error("helm test ran no test hook")
	}
	if logs := s.takeHookLogs(); !strings.Contains(logs, "schema is current") {
		t.Errorf("the test pod's log does not say the schema is current:\n%s", logs)
	}
	s.assertNoHookObjects("after helm test")

	// Every kind of pod was created, so Pod Security admitted it (the end-of-test check fails on
	// any FailedCreate event or Pod Security warning).
	s.assertCreated("Job", schemaUpdateName)
	s.assertCreated("ReplicaSet", deploymentName)
	s.assertCreated("Pod", testPodName)
}
