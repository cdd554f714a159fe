package chart_test

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// A password no template could produce by accident, so finding it anywhere means it leaked.
const sentinelPassword = "s3ntinel-Pa55word-7f3a"

// TestPasswordOnlyInSecrets renders an inline password and checks that it ends up in Secrets and
// nowhere a Secret value must not be: ConfigMaps, container args and commands, literal env values,
// annotations, labels and the release notes.
func TestPasswordOnlyInSecrets(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			for _, updateSchema := range []string{"true", "false"} {
				t.Run(c.name+"/updateSchema="+updateSchema, func(t *testing.T) {
					p := c.prefix
					rel := mustRender(t, sdk, c.load(t), vals(t,
						p+"config.updateSchema="+updateSchema, p+"database.host=pg.example",
						p+"database.password="+sentinelPassword))
					objs := objects(t, rel)

					var secretValues []string
					for _, s := range ofKind[*corev1.Secret](objs) {
						for _, v := range s.Data {
							secretValues = append(secretValues, string(v))
						}
						for _, v := range s.StringData {
							secretValues = append(secretValues, v)
						}
					}
					// The control: if the password is not in a Secret, the checks below prove nothing.
					if !containsAny(strings.Join(secretValues, "\n"), []string{sentinelPassword}) {
						t.Fatalf("the inline password is in no rendered Secret")
					}

					leaks := func(where, text string) {
						t.Helper()
						if containsAny(text, secretValues) {
							t.Errorf("a Secret value appears in %s", where)
						}
					}
					for _, o := range objs {
						m := objectMeta(t, o)
						for k, v := range m.GetAnnotations() {
							leaks(o.String()+" annotation "+k, v)
						}
						for k, v := range m.GetLabels() {
							leaks(o.String()+" label "+k, v)
						}
					}
					for _, cm := range ofKind[*corev1.ConfigMap](objs) {
						for k, v := range cm.Data {
							leaks("ConfigMap "+cm.Name+" key "+k, v)
						}
						for k, v := range cm.BinaryData {
							leaks("ConfigMap "+cm.Name+" key "+k, string(v))
						}
					}
					for _, pod := range pods(objs) {
						for _, ctr := range containers(pod.Spec) {
							where := pod.Owner.String() + " container " + ctr.Name
							leaks(where+" command", strings.Join(ctr.Command, " "))
							leaks(where+" args", strings.Join(ctr.Args, " "))
							for _, e := range ctr.Env {
								leaks(where+" env "+e.Name, e.Value)
							}
						}
					}
					leaks("NOTES", rel.Notes)
				})
			}
		}
	})
}

// TestPasswordReachesEveryPod: every container that connects gets PGPASSWORD from a Secret that
// exists when the container starts: for the hook Jobs a hook Secret with a lower weight and the
// same events (the release's own objects do not exist yet at pre-install, and at pre-rollback they
// are still the current revision's); for everything else a release Secret
// (hook Secrets are deleted once the hooks succeed) or the user's existing Secret.
func TestPasswordReachesEveryPod(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			p := c.prefix
			on := []string{p + "config.updateSchema=true", p + "database.host=pg.example"}
			for name, sets := range map[string][]string{
				"inline":                   slices.Concat(on, []string{p + "database.password=pw", p + "gate.useMigrationCredentials=true"}),
				"inline, guard only":       {p + "database.host=pg.example", p + "database.password=pw", p + "gate.useMigrationCredentials=true"},
				"inline, schema hook only": slices.Concat(on, []string{p + "database.password=pw", p + "rollbackGuard.enabled=false", p + "gate.useMigrationCredentials=true"}),
			} {
				t.Run(c.name+"/"+name, func(t *testing.T) {
					objs := objects(t, mustRender(t, sdk, c.load(t), vals(t, sets...)))
					for _, pod := range pods(objs) {
						for _, ctr := range containers(pod.Spec) {
							ref := passwordRef(t, pod, ctr)
							secret, ok := find(objs, "Secret", ref.Name)
							if !ok {
								t.Errorf("%s/%s: PGPASSWORD from Secret %q, which the chart does not render", pod.Owner, ctr.Name, ref.Name)
								continue
							}
							if ref.Key == "" || len(secret.Obj.(*corev1.Secret).Data[ref.Key]) == 0 {
								t.Errorf("%s/%s: Secret %s has no key %q", pod.Owner, ctr.Name, ref.Name, ref.Key)
							}
							isHookJob := pod.Owner.Kind == "Job" && pod.Owner.Hook != nil
							switch {
							case isHookJob:
								checkSupportingHook(t, objs, pod.Owner, "Secret", ref.Name)
							case secret.Hook != nil:
								t.Errorf("%s/%s: reads hook Secret %s, which is deleted once the hooks succeed", pod.Owner, ctr.Name, ref.Name)
							}
						}
					}
				})
			}
			t.Run(c.name+"/existingSecret", func(t *testing.T) {
				rel := mustRender(t, sdk, c.load(t), vals(t, append(on,
					p+"database.existingSecret=pg-credentials", p+"database.passwordKey=pgpass", p+"gate.useMigrationCredentials=true")...))
				objs := objects(t, rel)
				if s := ofKind[*corev1.Secret](objs); len(s) != 0 {
					t.Errorf("%d Secrets rendered although existingSecret is set", len(s))
				}
				for _, pod := range pods(objs) {
					for _, ctr := range containers(pod.Spec) {
						if ref := passwordRef(t, pod, ctr); ref.Name != "pg-credentials" || ref.Key != "pgpass" {
							t.Errorf("%s/%s: PGPASSWORD from %s/%s, want pg-credentials/pgpass", pod.Owner, ctr.Name, ref.Name, ref.Key)
						}
					}
				}
			})
		}
	})
}

func passwordRef(t *testing.T, pod podTemplate, ctr corev1.Container) corev1.SecretKeySelector {
	t.Helper()
	e, ok := envNamed(ctr, "PGPASSWORD")
	if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Fatalf("%s/%s: PGPASSWORD is not a secretKeyRef: %+v", pod.Owner, ctr.Name, e)
	}
	if e.Value != "" {
		t.Errorf("%s/%s: PGPASSWORD has a literal value", pod.Owner, ctr.Name)
	}
	return *e.ValueFrom.SecretKeyRef
}

func containsAny(text string, needles []string) bool {
	for _, n := range needles {
		if n != "" && strings.Contains(text, n) {
			return true
		}
	}
	return false
}
