package chart_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/releaseutil"
	batchv1 "k8s.io/api/batch/v1"
)

// TestRollbackGuardHook: with the guard on (the default), whatever config.updateSchema says, Helm
// parses a pre-rollback hook Job named <fullname>-rollback-guard that runs `schemahook guard`, and
// everything it reads (the hook ConfigMap, and the hook Secret with an inline password) is a hook
// of the pre-rollback event too, run before it.
func TestRollbackGuardHook(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			p := c.prefix
			host := p + "database.host=pg.example"
			for name, sets := range map[string][]string{
				"defaults":                     {host},
				"inline password":              {host, p + "database.password=pw"},
				"updateSchema+inline password": {host, p + "config.updateSchema=true", p + "database.password=pw"},
				"updateSchema+existingSecret":  {host, p + "config.updateSchema=true", p + "database.existingSecret=pg-credentials"},
			} {
				for _, upgrade := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/%s/upgrade=%t", c.name, name, upgrade), func(t *testing.T) {
						rel, err := render(t, sdk, c.load(t), vals(t, sets...), upgrade)
						if err != nil {
							t.Fatal(err)
						}
						objs := objects(t, rel)
						guard, ok := find(objs, "Job", rollbackGuardName)
						if !ok || guard.Hook == nil {
							t.Fatalf("no hook Job %s; hooks: %v", rollbackGuardName, keys(hookSet(rel)))
						}
						if !slices.Equal(guard.Hook.Events, rollbackGuardEvents) {
							t.Errorf("events %v, want only %v", guard.Hook.Events, rollbackGuardEvents)
						}
						if guard.Hook.Weight != 0 || annotations(t, guard)["helm.sh/hook-weight"] != "0" {
							t.Errorf("weight %d (annotation %q), want an explicit \"0\"", guard.Hook.Weight, annotations(t, guard)["helm.sh/hook-weight"])
						}
						if !sameSet(guard.Hook.DeletePolicies, hookDeletePolicies) {
							t.Errorf("delete policies %v, want %v", guard.Hook.DeletePolicies, hookDeletePolicies)
						}
						// What runs at pre-rollback, in Helm's order: the supporting objects, then the guard.
						var order []string
						for _, h := range hooksFor(rel, evPreRollback) {
							order = append(order, h.Kind+"/"+h.Name)
						}
						if len(order) < 2 || order[len(order)-1] != "Job/"+rollbackGuardName {
							t.Errorf("pre-rollback runs %v, want the supporting objects and then the guard Job", order)
						}
						ctr := guard.Obj.(*batchv1.Job).Spec.Template.Spec.Containers[0]
						for _, ef := range ctr.EnvFrom {
							checkSupportingHook(t, objs, guard, "ConfigMap", ef.ConfigMapRef.Name)
						}
						if e, ok := envNamed(ctr, "PGPASSWORD"); ok {
							if ref := e.ValueFrom.SecretKeyRef; ref.Name != "pg-credentials" {
								checkSupportingHook(t, objs, guard, "Secret", ref.Name)
							}
						}
					})
				}
			}
		}
	})
}

// TestRollbackGuardOffRendersNothing: rollbackGuard.enabled=false leaves no trace of the guard:
// no Job, no pre-rollback event on anything, and, without the schema update, no hook ConfigMap or
// Secret either.
func TestRollbackGuardOffRendersNothing(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			p := c.prefix
			off := []string{p + "database.host=pg.example", p + "database.password=pw", p + "rollbackGuard.enabled=false", p + "config.allowDowngrade=true"}
			for _, updateSchema := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/updateSchema=%t", c.name, updateSchema), func(t *testing.T) {
					rel := mustRender(t, sdk, c.load(t), vals(t, append(slices.Clone(off), p+"config.updateSchema="+strconv.FormatBool(updateSchema))...))
					for _, h := range rel.Hooks {
						if slices.Contains(h.Events, evPreRollback) {
							t.Errorf("%s/%s is a pre-rollback hook", h.Kind, h.Name)
						}
					}
					for _, o := range objects(t, rel) {
						if strings.Contains(o.Name, "rollback-guard") {
							t.Errorf("%s rendered", o)
						}
						for k, v := range annotations(t, o) {
							if strings.Contains(v, "rollback") {
								t.Errorf("%s: annotation %s: %s", o, k, v)
							}
						}
						if o.Hook != nil && (o.Kind == "ConfigMap" || o.Kind == "Secret") && !updateSchema && !isMigrationsConfigMap(o) {
							t.Errorf("%s rendered, but no hook Job reads it", o)
						}
					}
				})
			}
		}
	})
}

