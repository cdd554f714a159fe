package e2e

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// appSelector selects the example app's Deployment (and its pods) for schemaUpdate.stopWorkloads.
const appSelector = "app.kubernetes.io/instance=" + releaseName + ",app.kubernetes.io/component=app"

// stopValues are the sets that turn stopWorkloads on for the app.
var stopValues = []string{
	"schemahook.config.updateSchema=true",
	"schemahook.schemaUpdate.stopWorkloads.enabled=true",
	"schemahook.schemaUpdate.stopWorkloads.selector=" + strings.ReplaceAll(appSelector, ",", `\,`),
	// The wait for the stopped pods counts against the update's timeout: the chart requires it
	// below that timeout (the suite's 60s).
	"schemahook.schemaUpdate.stopWorkloads.timeout=40s",
}

// podWatch polls the app's pods (terminating ones included) in the background and remembers when
// each pod UID was last seen, and the replicas of the Deployment it saw.
type podWatch struct {
	mu       sync.Mutex
	lastSeen map[string]time.Time // pod UID → last time it existed
	replicas []int32              // distinct successive spec.replicas values seen
	stop     context.CancelFunc
	done     chan struct{}
}

func (s *suite) watchApp() *podWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &podWatch{lastSeen: map[string]time.Time{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			now := time.Now()
			if l, err := s.kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: appSelector}); err == nil {
				w.mu.Lock()
				for _, p := range l.Items {
					w.lastSeen[string(p.UID)] = now
				}
				w.mu.Unlock()
			}
			if d, err := s.kube.AppsV1().Deployments(s.ns).Get(ctx, deploymentName, metav1.GetOptions{}); err == nil && d.Spec.Replicas != nil {
				w.mu.Lock()
				if n := len(w.replicas); n == 0 || w.replicas[n-1] != *d.Spec.Replicas {
					w.replicas = append(w.replicas, *d.Spec.Replicas)
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

// finish stops the watch and returns what it saw.
func (w *podWatch) finish() (map[string]time.Time, []int32) {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastSeen, w.replicas
}

// appliedAt is when schemahook_history recorded version v.
func (s *suite) appliedAt(v int) time.Time {
	s.t.Helper()
	var at time.Time
	if err := s.db.QueryRow(context.Background(), "SELECT applied_at FROM schemahook_history WHERE version = $1", v).Scan(&at); err != nil {
		s.t.Fatalf("reading applied_at of version %d: %v", v, err)
	}
	return at
}

func templateHashes(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Labels["pod-template-hash"])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestStopWorkloadsDuringUpgrade: with schemaUpdate.stopWorkloads, the pre-upgrade hook scales the
// app to 0 and waits until its pods are gone before it migrates; the upgrade then brings the app
// back at its manifest's replicas on the new schema, and the hook's RBAC objects are gone. A
// following no-op upgrade does not touch the app.
func TestStopWorkloadsDuringUpgrade(t *testing.T) {
	s := setup(t)
	s.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	s.migrationsConfigMap("migrations-v5", exampleMigrations(t, 5))

	if _, err := s.install(s.values("migrations-v4", "schemahook.config.updateSchema=true", "replicaCount=2"), true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	s.assertSchema(4, tablesV4, nil)
	serving := s.assertAppReady()
	s.takeHookLogs()

	w := s.watchApp()
	if _, _, err := s.upgrade(s.values("migrations-v5", append(slices.Clone(stopValues), "replicaCount=2")...), true); err != nil {
		w.finish()
		t.Fatalf("helm upgrade with stopWorkloads: %v\nhook logs:\n%s", err, s.takeHookLogs())
	}
	lastSeen, replicas := w.finish()
	s.assertSchema(5, tablesV4, nil)
	applied := s.appliedAt(5)

	// Every old pod was gone before the migration ran.
	for _, p := range serving {
		seen, ok := lastSeen[string(p.UID)]
		if !ok {
			t.Errorf("old pod %s was never seen by the watch", p.Name)
			continue
		}
		if !seen.Before(applied) {
			t.Errorf("old pod %s still existed at %s, after version 5 was applied at %s", p.Name, seen.Format(time.RFC3339Nano), applied.Format(time.RFC3339Nano))
		} else {
			t.Logf("old pod %s last seen %s before the migration", p.Name, applied.Sub(seen).Round(time.Millisecond))
		}
	}
	if !slices.Contains(replicas, 0) || replicas[len(replicas)-1] != 2 {
		t.Errorf("Deployment replicas went %v, want 2 → 0 → 2", replicas)
	}

	// Back at the manifest's replicas, new pods, Ready.
	now := s.assertAppReady()
	if len(now) != 2 {
		t.Errorf("%d app pods after the upgrade, want 2", len(now))
	}
	for _, p := range now {
		if slices.Contains(podUIDs(serving), string(p.UID)) {
			t.Errorf("pod %s survived the stop", p.Name)
		}
	}
	logs := s.takeHookLogs()
	for _, want := range []string{"migrations pending: stopping workloads first", "scaled workload to 0 before migrating", "Deployment/" + deploymentName, "workloads stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the hook's log does not say %q:\n%s", want, logs)
		}
	}
	s.assertNoHookObjects("after the upgrade with stopWorkloads")

	// A no-op upgrade (nothing pending) leaves the app alone.
	w = s.watchApp()
	if _, _, err := s.upgrade(s.values("migrations-v5", append(slices.Clone(stopValues), "replicaCount=2")...), true); err != nil {
		w.finish()
		t.Fatalf("no-op helm upgrade: %v", err)
	}
	_, replicas = w.finish()
	if !slices.Equal(replicas, []int32{2}) {
		t.Errorf("a no-op upgrade changed the replicas: %v", replicas)
	}
	if still := s.assertAppReady(); !slices.Equal(podUIDs(now), podUIDs(still)) {
		t.Errorf("a no-op upgrade replaced the app pods: %v → %v", podUIDs(now), podUIDs(still))
	}
	if logs := s.takeHookLogs(); strings.Contains(logs, "stopping workloads") || !strings.Contains(logs, "schema is current") {
		t.Errorf("no-op hook log:\n%s", logs)
	}
	s.assertNoHookObjects("after the no-op upgrade")
}

// TestStopWorkloadsRestoredOnFailure: a failing migration with stopWorkloads. The hook stops the
// app, the migration fails, and the hook scales the app back to its previous replicas before it
// exits: the release fails, the database stays at the previous version, clean, and the old
// revision's pods are back and Ready.
func TestStopWorkloadsRestoredOnFailure(t *testing.T) {
	s := setup(t)
	s.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	s.migrationsConfigMap("migrations-v5-failing", union(exampleMigrations(t, 4), testdataMigrations(t, "failing")))

	if _, err := s.install(s.values("migrations-v4", "schemahook.config.updateSchema=true", "replicaCount=2"), true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	serving := s.assertAppReady()
	rows := s.rowVersions()
	s.takeHookLogs()

	w := s.watchApp()
	_, _, err := s.upgrade(s.values("migrations-v5-failing", append(slices.Clone(stopValues), "replicaCount=2")...), true)
	if err == nil {
		w.finish()
		t.Fatal("helm upgrade with a failing migration succeeded")
	}
	s.assertFailedUpgradeChangedNothing(rows)

	// Replicas back at 2 (the hook restored them; Helm never got to the Deployment), the old
	// revision's pods running again.
	back := s.assertAppReady()
	lastSeen, replicas := w.finish()
	if !slices.Equal(replicas, []int32{2, 0, 2}) {
		t.Errorf("Deployment replicas went %v, want [2 0 2]", replicas)
	}
	for _, p := range serving {
		if _, ok := lastSeen[string(p.UID)]; !ok {
			t.Errorf("old pod %s never seen", p.Name)
		}
	}
	if len(back) != 2 || !slices.Equal(templateHashes(serving), templateHashes(back)) {
		t.Errorf("after the restore: %d pods of templates %v, want 2 of the old template %v", len(back), templateHashes(back), templateHashes(serving))
	}
	if d := s.deployment(); migrationsVolume(d) != "migrations-v4" {
		t.Errorf("the Deployment now mounts %s, want migrations-v4", migrationsVolume(d))
	}

	ctx := ctxT(t, 30*time.Second)
	pods := s.jobPods(ctx, schemaUpdateName)
	if len(pods) != 1 {
		t.Fatalf("the failed Job has %d pods, want 1", len(pods))
	}
	if st := pods[0].Status.ContainerStatuses; len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 3 {
		t.Errorf("the hook pod did not exit 3 (a migration failed): %s", podState(pods[0]))
	}
	log := s.podLog(pods[0].Name, "schema-update")
	for _, want := range []string{"scaled workload to 0 before migrating", "SQLSTATE 42P01", "restoring the stopped workloads", "restored workload replicas"} {
		if !strings.Contains(log, want) {
			t.Errorf("the failed hook's log does not say %q:\n%s", want, log)
		}
	}
}
