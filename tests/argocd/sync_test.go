package argocd

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/gitops-engine/pkg/health"
	"github.com/argoproj/gitops-engine/pkg/sync/common"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var (
	tablesV4 = []string{"accounts", "projects"}
	tablesV5 = []string{"accounts", "projects", "account_settings"}
)

const updateSchema = "schemahook.config.updateSchema=true"

// (a) the first sync initializes an empty database; (b) a second, unchanged sync runs the hook
// again (Argo CD runs PreSync hooks on every sync) as a no-op: no row written, the same pods.
func TestArgoCDFirstAndRepeatedSync(t *testing.T) {
	w := setup(t)
	w.migrationsConfigMap("migrations-v5", exampleMigrations(t, 5))
	a := w.newApplication()
	vals := w.values("migrations-v5", updateSchema)

	first := a.sync(vals)
	wantPhase(t, first, common.OperationSucceeded)
	if log := first.jobLogs[schemaUpdateName]; !strings.Contains(log, "initializing empty database") {
		t.Errorf("the first sync's hook did not initialize the database:\n%s", log)
	}
	w.assertSchema(5, tablesV5, nil)
	a.waitHealth(vals, health.HealthStatusHealthy, 2*time.Minute)
	pods := podUIDs(w.appPods(ctxT(t, 30*time.Second)))
	rows := w.rowVersions()
	w.assertHookObjects("after the first sync", nil)

	second := a.sync(vals)
	wantPhase(t, second, common.OperationSucceeded)
	log := second.jobLogs[schemaUpdateName]
	if !strings.Contains(log, "schema is current") || strings.Contains(log, "schema updated") || strings.Contains(log, "initializing") {
		t.Errorf("the second sync's hook was not a no-op:\n%s", log)
	}
	t.Logf("no-op sync: %s, %d passes, %d wave delays of %s (first sync: %s)", second.took.Round(10*time.Millisecond),
		second.passes, second.delays, syncWaveDelay, first.took.Round(10*time.Millisecond))
	// One PreSync wave, then the Sync phase: one 2 s wave delay, not one per hook weight.
	if second.delays != 1 {
		t.Errorf("the no-op sync waited after %d sync waves, want 1 (one PreSync wave)", second.delays)
	}
	if second.took > 20*time.Second {
		t.Errorf("the no-op sync took %s", second.took)
	}
	w.assertSchema(5, tablesV5, nil)
	if after := w.rowVersions(); !slices.Equal(rows, after) {
		t.Errorf("the no-op sync wrote to the version tables:\nbefore %v\nafter  %v", rows, after)
	}
	if status, detail := a.health(vals); status != health.HealthStatusHealthy {
		t.Errorf("after the no-op sync the Application is %s: %v", status, detail)
	}
	if again := podUIDs(w.appPods(ctxT(t, 30*time.Second))); !slices.Equal(pods, again) {
		t.Errorf("the no-op sync replaced the app pods: %v → %v", pods, again)
	}
	w.assertHookObjects("after the no-op sync", nil)
}

// (c) a failing migration fails the operation at PreSync: the database stays at the previous
// version, clean; the old pods serve; the failed Job is kept, and nothing else of the hook;
// (f) a following sync with updateSchema=false leaves no hook ConfigMap or Secret either; then
// the fixed migration syncs without a name collision.
func TestArgoCDFailedSync(t *testing.T) { failedSync(t, false) }

// (g) the same with the inline password, whose hook Secret must not outlive the failed sync.
func TestArgoCDFailedSyncInlinePassword(t *testing.T) { failedSync(t, true) }