// TestAllowDowngradeReachesBothJobs: config.allowDowngrade arrives as SCHEMAHOOK_ALLOW_DOWNGRADE,
// a value the binary's boolean flags parse, in the environment of each hook Job that renders:
// `update` (Argo CD rollbacks are syncs of an older revision, whose PreSync hook is this Job) and
// `guard` (helm rollback).
func TestAllowDowngradeReachesBothJobs(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			p := c.prefix
			for _, allow := range []string{"", "false", "true"} {
				for _, jobs := range []struct {
					sets  []string
					names []string
				}{
					{[]string{p + "config.updateSchema=true"}, []string{schemaUpdateName, rollbackGuardName}},
					{[]string{p + "config.updateSchema=true", p + "rollbackGuard.enabled=false"}, []string{schemaUpdateName}},
					{[]string{p + "config.updateSchema=false"}, []string{rollbackGuardName}},
				} {
					sets := append([]string{p + "database.host=pg.example"}, jobs.sets...)
					want := allow == "true"
					if allow != "" {
						sets = append(sets, p+"config.allowDowngrade="+allow)
					}
					t.Run(fmt.Sprintf("%s/allowDowngrade=%q/%v", c.name, allow, jobs.sets), func(t *testing.T) {
						objs := objects(t, mustRender(t, sdk, c.load(t), vals(t, sets...)))
						var got []string
						for _, pod := range pods(objs) {
							if pod.Owner.Kind != "Job" {
								continue
							}
							got = append(got, pod.Owner.Name)
							env := containerEnv(t, objs, pod, pod.Spec.Containers[0])
							v, ok := env["SCHEMAHOOK_ALLOW_DOWNGRADE"]
							b, err := strconv.ParseBool(v)
							if !ok || err != nil || b != want {
								t.Errorf("%s: SCHEMAHOOK_ALLOW_DOWNGRADE=%q (set %t), want %t", pod.Owner, v, ok, want)
							}
						}
						slices.Sort(got)
						if !slices.Equal(got, slices.Sorted(slices.Values(jobs.names))) {
							t.Errorf("Jobs %v, want %v", got, jobs.names)
						}
					})
				}
			}
		}
	})
}

// TestAllowDowngradeMustBeABoolean: a quoted "false" in a values file is a non-empty string, which
// a template's `if` takes for true; the schema must reject it rather than let the notes and the
// Jobs disagree about whether a downgrade may drop data.
func TestAllowDowngradeMustBeABoolean(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, v := range []any{"false", "true", 1, nil} {
			_, err := render(t, sdk, loadSchemahook(t), map[string]any{"config": map[string]any{"allowDowngrade": v}}, false)
			if v == nil {
				// null removes the key and the default (false) applies, as with any Helm value.
				if err != nil {
					t.Errorf("allowDowngrade: null rejected: %v", err)
				}
				continue
			}
			if err == nil || !strings.Contains(err.Error(), "/config/allowDowngrade") {
				t.Errorf("allowDowngrade: %#v: error %v, want the schema to ask for a boolean", v, err)
			}
		}
	})
}

// argoWave is the object's Argo CD sync wave (gitops-engine pkg/sync/syncwaves):
// argocd.argoproj.io/sync-wave if it parses, else the Helm hook weight.
func argoWave(t *testing.T, o object) int {
	t.Helper()
	if v, ok := annotations(t, o)["argocd.argoproj.io/sync-wave"]; ok {
		if w, err := strconv.Atoi(v); err == nil {
			return w
		}
	}
	return o.Hook.Weight
}

