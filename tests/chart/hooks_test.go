package chart_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// wantHook is what the charts promise about one hook object.
type wantHook struct {
	kind   string
	events []release.HookEvent
	weight int
}

// hookSet is the rendered hooks, keyed by "Kind/name".
func hookSet(rel *release.Release) map[string]*release.Hook {
	out := map[string]*release.Hook{}
	for _, h := range rel.Hooks {
		out[h.Kind+"/"+h.Name] = h
	}
	return out
}

// TestHooksFollowUpdateSchema checks, with Helm's own parse of the annotations, which hooks exist
// with config.updateSchema off and on, their events, weights and delete policies. A misspelled hook
// event makes Helm drop the object, so it shows up here as a missing hook.
func TestHooksFollowUpdateSchema(t *testing.T) {
	for _, c := range charts(t) {
		fullname := releaseName + "-schemahook"
		jobName := fullname + "-schema-update"
		testPod := wantHook{kind: "Pod", events: []release.HookEvent{release.HookTest}, weight: 0}
		job := wantHook{kind: "Job", events: schemaUpdateEvents, weight: 0}
		configMap := wantHook{kind: "ConfigMap", events: schemaUpdateEvents, weight: -5}
		secret := wantHook{kind: "Secret", events: schemaUpdateEvents, weight: -5}
		on := []string{c.prefix + "config.updateSchema=true", c.prefix + "database.host=pg.example"}

		for _, tc := range []struct {
			name   string
			values map[string]any
			want   map[string]wantHook
		}{
			{
				name:   "off",
				values: vals(t, c.prefix+"database.host=pg.example"),
				want:   map[string]wantHook{"Pod/" + fullname + "-schema-update-test": testPod},
			},
			{
				name:   "off with inline password",
				values: vals(t, c.prefix+"database.host=pg.example", c.prefix+"database.password=pw"),
				want:   map[string]wantHook{"Pod/" + fullname + "-schema-update-test": testPod},
			},
			{
				name:   "on with existingSecret",
				values: vals(t, append(on, c.prefix+"database.existingSecret=pg-credentials")...),
				want: map[string]wantHook{
					"Job/" + jobName:                          job,
					"ConfigMap/" + jobName:                    configMap,
					"Pod/" + fullname + "-schema-update-test": testPod,
				},
			},
			{
				name:   "on with inline password",
				values: vals(t, append(on, c.prefix+"database.password=pw")...),
				want: map[string]wantHook{
					"Job/" + jobName:                          job,
					"ConfigMap/" + jobName:                    configMap,
					"Secret/" + jobName:                       secret,
					"Pod/" + fullname + "-schema-update-test": testPod,
				},
			},
			{
				name:   "on without test",
				values: vals(t, append(on, c.prefix+"test.enabled=false")...),
				want: map[string]wantHook{
					"Job/" + jobName:       job,
					"ConfigMap/" + jobName: configMap,
				},
			},
		} {
			for _, upgrade := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/upgrade=%t", c.name, tc.name, upgrade), func(t *testing.T) {
					rel, err := render(t, c.load(t), tc.values, upgrade)
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
						if !sameSet(h.DeletePolicies, hookDeletePolicies) {
							t.Errorf("%s: delete policies %v, want %v", key, h.DeletePolicies, hookDeletePolicies)
						}
					}
					for key := range got {
						if _, ok := tc.want[key]; !ok {
							t.Errorf("unexpected hook %s", key)
						}
					}
					// Hooks are not release objects: nothing of the schema update may also be an
					// ordinary object, or Helm would manage it twice.
					for _, o := range objects(t, rel) {
						if o.Hook == nil && strings.Contains(o.Name, "schema-update") {
							t.Errorf("%s is an ordinary release object, want a hook", o)
						}
					}
				})
			}
		}
	}
}