func failedSync(t *testing.T, inline bool) {
	w := setup(t)
	v4 := exampleMigrations(t, 4)
	w.migrationsConfigMap("migrations-v4", v4)
	w.migrationsConfigMap("migrations-v5-failing", union(v4, e2eMigrations(t, "failing")))
	w.migrationsConfigMap("migrations-v5-fixed", union(v4, e2eMigrations(t, "fixed")))
	var extra []string
	if inline {
		extra = w.inlinePassword()
	}
	with := func(cm string, sets ...string) map[string]any { return w.values(cm, append(sets, extra...)...) }
	a := w.newApplication()

	good := with("migrations-v4", updateSchema)
	wantPhase(t, a.sync(good), common.OperationSucceeded)
	a.waitHealth(good, health.HealthStatusHealthy, 2*time.Minute)
	w.assertHookObjects("after the first sync", nil)
	pods := podUIDs(w.appPods(ctxT(t, 30*time.Second)))
	rows := w.rowVersions()

	failed := a.sync(with("migrations-v5-failing", updateSchema))
	wantPhase(t, failed, common.OperationFailed)
	if !slices.ContainsFunc(failed.results, func(r common.ResourceSyncResult) bool {
		return r.ResourceKey.Kind == "Job" && r.ResourceKey.Name == schemaUpdateName &&
			r.SyncPhase == common.SyncPhasePreSync && r.HookPhase == common.OperationFailed
	}) {
		t.Errorf("the operation did not fail at the PreSync Job %s:\n%s", schemaUpdateName, resultLines(failed.results))
	}
	if slices.ContainsFunc(failed.results, func(r common.ResourceSyncResult) bool { return r.SyncPhase == common.SyncPhaseSync }) {
		t.Errorf("the failed operation went on to the Sync phase:\n%s", resultLines(failed.results))
	}
	if log := failed.jobLogs[schemaUpdateName]; !strings.Contains(log, "000005_audit_log.up.sql") || !strings.Contains(log, "still at version 4") {
		t.Errorf("the failed hook's log does not say which file failed and where the database is:\n%s", log)
	}
	w.assertSchema(4, tablesV4, []string{"audit_log"})
	if after := w.rowVersions(); !slices.Equal(rows, after) {
		t.Errorf("the failed sync wrote to the version tables:\nbefore %v\nafter  %v", rows, after)
	}
	if now := readyUIDs(w.appPods(ctxT(t, 30*time.Second))); !slices.Equal(pods, now) {
		t.Errorf("the old pods do not serve after the failed sync: ready %v, before %v", now, pods)
	}
	w.assertJobFailed(schemaUpdateName)
	// The failed Job stays for `kubectl logs`; its ConfigMap and (inline password) Secret are
	// HookFailed too and go with the failed operation.
	w.assertHookObjects("after the failed sync", []string{"Job/" + schemaUpdateName})

	noUpdate := with("migrations-v4")
	wantPhase(t, a.sync(noUpdate), common.OperationSucceeded)
	w.assertHookObjects("after a sync with updateSchema=false", []string{"Job/" + schemaUpdateName})
	w.assertSchema(4, tablesV4, []string{"audit_log"})

	fixed := with("migrations-v5-fixed", updateSchema)
	op := a.sync(fixed)
	wantPhase(t, op, common.OperationSucceeded)
	w.assertSchema(5, append(slices.Clone(tablesV4), "audit_log"), nil)
	a.waitHealth(fixed, health.HealthStatusHealthy, 2*time.Minute)
	w.assertHookObjects("after the fixed sync", nil)
}

