package chart_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// wantHook is what the charts promise about one hook object.
type wantHook struct {
	kind   string
	events []string
	weight int
}

// hookSet is the rendered hooks, keyed by "Kind/name".
func hookSet(rel *rendered) map[string]*hook {
	out := map[string]*hook{}
	for _, h := range rel.Hooks {
		out[h.Kind+"/"+h.Name] = h
	}
	return out
}

// TestHooksFollowValues checks, with Helm's own parse of the annotations, which hooks exist with
// config.updateSchema and rollbackGuard.enabled off and on, their events, weights and delete
// policies. A misspelled hook event makes Helm drop the object, so it shows up here as a missing
// hook. The ConfigMap and Secret exist for every event a Job that reads them runs at.
func TestHooksFollowValues(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			p := c.prefix
			testPod := wantHook{kind: "Pod", events: []string{evTest}, weight: 0}
			job := wantHook{kind: "Job", events: schemaUpdateEvents, weight: 0}
			guard := wantHook{kind: "Job", events: rollbackGuardEvents, weight: 0}
			support := func(kind string, events ...[]string) wantHook {
				return wantHook{kind: kind, events: slices.Concat(events...), weight: -5}
			}
			both := [][]string{schemaUpdateEvents, rollbackGuardEvents}
			host := p + "database.host=pg.example"
			on := []string{p + "config.updateSchema=true", host}
			guardOff := p + "rollbackGuard.enabled=false"

			for _, tc := range []struct {
				name   string
				values map[string]any
				want   map[string]wantHook
			}{
				{
					name:   "off",
					values: vals(t, host),
					want: map[string]wantHook{
						"Job/" + rollbackGuardName:          guard,
						"ConfigMap/" + schemaUpdateName:     support("ConfigMap", rollbackGuardEvents),
						"Pod/" + schemaUpdateName + "-test": testPod,
					},
				},
				{
					name:   "off with inline password",
					values: vals(t, host, p+"database.password=pw"),
					want: map[string]wantHook{
						"Job/" + rollbackGuardName:          guard,
						"ConfigMap/" + schemaUpdateName:     support("ConfigMap", rollbackGuardEvents),
						"Secret/" + schemaUpdateName:        support("Secret", rollbackGuardEvents),
						"Pod/" + schemaUpdateName + "-test": testPod,
					},
				},
				{
					name:   "off without guard",
					values: vals(t, host, p+"database.password=pw", guardOff),
					want:   map[string]wantHook{"Pod/" + schemaUpdateName + "-test": testPod},
				},
				{
					name:   "on with existingSecret",
					values: vals(t, append(on, p+"database.existingSecret=pg-credentials")...),
					want: map[string]wantHook{
						"Job/" + schemaUpdateName:           job,
						"Job/" + rollbackGuardName:          guard,
						"ConfigMap/" + schemaUpdateName:     support("ConfigMap", both...),
						"Pod/" + schemaUpdateName + "-test": testPod,
					},
				},
				{
					name:   "on with inline password",
					values: vals(t, append(on, p+"database.password=pw")...),
					want: map[string]wantHook{
						"Job/" + schemaUpdateName:           job,
						"Job/" + rollbackGuardName:          guard,
						"ConfigMap/" + schemaUpdateName:     support("ConfigMap", both...),
						"Secret/" + schemaUpdateName:        support("Secret", both...),
						"Pod/" + schemaUpdateName + "-test": testPod,
					},
				},
				{
					name:   "on without guard",
					values: vals(t, append(on, p+"database.password=pw", guardOff)...),
					want: map[string]wantHook{
						"Job/" + schemaUpdateName:           job,
						"ConfigMap/" + schemaUpdateName:     support("ConfigMap", schemaUpdateEvents),
						"Secret/" + schemaUpdateName:        support("Secret", schemaUpdateEvents),
						"Pod/" + schemaUpdateName + "-test": testPod,
					},
				},
				{
					name:   "on without test",
					values: vals(t, append(on, p+"test.enabled=false")...),
					want: map[string]wantHook{
						"Job/" + schemaUpdateName:       job,
						"Job/" + rollbackGuardName:      guard,
						"ConfigMap/" + schemaUpdateName: support("ConfigMap", both...),
					},
				},
			} {
				for _, upgrade := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/%s/upgrade=%t", c.name, tc.name, upgrade), func(t *testing.T) {
						rel, err := render(t, sdk, c.load(t), tc.values, upgrade)
						if err != nil {
							t.Fatal(err)
						}
						got := hookSet(rel)
						for key, w := range tc.want {
							h, ok := got[key]
							if !ok {
								t.Errorf("hook %s missing; rendered hooks: %v", key, keys(got))
								continue
							}
							if h.Kind != w.kind {
								t.Errorf("%s: kind %s, want %s", key, h.Kind, w.kind)
							}
							if !slices.Equal(h.Events, w.events) {
								t.Errorf("%s: events %v, want %v", key, h.Events, w.events)
							}
							if h.Weight != w.weight {
								t.Errorf("%s: weight %d, want %d", key, h.Weight, w.weight)
							}
							if want := deletePoliciesOf(h.Kind); !sameSet(h.DeletePolicies, want) {
								t.Errorf("%s: delete policies %v, want %v", key, h.DeletePolicies, want)
							}
						}
						for key, h := range got {
							// example-app's migrations ConfigMap: TestMigrationsConfigMapHook checks it.
							if _, ok := tc.want[key]; !ok && !(c.name == "example-app" && key == "ConfigMap/example-app-migrations" && h.Weight == -5) {
								t.Errorf("unexpected hook %s", key)
							}
						}
						// Hooks are not release objects: nothing of the schema update or the guard may
						// also be an ordinary object, or Helm would manage it twice.
						for _, o := range objects(t, rel) {
							if o.Hook == nil && isHookName(o.Name) {
								t.Errorf("%s is an ordinary release object, want a hook", o)
							}
						}
					})
				}
			}
		}
	})
}

