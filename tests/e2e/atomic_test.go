package e2e

import (
	"slices"
	"testing"

	"helm.sh/helm/v3/pkg/release"
)

// twoMigrations are migrations 5 and 6 on top of the example schema: 5 creates a table, 6
// fails (its table does not exist) unless fixed.
func twoMigrations(fixed bool) map[string]string {
	six := "ALTER TABLE no_such_table ADD COLUMN note text;\n"
	if fixed {
		six = "ALTER TABLE atomic_first ADD COLUMN note text;\n"
	}
	return map[string]string{
		"000005_atomic_first.up.sql":    "CREATE TABLE atomic_first (id bigint PRIMARY KEY);\n",
		"000005_atomic_first.down.sql":  "DROP TABLE atomic_first;\n",
		"000006_atomic_second.up.sql":   six,
		"000006_atomic_second.down.sql": "ALTER TABLE atomic_first DROP COLUMN note;\n",
	}
}

// TestAtomicUpgradeRollsBackCleanly: an upgrade with two pending migrations, the second
// failing, run with `helm upgrade --atomic` (Helm 4: --rollback-on-failure). The release's
// migrations commit all or nothing (schemaUpdate.commit=release, the default), so the database
// is still at the previous release's version; Helm's automatic rollback runs the previous
// revision's guard, which passes, and the previous revision is deployed again. The next
// upgrade, with the migration fixed, goes through.
func TestAtomicUpgradeRollsBackCleanly(t *testing.T) {
	helmMajors(t, testAtomicUpgradeRollsBackCleanly)
}

func testAtomicUpgradeRollsBackCleanly(t *testing.T, s *suite) {
	s.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	s.migrationsConfigMap("migrations-v6-failing", union(exampleMigrations(t, 4), twoMigrations(false)))
	s.migrationsConfigMap("migrations-v6-fixed", union(exampleMigrations(t, 4), twoMigrations(true)))
	if _, err := s.install(s.values("migrations-v4", "schemahook.config.updateSchema=true"), true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	rows := s.rowVersions()
	serving := s.assertAppReady()
	s.takeHookLogs()
	if _, _, err := s.upgradeAtomic(s.values("migrations-v6-failing", "schemahook.config.updateSchema=true")); err == nil {
		t.Fatal("the upgrade with a failing migration 6 succeeded")
	}
	logs := s.takeHookLogs()
	s.assertLastHookLine(logs, schemaUpdateName, "Error: migration 000006_atomic_second.up.sql failed at line 1 (SQLSTATE 42P01)")
	// Revision 2 failed; Helm rolled back to 1 as revision 3, whose guard found the database
	// at its own head.
	if rel := s.lastRelease(); rel.Version != 3 || rel.Info.Status != release.StatusDeployed {
		t.Fatalf("release revision %d is %s, want revision 3 (the rollback to 1) deployed", rel.Version, rel.Info.Status)
	}
	s.assertSchema(4, tablesV4, []string{"atomic_first"})
	if after := s.rowVersions(); !slices.Equal(rows, after) {
		t.Errorf("the failed upgrade wrote to the version tables:\nbefore %v\nafter  %v", rows, after)
	}
	if still := s.assertAppReady(); !slices.Equal(podUIDs(serving), podUIDs(still)) {
		t.Errorf("the app pods changed: %v → %v", podUIDs(serving), podUIDs(still))
	}
	// Nothing blocks the next upgrade.
	if _, _, err := s.upgrade(s.values("migrations-v6-fixed", "schemahook.config.updateSchema=true"), true); err != nil {
		t.Fatalf("helm upgrade with migration 6 fixed: %v", err)
	}
	if rel := s.lastRelease(); rel.Version != 4 || rel.Info.Status != release.StatusDeployed {
		t.Errorf("release revision %d is %s, want revision 4 deployed", rel.Version, rel.Info.Status)
	}
	s.assertSchema(6, append(slices.Clone(tablesV4), "atomic_first"), nil)
	s.assertAppReady()
	s.assertNoHookObjects("after the fixed upgrade")
}

// TestAtomicUpgradeRefusedRollback: the same failing upgrade with schemaUpdate.commit=migration
// commits migration 5 before 6 fails. Helm's automatic rollback then runs the previous
// revision's guard, which rightly refuses the now newer database, and the release is left
// pending-rollback: upgrades are refused until it is cleared. The way out the chart README
// documents: `helm rollback <release> <last deployed revision> --no-hooks` (the old pods never
// stopped serving), then the upgrade with the migration fixed, which continues from 5.
func TestAtomicUpgradeRefusedRollback(t *testing.T) { helmMajors(t, testAtomicUpgradeRefusedRollback) }

func testAtomicUpgradeRefusedRollback(t *testing.T, s *suite) {
	s.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	s.migrationsConfigMap("migrations-v6-failing", union(exampleMigrations(t, 4), twoMigrations(false)))
	s.migrationsConfigMap("migrations-v6-fixed", union(exampleMigrations(t, 4), twoMigrations(true)))
	perMigration := []string{"schemahook.config.updateSchema=true", "schemahook.schemaUpdate.commit=migration"}
	if _, err := s.install(s.values("migrations-v4", perMigration...), true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	if _, _, err := s.upgradeAtomic(s.values("migrations-v6-failing", perMigration...)); err == nil {
		t.Fatal("the upgrade with a failing migration 6 succeeded")
	}
	s.assertSchema(5, append(slices.Clone(tablesV4), "atomic_first"), nil)
	if rel := s.lastRelease(); rel.Version != 3 || rel.Info.Status != release.StatusPendingRollback {
		t.Fatalf("release revision %d is %s, want revision 3 pending-rollback", rel.Version, rel.Info.Status)
	}
	if _, _, err := s.upgrade(s.values("migrations-v6-fixed", perMigration...), true); err == nil {
		t.Fatal("an upgrade went through while the release was pending-rollback")
	}
	if rel := s.lastRelease(); rel.Version != 3 || rel.Info.Status != release.StatusPendingRollback {
		t.Fatalf("after the refused upgrade, release revision %d is %s, want revision 3 still pending-rollback", rel.Version, rel.Info.Status)
	}
	// The way out: roll back to the deployed revision 1 without its guard, then roll forward.
	if err := s.rollbackNoHooks(1); err != nil {
		t.Fatalf("helm rollback 1 --no-hooks: %v", err)
	}
	if rel := s.lastRelease(); rel.Version != 4 || rel.Info.Status != release.StatusDeployed {
		t.Fatalf("release revision %d is %s, want revision 4 deployed", rel.Version, rel.Info.Status)
	}
	if _, _, err := s.upgrade(s.values("migrations-v6-fixed", perMigration...), true); err != nil {
		t.Fatalf("helm upgrade with migration 6 fixed: %v", err)
	}
	s.assertSchema(6, append(slices.Clone(tablesV4), "atomic_first"), nil)
	s.assertAppReady()
}