// TestHookAnnotationsAreExplicit checks the raw annotations of every hook object: Helm silently
// reads a missing or unparsable weight as 0, and only an explicit delete policy survives a
// GitOps tool that has its own defaults.
func TestHookAnnotationsAreExplicit(t *testing.T) {
	for _, c := range charts(t) {
		t.Run(c.name, func(t *testing.T) {
			rel := mustRender(t, c.load(t), valuesFile(t, c.ciValues[0]))
			for _, o := range objects(t, rel) {
				if o.Hook == nil {
					continue
				}
				ann := annotations(t, o)
				weight, ok := ann["helm.sh/hook-weight"]
				if !ok {
					t.Errorf("%s: no helm.sh/hook-weight", o)
				} else if fmt.Sprint(o.Hook.Weight) != weight {
					t.Errorf("%s: helm.sh/hook-weight %q does not parse as an integer (Helm read %d)", o, weight, o.Hook.Weight)
				}
				if got := ann["helm.sh/hook-delete-policy"]; got != "before-hook-creation,hook-succeeded" {
					t.Errorf("%s: helm.sh/hook-delete-policy %q", o, got)
				}
				if !strings.Contains(o.Name, "schema-update") {
					t.Errorf("%s: hook name does not contain schema-update", o)
				}
			}
		})
	}
}