// TestHookAnnotationsAreExplicit checks the raw annotations of every hook object: Helm silently
// reads a missing or unparsable weight as 0, and only an explicit delete policy survives a
// GitOps tool that has its own defaults.
func TestHookAnnotationsAreExplicit(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			t.Run(c.name, func(t *testing.T) {
				rel := mustRender(t, sdk, c.load(t), valuesFile(t, c.ciValues[0]))
				for _, o := range objects(t, rel) {
					if o.Hook == nil || isMigrationsConfigMap(o) { // kept for the gate: TestMigrationsConfigMapHook
						continue
					}
					ann := annotations(t, o)
					weight, ok := ann["helm.sh/hook-weight"]
					if !ok {
						t.Errorf("%s: no helm.sh/hook-weight", o)
					} else if fmt.Sprint(o.Hook.Weight) != weight {
						t.Errorf("%s: helm.sh/hook-weight %q does not parse as an integer (Helm read %d)", o, weight, o.Hook.Weight)
					}
					want := "before-hook-creation,hook-succeeded"
					if o.Kind != "Job" && o.Kind != "Pod" {
						want += ",hook-failed"
					}
					if got := ann["helm.sh/hook-delete-policy"]; got != want {
						t.Errorf("%s: helm.sh/hook-delete-policy %q, want %q", o, got, want)
					}
					if !isHookName(o.Name) {
						t.Errorf("%s: hook name contains neither schema-update nor rollback-guard", o)
					}
				}
			})
		}
	})
}

// TestHookNamesAreConstant: before-hook-creation can only replace an object left by a failed run
// if the next run uses the same name, so names must not depend on the revision or on randomness.
func TestHookNamesAreConstant(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			t.Run(c.name, func(t *testing.T) {
				values := valuesFile(t, c.ciValues[0])
				first, err := render(t, sdk, c.load(t), values, false)
				if err != nil {
					t.Fatal(err)
				}
				second, err := render(t, sdk, c.load(t), values, true)
				if err != nil {
					t.Fatal(err)
				}
				if a, b := keys(hookSet(first)), keys(hookSet(second)); !slices.Equal(a, b) {
					t.Errorf("hook names differ between install and upgrade: %v vs %v", a, b)
				}
				for _, o := range objects(t, first) {
					if o.Hook != nil && objectMeta(t, o).GetGenerateName() != "" {
						t.Errorf("%s uses generateName, which Helm cannot replace", o)
					}
				}
			})
		}
	})
}

