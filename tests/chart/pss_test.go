package chart_test

import (
	"fmt"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

var restrictedLatest = api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}

// evaluateRestricted runs the Pod Security Admission checks a namespace labelled
// pod-security.kubernetes.io/enforce=restricted would run, and returns the violations.
func evaluateRestricted(t *testing.T, p podTemplate) []string {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var violations []string
	for _, r := range evaluator.EvaluatePod(restrictedLatest, &p.Meta, &p.Spec) {
		if !r.Allowed {
			violations = append(violations, fmt.Sprintf("%s (%s)", r.ForbiddenReason, r.ForbiddenDetail))
		}
	}
	return violations
}

// podValueSets are the value combinations whose pods must all be "restricted": defaults, CI, and
// the optional features that change the pod spec.
func podValueSets(t *testing.T, c chartCase) map[string]map[string]any {
	t.Helper()
	p := c.prefix
	sets := map[string]map[string]any{
		"defaults": vals(t, p+"database.host=pg.example"),
		"updateSchema+existingSecret+migrations": vals(t,
			p+"config.updateSchema=true", p+"database.host=pg.example",
			p+"database.existingSecret=pg-credentials", p+"migrations.configMap=app-migrations"),
		"guard only+allowDowngrade+inline password": vals(t, p+"database.host=pg.example",
			p+"config.allowDowngrade=true", p+"database.password=pw"),
		"app image+certificate+extra volumes": vals(t, appImageSets(c,
			p+"config.updateSchema=true", p+"database.host=pg.example",
			p+"database.sslRootCert.secret=db-ca", p+"extraVolumes[0].name=scratch", p+"extraVolumes[0].emptyDir.sizeLimit=1Mi",
			p+"extraVolumeMounts[0].name=scratch", p+"extraVolumeMounts[0].mountPath=/scratch")...),
	}
	sets["metrics"] = vals(t, p+"database.host=pg.example", p+"metrics.enabled=true", p+"gate.existingSecret=pg-reader")
	sets["metrics+app image"] = vals(t, appImageSets(c, p+"database.host=pg.example", p+"metrics.enabled=true", p+"gate.existingSecret=pg-reader")...)
	for _, vf := range c.ciValues {
		sets[filepath.Base(vf)] = valuesFile(t, vf)
	}
	return sets
}

// TestPodsAreRestricted: every pod the charts run (hook Jobs, test pod, the example app with its
// gate) is admitted by Pod Security "restricted", and goes beyond it where a schema hook should:
// read-only root filesystem, no ServiceAccount token, resources set.
func TestPodsAreRestricted(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			for name, values := range podValueSets(t, c) {
				t.Run(c.name+"/"+name, func(t *testing.T) {
					rel := mustRender(t, sdk, c.load(t), values)
					ps := pods(objects(t, rel))
					if len(ps) == 0 {
						t.Fatal("no pods rendered")
					}
					for _, p := range ps {
						for _, v := range evaluateRestricted(t, p) {
							t.Errorf("%s: PSS restricted: %s", p.Owner, v)
						}
						if p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
							t.Errorf("%s: automountServiceAccountToken is not false", p.Owner)
						}
						for _, ctr := range containers(p.Spec) {
							checkHardenedContainer(t, p, ctr)
						}
					}
				})
			}
		}
	})
}

func checkHardenedContainer(t *testing.T, p podTemplate, ctr corev1.Container) {
	t.Helper()
	where := fmt.Sprintf("%s container %s", p.Owner, ctr.Name)
	sc := ctr.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem is not read-only", where)
	}
	// The image's user is numeric, but the chart must not rely on it: a pod-level or container-level
	// numeric UID makes runAsNonRoot verifiable by the kubelet for any image.
	uid := sc.RunAsUser
	if uid == nil && p.Spec.SecurityContext != nil {
		uid = p.Spec.SecurityContext.RunAsUser
	}
	if uid == nil || *uid == 0 {
		t.Errorf("%s: no numeric non-root runAsUser", where)
	}
	if ctr.Resources.Requests.Memory().IsZero() || ctr.Resources.Requests.Cpu().IsZero() || ctr.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %v, want CPU and memory requests and a memory limit", where, ctr.Resources)
	}
}

// TestPSSCheckDetectsViolations makes sure the check above can fail: loosening the chart's
// security contexts from values must produce a "restricted" violation in every pod.
func TestPSSCheckDetectsViolations(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for name, sets := range map[string][]string{
			"privilege escalation": {"securityContext.allowPrivilegeEscalation=true"},
			"capabilities kept":    {"securityContext.capabilities.drop=null"},
			"root allowed":         {"securityContext.runAsNonRoot=false"},
			"no seccomp":           {"securityContext.seccompProfile=null", "podSecurityContext.seccompProfile=null"},
		} {
			t.Run(name, func(t *testing.T) {
				values := vals(t, append([]string{"config.updateSchema=true", "database.host=pg.example"}, sets...)...)
				rel := mustRender(t, sdk, loadSchemahook(t), values)
				ps := pods(objects(t, rel))
				if len(ps) != 3 {
					t.Fatalf("%d pods rendered, want the two Jobs' and the test pod", len(ps))
				}
				for _, p := range ps {
					if len(evaluateRestricted(t, p)) == 0 {
						t.Errorf("%s: %v passed PSS restricted", p.Owner, sets)
					}
				}
			})
		}
	})
}

// appImageSets are the values of the app-image mode (migrations.image) plus sets: the hook,
// guard, test pod and gate run registry.example/app:1.2.3 with the migrations in /app/migrations.
// example-app's own migrations ConfigMap is turned off: one source of migrations.
func appImageSets(c chartCase, sets ...string) []string {
	p := c.prefix
	out := []string{p + "migrations.image.repository=registry.example/app", p + "migrations.image.tag=1.2.3",
		p + "migrations.image.path=/app/migrations"}
	if c.name == "example-app" {
		out = append(out, "migrations.fromChartFiles=false", p+"migrations.configMap=")
	}
	return append(out, sets...)
}