// (d) updateSchema=false with a pending migration: the sync succeeds at once; the new pods wait
// in their gate, the old ones serve, and the Application is Progressing, not Healthy, until the
// Deployment's progressDeadlineSeconds makes it Degraded.
func TestArgoCDPendingWithoutUpdate(t *testing.T) {
	w := setup(t)
	w.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	w.migrationsConfigMap("migrations-v5", exampleMigrations(t, 5))
	a := w.newApplication()
	v4 := w.values("migrations-v4", updateSchema)
	wantPhase(t, a.sync(v4), common.OperationSucceeded)
	a.waitHealth(v4, health.HealthStatusHealthy, 2*time.Minute)
	old := readyUIDs(w.appPods(ctxT(t, 30*time.Second)))

	v5 := w.values("migrations-v5")
	op := a.sync(v5)
	wantPhase(t, op, common.OperationSucceeded)
	w.assertSchema(4, tablesV4, []string{"account_settings"})
	gated := w.waitGate(old, func(p corev1.Pod, log string) bool {
		return strings.Contains(log, "waiting for the schema") && !podReady(p)
	})
	time.Sleep(10 * time.Second) // the gate keeps holding
	ctx := ctxT(t, 30*time.Second)
	if p, err := w.kube.CoreV1().Pods(w.ns).Get(ctx, gated, metav1.GetOptions{}); err != nil || podReady(*p) {
		t.Errorf("the gated pod %s became ready on an old schema (%v)", gated, err)
	}
	if now := readyUIDs(w.appPods(ctx)); !slices.Equal(old, now) {
		t.Errorf("the old pods do not serve while the new ones wait: ready %v, before %v", now, old)
	}
	status, detail := a.health(v5)
	t.Logf("Application health with gated pods: %s\n  %s", status, strings.Join(detail, "\n  "))
	if status != health.HealthStatusProgressing {
		t.Errorf("the Application is %s while its new pods wait for the schema, want Progressing", status)
	}

	// Degraded comes only from the Deployment's progressDeadlineSeconds (600 s unless the chart
	// sets it): with a short one, the held rollout turns the Application Degraded.
	patch := []byte(`{"spec":{"progressDeadlineSeconds":10}}`)
	if _, err := w.kube.AppsV1().Deployments(w.ns).Patch(ctx, deploymentName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("setting progressDeadlineSeconds: %v", err)
	}
	took := a.waitHealth(v5, health.HealthStatusDegraded, time.Minute)
	t.Logf("Application Degraded %s after progressDeadlineSeconds was set to 10", took.Round(100*time.Millisecond))
}

// (e) an older revision after a newer schema: the update Job refuses it and names
// config.allowDowngrade; with it the sync downgrades; with updateSchema=false the old pods'
// gate refuses at once (exit 5).
func TestArgoCDOlderRevision(t *testing.T) {
	w := setup(t)
	w.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	w.migrationsConfigMap("migrations-v5", exampleMigrations(t, 5))
	a := w.newApplication()
	v5 := w.values("migrations-v5", updateSchema)
	wantPhase(t, a.sync(v5), common.OperationSucceeded)
	a.waitHealth(v5, health.HealthStatusHealthy, 2*time.Minute)
	pods := readyUIDs(w.appPods(ctxT(t, 30*time.Second)))

	refused := a.sync(w.values("migrations-v4", updateSchema))
	wantPhase(t, refused, common.OperationFailed)
	if log := refused.jobLogs[schemaUpdateName]; !strings.Contains(log, "newer") || !strings.Contains(log, "config.allowDowngrade") {
		t.Errorf("the refusal does not name config.allowDowngrade:\n%s", log)
	}
	w.assertSchema(5, tablesV5, nil)
	if now := readyUIDs(w.appPods(ctxT(t, 30*time.Second))); !slices.Equal(pods, now) {
		t.Errorf("the refused sync touched the serving pods: ready %v, before %v", now, pods)
	}

	down := w.values("migrations-v4", updateSchema, "schemahook.config.allowDowngrade=true")
	op := a.sync(down)
	wantPhase(t, op, common.OperationSucceeded)
	if log := op.jobLogs[schemaUpdateName]; !strings.Contains(log, "schema downgraded") {
		t.Errorf("the downgrade sync's hook did not downgrade:\n%s", log)
	}
	w.assertSchema(4, tablesV4, []string{"account_settings"})
	a.waitHealth(down, health.HealthStatusHealthy, 2*time.Minute)

	wantPhase(t, a.sync(v5), common.OperationSucceeded)
	w.assertSchema(5, tablesV5, nil)
	a.waitHealth(v5, health.HealthStatusHealthy, 2*time.Minute)
	serving := readyUIDs(w.appPods(ctxT(t, 30*time.Second)))

	stale := w.values("migrations-v4")
	wantPhase(t, a.sync(stale), common.OperationSucceeded)
	start := time.Now()
	w.waitGate(serving, func(p corev1.Pod, _ string) bool {
		for _, cs := range p.Status.InitContainerStatuses {
			if cs.Name != gateContainer {
				continue
			}
			for _, term := range []*corev1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
				if term != nil && term.ExitCode == 5 {
					return true
				}
			}
		}
		return false
	})
	if took := time.Since(start); took > time.Minute {
		t.Errorf("the old pod's gate took %s to refuse the newer schema", took)
	}
	w.assertSchema(5, tablesV5, nil)
	if now := readyUIDs(w.appPods(ctxT(t, 30*time.Second))); !slices.Equal(serving, now) {
		t.Errorf("the pods on the newer schema stopped serving: ready %v, before %v", now, serving)
	}
}