// argoPhases is how Argo CD reads a hook object (gitops-engine pkg/sync/hook/hook.go and
// hook/helm/type.go): its own argocd.argoproj.io/hook annotation if present, otherwise Helm's
// pre-install/pre-upgrade as PreSync and post-install/post-upgrade as PostSync. Any other Helm
// event (pre-rollback, test, …) maps to nothing: the object is a hook that never runs.
func argoPhases(ann map[string]string) []string {
	var phases []string
	if v, ok := ann["argocd.argoproj.io/hook"]; ok {
		for _, p := range strings.Split(v, ",") {
			phases = append(phases, strings.TrimSpace(p))
		}
		return phases
	}
	for _, e := range strings.Split(ann["helm.sh/hook"], ",") {
		switch strings.TrimSpace(e) {
		case "pre-install", "pre-upgrade":
			phases = append(phases, "PreSync")
		case "post-install", "post-upgrade":
			phases = append(phases, "PostSync")
		}
	}
	return slices.Compact(phases)
}

// TestArgoCDIgnoresTheGuard: under Argo CD the guard never runs, even when the user annotates the
// schema-update objects for Argo CD, and the objects it alone reads are not applied either; the
// schema-update objects keep running at PreSync, the Job in the last wave.
func TestArgoCDIgnoresTheGuard(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		argo := []string{
			"schemaUpdate.hookAnnotations.argocd\\.argoproj\\.io/hook=PreSync",
			"schemaUpdate.hookAnnotations.argocd\\.argoproj\\.io/hook-delete-policy=BeforeHookCreation\\,HookSucceeded",
		}
		updateObjects := []string{"ConfigMap/" + schemaUpdateName, "Job/" + schemaUpdateName, "Secret/" + schemaUpdateName}
		for name, tc := range map[string]struct {
			sets    []string
			presync []string
		}{
			"updateSchema off":                      {sets: []string{"database.password=pw"}},
			"updateSchema off, Argo CD annotations": {sets: append([]string{"database.password=pw"}, argo...)},
			"updateSchema on": {
				sets:    []string{"database.password=pw", "config.updateSchema=true"},
				presync: updateObjects,
			},
			"updateSchema on, Argo CD annotations": {
				sets:    append([]string{"database.password=pw", "config.updateSchema=true"}, argo...),
				presync: updateObjects,
			},
		} {
			t.Run(name, func(t *testing.T) {
				rel := mustRender(t, sdk, loadSchemahook(t), vals(t, append([]string{"database.host=pg.example"}, tc.sets...)...))
				var presync []string
				jobWave := 0
				var supportWaves []int
				for _, o := range objects(t, rel) {
					if o.Hook == nil {
						continue
					}
					phases := argoPhases(annotations(t, o))
					switch {
					case len(phases) == 0:
						continue
					case o.Name == rollbackGuardName || !slices.Equal(phases, []string{"PreSync"}):
						t.Errorf("%s runs in Argo CD phases %v", o, phases)
					}
					presync = append(presync, o.String())
					if o.Kind == "Job" {
						jobWave = argoWave(t, o)
					} else {
						supportWaves = append(supportWaves, argoWave(t, o))
						// Inside a wave Argo CD creates kind after kind in Helm's install order, each
						// kind before the next (gitops-engine's syncTasks.Less and runTasks).
						if i := slices.Index(releaseutil.InstallOrder, o.Kind); i < 0 || i >= slices.Index(releaseutil.InstallOrder, "Job") {
							t.Errorf("%s is not created before the Job inside their wave", o)
						}
					}
				}
				if !slices.Equal(presync, tc.presync) {
					t.Errorf("Argo CD PreSync runs %v, want %v", presync, tc.presync)
				}
				// One PreSync wave: Argo CD waits 2 s after every wave but the last, so each extra
				// wave would add 2 s to every sync.
				for _, w := range supportWaves {
					if w != jobWave {
						t.Errorf("supporting objects in Argo CD waves %v, want all in the Job's %d", supportWaves, jobWave)
						break
					}
				}
			})
		}
	})
}

