package chart_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestEnabledFalseRendersNothing: with enabled=false the chart renders no object and no hook and
// requires nothing (no database.host even with config.updateSchema on), and its notes say so.
func TestEnabledFalseRendersNothing(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		rel := mustRender(t, sdk, loadSchemahook(t), vals(t, "enabled=false", "config.updateSchema=true", "metrics.enabled=true", "serviceAccount.create=true"))
		if objs := objects(t, rel); len(objs) != 0 {
			t.Errorf("rendered %v, want nothing", objs)
		}
		if !strings.Contains(rel.Notes, "schemahook is off (enabled=false)") {
			t.Errorf("notes do not say the chart is off:\n%s", rel.Notes)
		}
	})
}

// TestParentSwitchesTheDependencyOff: a parent chart with `condition: schemahook.enabled` (Helm
// then leaves the dependency out) or without it (the dependency renders nothing) renders with
// schemahook.enabled=false and no database settings at all: example-app renders nothing that needs
// schemahook, and a parent that guards its includes as the README shows keeps its Deployment,
// without the gate.
func TestParentSwitchesTheDependencyOff(t *testing.T) {
	noCondition := func(src chartSrc) chartSrc {
		return modifiedChart(t, src, func(y string) string {
			return strings.Replace(y, "    condition: schemahook.enabled\n", "", 1)
		})
	}
	forEachHelm(t, func(t *testing.T, sdk helm) {
		t.Run("example-app", func(t *testing.T) {
			rel := mustRender(t, sdk, loadExampleApp(t), vals(t, "schemahook.enabled=false"))
			if objs := objects(t, rel); len(objs) != 0 {
				t.Errorf("rendered %v, want nothing: its application is schemahook's serve", objs)
			}
			if !strings.Contains(rel.Notes, "schemahook.enabled is false") {
				t.Errorf("notes do not say schemahook is off:\n%s", rel.Notes)
			}
		})
		for name, src := range map[string]chartSrc{
			"consumer with condition":    consumerChart(t, 10),
			"consumer without condition": noCondition(consumerChart(t, 10)),
		} {
			t.Run(name, func(t *testing.T) {
				values := vals(t, "schemahook.enabled=false", "schemahook.migrations.configMap=consumer-migrations")
				objs := objects(t, mustRender(t, sdk, src, values))
				ds := ofKind[*appsv1.Deployment](objs)
				if len(objs) != 1 || len(ds) != 1 {
					t.Fatalf("rendered %v, want only the consumer's Deployment", objs)
				}
				spec := ds[0].Spec.Template.Spec
				if len(spec.InitContainers) != 0 {
					t.Errorf("init containers %v, want no gate", spec.InitContainers)
				}
				if len(spec.Volumes) != 1 || spec.Volumes[0].Name != "tmp" {
					t.Errorf("volumes %v, want only the consumer's own", spec.Volumes)
				}
				// Switched on again, the same chart has its gate: the guard is not what removed it.
				values = vals(t, "schemahook.migrations.configMap=consumer-migrations", "schemahook.database.host=pg.example")
				on := ofKind[*appsv1.Deployment](objects(t, mustRender(t, sdk, src, values)))
				if len(on) != 1 || len(on[0].Spec.Template.Spec.InitContainers) == 0 {
					t.Errorf("with schemahook on, the Deployment has no gate")
				}
			})
		}
	})
}

// TestHookOutputLogPolicyOverridable: the schema-update Job's helm.sh/hook-output-log-policy is
// hook-succeeded,hook-failed unless schemaUpdate.hookAnnotations (or the Job's own
// schemaUpdate.annotations, which take precedence) says otherwise, as Helm parses it.
func TestHookOutputLogPolicyOverridable(t *testing.T) {
	on := []string{"config.updateSchema=true", "database.host=pg.example"}
	const key = `helm\.sh/hook-output-log-policy`
	for _, tc := range []struct {
		name string
		sets []string
		want []string
	}{
		{"default", nil, []string{logOnSucceeded, logOnFailed}},
		{"hookAnnotations", []string{"schemaUpdate.hookAnnotations." + key + "=hook-failed"}, []string{logOnFailed}},
		{"annotations over hookAnnotations", []string{"schemaUpdate.hookAnnotations." + key + "=hook-failed",
			"schemaUpdate.annotations." + key + "=hook-succeeded"}, []string{logOnSucceeded}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachHelm(t, func(t *testing.T, sdk helm) {
				objs := objects(t, mustRender(t, sdk, loadSchemahook(t), vals(t, append(append([]string{}, on...), tc.sets...)...)))
				job, ok := find(objs, "Job", schemaUpdateName)
				if !ok || job.Hook == nil {
					t.Fatal("no schema-update hook Job")
				}
				if !sameSet(job.Hook.OutputLogPolicies, tc.want) {
					t.Errorf("Helm reads output log policies %v, want %v", job.Hook.OutputLogPolicies, tc.want)
				}
			})
		})
	}
}