// TestHookOrder checks, for every event a Job runs at, that every object the Job needs is created
// before it, in the order Helm itself uses: weight, then name (kind only breaks ties of both).
// TestRollbackRunsTheTargetsGuard checks the pre-rollback order again through Helm's own hook runner.
func TestHookOrder(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		events := []string{evPreInstall, evPreUpgrade, evPreRollback}
		for _, c := range charts(t) {
			for _, vf := range c.ciValues {
				rel := mustRender(t, sdk, c.load(t), valuesFile(t, vf))
				for _, event := range events {
					t.Run(c.name+"/"+filepath.Base(vf)+"/"+string(event), func(t *testing.T) {
						hooks := hooksFor(rel, event)
						var order []string
						for _, h := range hooks {
							order = append(order, h.Kind+"/"+h.Name)
						}
						if len(hooks) < 2 || hooks[len(hooks)-1].Kind != "Job" {
							t.Fatalf("%s order %v: want the supporting objects first and the Job last", event, order)
						}
						job := hooks[len(hooks)-1]
						for _, h := range hooks[:len(hooks)-1] {
							if h.Weight >= job.Weight {
								t.Errorf("%s/%s has weight %d, not below the Job's %d", h.Kind, h.Name, h.Weight, job.Weight)
							}
						}
						t.Logf("%s order: %v", event, order)
					})
				}
			}
		}
	})
}

