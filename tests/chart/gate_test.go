package chart_test

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestExampleAppPodsAreGated: the example app's pods start only after an init container has run
// `schemahook check --wait`, with the same image as the hook (same binary, same migrations head)
// and the same database settings, whether or not this release updates the schema.
func TestExampleAppPodsAreGated(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for name, values := range map[string]map[string]any{
			"updateSchema off": vals(t, "schemahook.database.host=pg.example", "schemahook.database.existingSecret=pg-credentials"),
			"ci":               valuesFile(t, ciValuesFiles(t, exampleAppDir)[0]),
			"migrations from a ConfigMap": vals(t, "schemahook.config.updateSchema=true", "schemahook.database.host=pg.example",
				"schemahook.migrations.configMap=app-migrations", "schemahook.gate.wait=90s"),
		} {
			t.Run(name, func(t *testing.T) {
				rel := mustRender(t, sdk, loadExampleApp(t), values)
				objs := objects(t, rel)
				deployments := ofKind[*appsv1.Deployment](objs)
				if len(deployments) != 1 {
					t.Fatalf("%d Deployments rendered, want 1", len(deployments))
				}
				pod := deployments[0].Spec.Template.Spec
				if len(pod.InitContainers) != 1 {
					t.Fatalf("%d init containers, want the gate only", len(pod.InitContainers))
				}
				gate := pod.InitContainers[0]
				if len(gate.Command) != 0 || len(gate.Args) != 3 || gate.Args[0] != "check" || gate.Args[1] != "--wait" {
					t.Fatalf("gate runs command %q args %q, want the entrypoint with [check --wait DURATION]", gate.Command, gate.Args)
				}
				if d := parseDuration(t, gate.Args[2]); d <= 0 {
					t.Errorf("gate waits %s", d)
				}
				if gate.RestartPolicy != nil {
					t.Errorf("gate has restartPolicy %q: a sidecar would not hold back the app", *gate.RestartPolicy)
				}

				app := pod.Containers[0]
				if gate.Image != app.Image {
					t.Errorf("gate image %q differs from the stand-in app's %q", gate.Image, app.Image)
				}
				if !slices.Equal(app.Args[:1], []string{"serve"}) || app.ReadinessProbe == nil || app.ReadinessProbe.HTTPGet.Path != "/readyz" {
					t.Errorf("app container: args %q readiness %+v, want `serve` gated by /readyz", app.Args, app.ReadinessProbe)
				}
				// The gate checks the database the app uses.
				for _, name := range []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSSLMODE", "PGPASSWORD", "SCHEMAHOOK_MIGRATIONS"} {
					g, gok := envNamed(gate, name)
					a, aok := envNamed(app, name)
					if gok != aok || g.Value != a.Value || !sameSource(g.ValueFrom, a.ValueFrom) {
						t.Errorf("%s differs between gate (%+v) and app (%+v)", name, g, a)
					}
				}
				if e, ok := envNamed(gate, "PGHOST"); !ok || e.Value != "pg.example" && e.Value != "postgres.db.svc.cluster.local" {
					t.Errorf("gate PGHOST %+v", e)
				}

				// With a migrations ConfigMap, the gate must see the same migrations as the hook Job,
				// or it would wait for a head the Job never applies.
				// The same goes for the rollback guard, which compares the database with that head.
				jobs := ofKind[*batchv1.Job](objs)
				if len(jobs) == 0 {
					t.Fatal("no hook Job rendered; the rollback guard is on by default")
				}
				cm := "example-app-migrations" // rendered from the chart's files by default
				if name == "migrations from a ConfigMap" {
					cm = "app-migrations"
				}
				if m, ok := envNamed(gate, "SCHEMAHOOK_MIGRATIONS"); ok {
					if !mountsConfigMap(pod, gate, m.Value, cm) {
						t.Errorf("gate reads migrations from %s but does not mount ConfigMap %s there", m.Value, cm)
					}
					for _, j := range jobs {
						if !mountsConfigMap(j.Spec.Template.Spec, j.Spec.Template.Spec.Containers[0], m.Value, cm) {
							t.Errorf("Job %s does not mount the migrations the gate checks against", j.Name)
						}
					}
				}
				for _, j := range jobs {
					if j.Spec.Template.Spec.Containers[0].Image != gate.Image {
						t.Errorf("Job image %q differs from gate image %q", j.Spec.Template.Spec.Containers[0].Image, gate.Image)
					}
				}
			})
		}
	})
}

// TestGateWaitFromValues: the wait duration is the chart's to set, not hard-coded.
func TestGateWaitFromValues(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		rel := mustRender(t, sdk, loadExampleApp(t), vals(t, "schemahook.database.host=pg.example", "schemahook.gate.wait=2m30s"))
		d := ofKind[*appsv1.Deployment](objects(t, rel))[0]
		if got := parseDuration(t, d.Spec.Template.Spec.InitContainers[0].Args[2]); got != 150*time.Second {
			t.Errorf("gate waits %s, want 2m30s", got)
		}
	})
}

func sameSource(a, b *corev1.EnvVarSource) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.SecretKeyRef == nil || b.SecretKeyRef == nil {
		return a.SecretKeyRef == b.SecretKeyRef
	}
	return a.SecretKeyRef.Name == b.SecretKeyRef.Name && a.SecretKeyRef.Key == b.SecretKeyRef.Key
}

// mountsConfigMap reports whether ctr mounts, read-only at path, a pod volume backed by ConfigMap cm.
func mountsConfigMap(pod corev1.PodSpec, ctr corev1.Container, path, cm string) bool {
	for _, m := range ctr.VolumeMounts {
		if m.MountPath != path || !m.ReadOnly {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm {
				return true
			}
		}
	}
	return false
}

// TestMigrationsConfigMapReachesEveryPod: with migrations.configMap set, the Jobs, the test pod and
// the gate all read the same mounted migrations; a pod left on the embedded ones would disagree
// about the head.
func TestMigrationsConfigMapReachesEveryPod(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		rel := mustRender(t, sdk, loadExampleApp(t), vals(t, "schemahook.config.updateSchema=true",
			"schemahook.database.host=pg.example", "schemahook.migrations.configMap=app-migrations"))
		objs := objects(t, rel)
		ps := pods(objs)
		if len(ps) != 4 {
			t.Fatalf("%d pods rendered, want the two Jobs, test pod and Deployment", len(ps))
		}
		for _, p := range ps {
			for _, ctr := range containers(p.Spec) {
				dir, ok := envNamed(ctr, "SCHEMAHOOK_MIGRATIONS")
				if !ok {
					for _, ef := range ctr.EnvFrom {
						if cm, found := find(objs, "ConfigMap", ef.ConfigMapRef.Name); found {
							if v, set := cm.Obj.(*corev1.ConfigMap).Data["SCHEMAHOOK_MIGRATIONS"]; set {
								dir, ok = corev1.EnvVar{Value: v}, true
							}
						}
					}
				}
				if !ok {
					t.Errorf("%s/%s: SCHEMAHOOK_MIGRATIONS not set", p.Owner, ctr.Name)
					continue
				}
				if !mountsConfigMap(p.Spec, ctr, dir.Value, "app-migrations") {
					t.Errorf("%s/%s: ConfigMap app-migrations not mounted read-only at %s", p.Owner, ctr.Name, dir.Value)
				}
			}
		}
	})
}