// TestRollbackRunsTheTargetsGuard drives Helm's own install, upgrade and rollback actions against a
// client that records what Helm does, to check what the README promises about `helm rollback`:
// Helm runs the guard of the revision it rolls back to (that revision's image), after the ConfigMap
// and Secret it reads, and before it changes any object; it never runs the schema update; a
// refusal changes nothing, prints the guard's log, and leaves the release pending-rollback, which
// blocks `helm upgrade` until a rollback to the deployed revision clears it.
func TestRollbackRunsTheTargetsGuard(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		rec := &hookRecorder{t: t}
		cl := sdk.newCluster(t, rec)
		values := func(tag string) map[string]any {
			return vals(t, "config.updateSchema=true", "database.host=pg.example", "database.password=pw", "image.tag="+tag)
		}
		upgrade := func(tag string) error {
			_, err := cl.upgrade(loadSchemahook(t), values(tag), upgradeOptions{})
			return err
		}
		guardRun := func(tag string) []string {
			// Equal weights and names: Helm's kind order puts the Secret first.
			return []string{"hook Secret/" + schemaUpdateName, "hook ConfigMap/" + schemaUpdateName,
				"hook Job/" + rollbackGuardName + " ghcr.io/schemahook/schemahook:" + tag}
		}

		if _, err := cl.install(loadSchemahook(t), values("1.0.0")); err != nil { // revision 1
			t.Fatal(err)
		}
		if err := upgrade("2.0.0"); err != nil { // revision 2
			t.Fatal(err)
		}

		// The database is newer than 1.0.0: the guard refuses.
		rec.reset(true)
		err := cl.rollback(1) // revision 3
		if err == nil {
			t.Fatal("rollback succeeded although the guard failed")
		}
		if want := guardRun("1.0.0"); !slices.Equal(rec.steps, want) {
			t.Errorf("refused rollback: Helm did %v, want %v and no update of any object", rec.steps, want)
		}
		if !slices.Contains(rec.logsFor, "job-name="+rollbackGuardName) {
			t.Errorf("Helm did not fetch the guard's log (pods listed: %v), so the refusal would not be shown", rec.logsFor)
		}
		if s := cl.lastStatus(); s != "pending-rollback" {
			t.Errorf("after a refused rollback the release is %s, want pending-rollback as the README says", s)
		}
		// Helm refuses to start an operation while one is pending: no new revision.
		if err := upgrade("2.0.0"); err == nil {
			t.Errorf("upgrade after a refused rollback succeeded, want it refused as the README says")
		}
		if s := cl.lastStatus(); s != "pending-rollback" {
			t.Errorf("after the refused upgrade the release is %s, want still pending-rollback", s)
		}

		// The README's way out: roll back to the revision that is still deployed.
		rec.reset(false)
		if err := cl.rollback(2); err != nil { // revision 4
			t.Fatalf("rollback to the deployed revision: %v", err)
		}
		if want := append(guardRun("2.0.0"), "update"); !slices.Equal(rec.steps, want) {
			t.Errorf("rollback to the deployed revision: Helm did %v, want %v", rec.steps, want)
		}
		if s := cl.lastStatus(); s != "deployed" {
			t.Errorf("release is %s, want deployed", s)
		}
		if err := upgrade("2.0.0"); err != nil { // revision 5
			t.Errorf("upgrade once the pending rollback is cleared: %v", err)
		}

		// The guard passes (or has downgraded the database): the rollback goes ahead.
		rec.reset(false)
		if err := cl.rollback(1); err != nil { // revision 6
			t.Fatalf("rollback: %v", err)
		}
		if want := append(guardRun("1.0.0"), "update"); !slices.Equal(rec.steps, want) {
			t.Errorf("rollback: Helm did %v, want %v (no schema-update Job: rollback never runs pre-upgrade)", rec.steps, want)
		}
		if s := cl.lastStatus(); s != "deployed" {
			t.Errorf("release is %s, want deployed", s)
		}
	})
}

// hookRecorder records, for either SDK's recording kube client, the hooks Helm waits for (in
// order, with the guard's image), updates of release objects, and the pods whose logs Helm
// fetches; failGuard makes the guard Job fail as a refusal would.
type hookRecorder struct {
	t         *testing.T
	failGuard bool
	built     string // the manifest of the last Build: Helm builds each hook just before it creates and waits for it
	steps     []string
	logsFor   []string
}

func (r *hookRecorder) reset(failGuard bool) {
	r.failGuard, r.steps, r.logsFor = failGuard, nil, nil
}

// watch records a wait for the hook built last; it fails for the guard when failGuard is set.
func (r *hookRecorder) watch() error {
	o := decode(r.t, r.built, nil)
	step := "hook " + o.String()
	guard := o.Kind == "Job" && o.Name == rollbackGuardName
	if guard {
		step += " " + o.Obj.(*batchv1.Job).Spec.Template.Spec.Containers[0].Image
	}
	r.steps = append(r.steps, step)
	if guard && r.failGuard {
		return errors.New("job " + o.Name + " failed: BackoffLimitExceeded")
	}
	return nil
}