// hooksFor returns the hooks of one event in the order Helm runs them (action.execHook): stable
// by weight, then name, after Helm's kind sort, which only breaks ties of both.
func hooksFor(rel *rendered, event string) []*hook {
	var out []*hook
	for _, h := range rel.Hooks {
		if slices.Contains(h.Events, event) {
			out = append(out, h)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Weight != out[j].Weight {
			return out[i].Weight < out[j].Weight
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// TestHookAnnotationsOverridable: a GitOps user adds Argo CD's hook annotations (or changes the Helm
// events) from values, on every schema-update hook object, but cannot break the order by overriding
// weights, nor take pre-rollback away from the objects the guard reads. The guard Job keeps its own
// annotations: as an Argo CD PreSync hook it would run on every sync.
func TestHookAnnotationsOverridable(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		rel := mustRender(t, sdk, loadSchemahook(t), map[string]any{
			"config":   map[string]any{"updateSchema": true},
			"database": map[string]any{"host": "pg.example", "password": "pw"},
			"schemaUpdate": map[string]any{
				"hookAnnotations": map[string]any{
					"argocd.argoproj.io/hook":               "PreSync",
					"argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation,HookSucceeded",
					"helm.sh/hook":                          "post-install,pre-upgrade",
					"helm.sh/hook-weight":                   "7",
				},
				"annotations": map[string]any{"example.com/owner": "platform"},
			},
		})
		overridden := []string{evPostInstall, evPreUpgrade}
		want := map[string]struct {
			events []string
			weight int
			argo   bool // carries schemaUpdate.hookAnnotations
			owner  bool // carries schemaUpdate.annotations
		}{
			"ConfigMap/" + schemaUpdateName: {slices.Concat(overridden, rollbackGuardEvents), -5, true, false},
			"Secret/" + schemaUpdateName:    {slices.Concat(overridden, rollbackGuardEvents), -5, true, false},
			"Job/" + schemaUpdateName:       {overridden, 0, true, true},
			"Job/" + rollbackGuardName:      {rollbackGuardEvents, 0, false, false},
		}
		seen := 0
		for _, o := range objects(t, rel) {
			if o.Hook == nil || slices.Contains(o.Hook.Events, evTest) {
				continue
			}
			w, ok := want[o.String()]
			if !ok {
				t.Errorf("unexpected hook %s", o)
				continue
			}
			seen++
			ann := annotations(t, o)
			if got := ann["argocd.argoproj.io/hook"] == "PreSync"; got != w.argo {
				t.Errorf("%s: argocd.argoproj.io/hook present=%t, want %t: %v", o, got, w.argo, ann)
			}
			if !slices.Equal(o.Hook.Events, w.events) {
				t.Errorf("%s: events %v, want %v", o, o.Hook.Events, w.events)
			}
			if o.Hook.Weight != w.weight {
				t.Errorf("%s: weight %d, want the chart's %d", o, o.Hook.Weight, w.weight)
			}
			if _, ok := ann["example.com/owner"]; ok != w.owner {
				t.Errorf("%s: schemaUpdate.annotations present=%t, want %t", o, ok, w.owner)
			}
		}
		if seen != len(want) {
			t.Errorf("saw %d hooks, want %d", seen, len(want))
		}
	})
}

// TestHookJobs checks both hook Jobs' specs against the failure modes of hook Jobs: retries that
// outlast Helm's timeout, a Job that Helm stops waiting for and leaves running, sidecars that never
// exit, TTLs that confuse Argo CD, a ServiceAccount token nobody needs, settings from an object
// that does not exist when the Job starts.
func TestHookJobs(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			rel := mustRender(t, sdk, c.load(t), valuesFile(t, c.ciValues[0]))
			objs := objects(t, rel)
			if jobs := ofKind[*batchv1.Job](objs); len(jobs) != 2 {
				t.Fatalf("%s: %d Jobs rendered, want the schema update and the rollback guard", c.name, len(jobs))
			}
			for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
				for _, o := range objs {
					if o.Kind == kind {
						t.Errorf("%s rendered, but nothing needs RBAC", o)
					}
				}
			}
			for _, tc := range []struct {
				name, component string
				args            []string
				// settings must be in the Job's environment; budget are the durations that must
				// add up to less than activeDeadlineSeconds.
				settings, budget []string
			}{
				{
					name: schemaUpdateName, component: "schema-update", args: []string{"update"},
					settings: []string{"PGHOST", "PGPORT", "PGSSLMODE", "SCHEMAHOOK_LOCK_TIMEOUT", "SCHEMAHOOK_TIMEOUT",
						"SCHEMAHOOK_WAIT_FOR_DB", "SCHEMAHOOK_STATEMENT_TIMEOUT", "SCHEMAHOOK_ALLOW_DOWNGRADE"},
					budget: []string{"SCHEMAHOOK_WAIT_FOR_DB", "SCHEMAHOOK_TIMEOUT"},
				},
				{
					name: rollbackGuardName, component: "rollback-guard", args: []string{"guard"},
					settings: []string{"PGHOST", "PGPORT", "PGSSLMODE", "SCHEMAHOOK_WAIT_FOR_DB", "SCHEMAHOOK_ALLOW_DOWNGRADE"},
					// guard has no overall --timeout: only its wait for the database is its own.
					budget: []string{"SCHEMAHOOK_WAIT_FOR_DB"},
				},
			} {
				t.Run(c.name+"/"+tc.component, func(t *testing.T) {
					o, ok := find(objs, "Job", tc.name)
					if !ok || o.Hook == nil {
						t.Fatalf("no hook Job %s", tc.name)
					}
					checkHookJob(t, objs, o)
					job := o.Obj.(*batchv1.Job)
					if job.Labels["app.kubernetes.io/component"] != tc.component || job.Spec.Template.Labels["app.kubernetes.io/component"] != tc.component {
						t.Errorf("component labels %q/%q, want %q", job.Labels["app.kubernetes.io/component"], job.Spec.Template.Labels["app.kubernetes.io/component"], tc.component)
					}
					pod := job.Spec.Template.Spec
					ctr := pod.Containers[0]
					if !slices.Equal(ctr.Args, tc.args) || len(ctr.Command) != 0 {
						t.Errorf("command %q args %q, want the image's entrypoint with args %q", ctr.Command, ctr.Args, tc.args)
					}
					env := containerEnv(t, objs, podTemplate{o, job.Spec.Template.ObjectMeta, pod}, ctr)
					for _, key := range tc.settings {
						if env[key] == "" {
							t.Errorf("%s not set", key)
						}
					}
					// The binary must give up before Kubernetes kills it, or the user sees
					// DeadlineExceeded instead of the binary's own error.
					var budget time.Duration
					for _, key := range tc.budget {
						budget += parseDuration(t, env[key])
					}
					if ads := *job.Spec.ActiveDeadlineSeconds; budget >= time.Duration(ads)*time.Second {
						t.Errorf("%v = %s, not below activeDeadlineSeconds %ds", tc.budget, budget, ads)
					}
				})
			}
		}
	})
}