// TestHookNamesAreConstant: before-hook-creation can only replace an object left by a failed run
// if the next run uses the same name, so names must not depend on the revision or on randomness.
func TestHookNamesAreConstant(t *testing.T) {
	for _, c := range charts(t) {
		t.Run(c.name, func(t *testing.T) {
			values := valuesFile(t, c.ciValues[0])
			first, err := render(t, c.load(t), values, false)
			if err != nil {
				t.Fatal(err)
			}
			second, err := render(t, c.load(t), values, true)
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
}

// TestHookOrder checks that every object the schema-update Job needs is created before it, in the
// order Helm itself uses: weight, then name (kind only breaks ties of both).
func TestHookOrder(t *testing.T) {
	for _, c := range charts(t) {
		for _, vf := range c.ciValues {
			t.Run(c.name+"/"+filepath.Base(vf), func(t *testing.T) {
				rel := mustRender(t, c.load(t), valuesFile(t, vf))
				var preInstall []*release.Hook
				for _, h := range rel.Hooks {
					if slices.Contains(h.Events, release.HookPreInstall) {
						preInstall = append(preInstall, h)
					}
				}
				sort.SliceStable(preInstall, func(i, j int) bool {
					if preInstall[i].Weight != preInstall[j].Weight {
						return preInstall[i].Weight < preInstall[j].Weight
					}
					return preInstall[i].Name < preInstall[j].Name
				})
				var order []string
				for _, h := range preInstall {
					order = append(order, h.Kind+"/"+h.Name)
				}
				if len(preInstall) < 2 || preInstall[len(preInstall)-1].Kind != "Job" {
					t.Fatalf("pre-install order %v: want the supporting objects first and the Job last", order)
				}
				job := preInstall[len(preInstall)-1]
				for _, h := range preInstall[:len(preInstall)-1] {
					if h.Weight >= job.Weight {
						t.Errorf("%s/%s has weight %d, not below the Job's %d", h.Kind, h.Name, h.Weight, job.Weight)
					}
				}
				t.Logf("pre-install order: %v", order)
			})
		}
	}
}

// TestHookAnnotationsOverridable: a GitOps user adds Argo CD's hook annotations (or changes the Helm
// events) from values, on every hook object, but cannot break the order by overriding weights.
func TestHookAnnotationsOverridable(t *testing.T) {
	rel := mustRender(t, loadSchemahook(t), map[string]any{
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
	weights := map[string]int{"ConfigMap": -5, "Secret": -5, "Job": 0}
	seen := 0
	for _, o := range objects(t, rel) {
		if o.Hook == nil || slices.Contains(o.Hook.Events, release.HookTest) {
			continue
		}
		seen++
		ann := annotations(t, o)
		if ann["argocd.argoproj.io/hook"] != "PreSync" {
			t.Errorf("%s: no argocd.argoproj.io/hook annotation: %v", o, ann)
		}
		if want := []release.HookEvent{release.HookPostInstall, release.HookPreUpgrade}; !slices.Equal(o.Hook.Events, want) {
			t.Errorf("%s: events %v, want %v", o, o.Hook.Events, want)
		}
		if o.Hook.Weight != weights[o.Kind] {
			t.Errorf("%s: weight %d, want the chart's %d", o, o.Hook.Weight, weights[o.Kind])
		}
		if _, ok := ann["example.com/owner"]; ok != (o.Kind == "Job") {
			t.Errorf("%s: schemaUpdate.annotations present=%t, want only on the Job", o, ok)
		}
	}
	if seen != len(weights) {
		t.Errorf("saw %d schema-update hooks, want %d", seen, len(weights))
	}
}

// TestSchemaUpdateJob checks the Job's spec against the failure modes of hook Jobs: retries that
// outlast Helm's timeout, a Job that Helm stops waiting for and leaves running, sidecars that never
// exit, TTLs that confuse Argo CD, a ServiceAccount token nobody needs.
func TestSchemaUpdateJob(t *testing.T) {
	for _, c := range charts(t) {
		t.Run(c.name, func(t *testing.T) {
			rel := mustRender(t, c.load(t), valuesFile(t, c.ciValues[0]))
			objs := objects(t, rel)
			jobs := ofKind[*batchv1.Job](objs)
			if len(jobs) != 1 {
				t.Fatalf("%d Jobs rendered, want 1", len(jobs))
			}
			job := jobs[0]
			spec := job.Spec
			if spec.BackoffLimit == nil || *spec.BackoffLimit < 0 || *spec.BackoffLimit > 1 {
				t.Errorf("backoffLimit %v, want 0 or 1", spec.BackoffLimit)
			}
			if spec.TTLSecondsAfterFinished != nil {
				t.Errorf("ttlSecondsAfterFinished is set; Argo CD loses track of Jobs that delete themselves")
			}
			ads := spec.ActiveDeadlineSeconds
			if ads == nil || *ads <= 0 || *ads >= helmDefaultTimeoutSeconds {
				t.Errorf("activeDeadlineSeconds %v, want between 0 and Helm's %ds timeout", ads, helmDefaultTimeoutSeconds)
			}
			// Helm 3.18+ prints the Job's log: on failure that is the only place a user sees why
			// without kubectl, and on success the only record of what was applied.
			if h := hookSet(rel)["Job/"+job.Name]; !sameSet(h.OutputLogPolicies, []release.HookOutputLogPolicy{release.HookOutputOnSucceeded, release.HookOutputOnFailed}) {
				t.Errorf("output log policies %v, want hook-succeeded and hook-failed", h.OutputLogPolicies)
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
			for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
				for _, o := range objs {
					if o.Kind == kind {
						t.Errorf("%s rendered, but nothing needs RBAC", o)
					}
				}
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
			ctr := pod.Containers[0]
			if !slices.Equal(ctr.Args, []string{"update"}) || len(ctr.Command) != 0 {
				t.Errorf("command %q args %q, want the image's entrypoint with args [update]", ctr.Command, ctr.Args)
			}
			// Settings come from the hook ConfigMap, which must be a hook that exists before the Job.
			if len(ctr.EnvFrom) != 1 || ctr.EnvFrom[0].ConfigMapRef == nil {
				t.Fatalf("envFrom %v, want the hook ConfigMap", ctr.EnvFrom)
			}
			cmName := ctr.EnvFrom[0].ConfigMapRef.Name
			cm, ok := find(objs, "ConfigMap", cmName)
			if !ok || cm.Hook == nil || cm.Hook.Weight >= hookSet(rel)["Job/"+job.Name].Weight {
				t.Fatalf("envFrom ConfigMap %q is not a hook rendered before the Job", cmName)
			}
			data := cm.Obj.(*corev1.ConfigMap).Data
			for _, key := range []string{"PGHOST", "PGPORT", "PGSSLMODE", "SCHEMAHOOK_LOCK_TIMEOUT", "SCHEMAHOOK_TIMEOUT", "SCHEMAHOOK_WAIT_FOR_DB", "SCHEMAHOOK_STATEMENT_TIMEOUT"} {
				if data[key] == "" {
					t.Errorf("ConfigMap %s has no %s", cmName, key)
				}
			}
			// The binary must give up before Kubernetes kills it, or the user sees
			// DeadlineExceeded instead of the binary's own error.
			budget := parseDuration(t, data["SCHEMAHOOK_WAIT_FOR_DB"]) + parseDuration(t, data["SCHEMAHOOK_TIMEOUT"])
			if budget >= time.Duration(*ads)*time.Second {
				t.Errorf("waitForDatabase+timeout = %s, not below activeDeadlineSeconds %ds", budget, *ads)
			}
		})
	}
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