// Assertions -----------------------------------------------------------------------------------------

func wantPhase(t *testing.T, op operation, want common.OperationPhase) {
	t.Helper()
	if op.phase != want {
		t.Fatalf("sync operation %s, want %s:\n%s", op, want, resultLines(op.results))
	}
}

// assertHookObjects checks which hook Jobs, ConfigMaps and Secrets are in the namespace. The
// engine's deletes are issued by the time the operation ends, but a Job stays listed until the
// garbage collector has removed its pods, so this waits up to 30 s for the set to settle.
func (w *world) assertHookObjects(when string, want []string) {
	w.t.Helper()
	ctx := ctxT(w.t, 30*time.Second)
	for {
		got := w.hookObjects(ctx)
		if slices.Equal(got, want) {
			return
		}
		select {
		case <-ctx.Done():
			w.t.Errorf("%s: hook objects %v, want %v (waited 30 s)", when, got, want)
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (w *world) assertJobFailed(name string) {
	w.t.Helper()
	j, err := w.kube.BatchV1().Jobs(w.ns).Get(ctxT(w.t, 30*time.Second), name, metav1.GetOptions{})
	if err != nil {
		w.t.Errorf("the failed Job %s is not kept: %v", name, err)
		return
	}
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return
		}
	}
	w.t.Errorf("Job %s is kept but not failed: %+v", name, j.Status)
}

// waitGate waits for an app pod other than those in old whose gate container's log and state
// satisfy cond, and returns its name.
func (w *world) waitGate(old []string, cond func(p corev1.Pod, gateLog string) bool) string {
	w.t.Helper()
	var name string
	w.waitFor("a new app pod's gate", 2*time.Minute, func(ctx context.Context) (bool, string) {
		var states []string
		for _, p := range w.appPods(ctx) {
			if slices.Contains(old, string(p.UID)) {
				continue
			}
			states = append(states, p.Name+": "+podState(p))
			started := false
			for _, cs := range p.Status.InitContainerStatuses {
				if cs.Name == gateContainer && (cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil) {
					started = true
				}
			}
			if !started {
				continue
			}
			b, err := w.kube.CoreV1().Pods(w.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: gateContainer}).DoRaw(ctx)
			log := string(b)
			if err != nil {
				// A gate that exited and restarts: the previous run's log says why.
				b, _ = w.kube.CoreV1().Pods(w.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: gateContainer, Previous: true}).DoRaw(ctx)
				log = string(b)
			}
			if cond(p, log) {
				w.t.Logf("pod %s: %s; gate log:\n%s", p.Name, podState(p), strings.TrimSpace(log))
				name = p.Name
				return true, ""
			}
		}
		return false, strings.Join(states, " | ")
	})
	return name
}