// checkHookJob checks what every hook Job of the chart promises.
func checkHookJob(t *testing.T, objs []object, o object) {
	t.Helper()
	job := o.Obj.(*batchv1.Job)
	spec := job.Spec
	if spec.BackoffLimit == nil || *spec.BackoffLimit < 0 || *spec.BackoffLimit > 1 {
		t.Errorf("backoffLimit %v, want 0 or 1", spec.BackoffLimit)
	}
	if spec.TTLSecondsAfterFinished != nil {
		t.Errorf("ttlSecondsAfterFinished is set; Argo CD loses track of Jobs that delete themselves")
	}
	ads := spec.ActiveDeadlineSeconds
	if ads == nil || *ads <= 0 || *ads >= helmDefaultTimeoutSeconds {
		t.Fatalf("activeDeadlineSeconds %v, want between 0 and Helm's %ds timeout", ads, helmDefaultTimeoutSeconds)
	}
	// Helm 3.18+ prints the Job's log: on failure that is the only place a user sees why
	// without kubectl, and on success the only record of what was done.
	if !sameSet(o.Hook.OutputLogPolicies, []string{logOnSucceeded, logOnFailed}) {
		t.Errorf("output log policies %v, want hook-succeeded and hook-failed", o.Hook.OutputLogPolicies)
	}
	pod := spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q, want Never", pod.RestartPolicy)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken is not false, but the Job needs no API access")
	}
	if pod.ServiceAccountName != "" {
		t.Errorf("serviceAccountName %q without RBAC being needed", pod.ServiceAccountName)
	}
	meta := spec.Template.ObjectMeta
	if meta.Labels["sidecar.istio.io/inject"] != "false" {
		t.Errorf("pod labels %v: Istio sidecar injection not off", meta.Labels)
	}
	if meta.Annotations["linkerd.io/inject"] != "disabled" {
		t.Errorf("pod annotations %v: Linkerd injection not off", meta.Annotations)
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("%d containers and %d init containers, want exactly one container", len(pod.Containers), len(pod.InitContainers))
	}
	// Settings come from the hook ConfigMap, which must be a hook that exists, before the Job, at
	// every event the Job runs at.
	ctr := pod.Containers[0]
	if len(ctr.EnvFrom) != 1 || ctr.EnvFrom[0].ConfigMapRef == nil {
		t.Fatalf("envFrom %v, want the hook ConfigMap", ctr.EnvFrom)
	}
	checkSupportingHook(t, objs, o, "ConfigMap", ctr.EnvFrom[0].ConfigMapRef.Name)
}

// checkSupportingHook checks that the object kind/name, which the hook Job o needs, is a hook
// created before o at every event o runs at.
func checkSupportingHook(t *testing.T, objs []object, o object, kind, name string) {
	t.Helper()
	s, ok := find(objs, kind, name)
	switch {
	case !ok:
		t.Errorf("%s reads %s/%s, which the chart does not render", o, kind, name)
	case s.Hook == nil:
		t.Errorf("%s reads %s, an ordinary release object: it does not exist at pre-install", o, s)
	case s.Hook.Weight >= o.Hook.Weight:
		t.Errorf("%s reads %s, whose weight %d is not below its %d", o, s, s.Hook.Weight, o.Hook.Weight)
	default:
		for _, e := range o.Hook.Events {
			if !slices.Contains(s.Hook.Events, e) {
				t.Errorf("%s runs at %s, but %s, which it reads, does not exist then (events %v)", o, e, s, s.Hook.Events)
			}
		}
	}
}

// isHookName reports whether name is one of the chart's constant hook names: leftovers of a failed
// run are easy to find by these parts, and before-hook-creation relies on the names not changing.
func isHookName(name string) bool {
	return strings.Contains(name, "schema-update") || strings.Contains(name, "rollback-guard")
}

func parseDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sameSet[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// deletePoliciesOf is the delete policy of a hook of kind: the Jobs and the test pod are kept
// when they fail (their logs say why), their supporting objects are not.
func deletePoliciesOf(kind string) []string {
	if kind == "Job" || kind == "Pod" {
		return hookDeletePolicies
	}
	return supportDeletePolicies
}
