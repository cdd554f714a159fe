package chart_test

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

// promtoolDir is the module that pins promtool (`go tool promtool`). promtoolFlags leave out
// Prometheus's service discovery plugins (the cloud SDKs are most of a cold build), which rule
// checks do not use; the Makefile builds promtool with the same flags so that this run finds it
// in the build cache.
const (
	promtoolDir   = "../promtool"
	promtoolFlags = "GOFLAGS=-tags=remove_all_sd"
)

// alertCase is one promtool unit test: series, a time, and the alerts that fire then.
type alertCase struct {
	name   string
	series map[string]string // series → promtool values, one sample per minute
	at     string            // evaluation time
	alert  string
	firing []map[string]string // the labels of each firing alert (series labels + the rule's)
	value  string              // $value in the firing alerts' annotations
}

// The chart's PrometheusRule, as rendered, passes `promtool check rules`, and each alert fires
// when it should and not before, nor for another release's exporter: promtool evaluates the
// rendered rules against these series.
func TestPrometheusRuleAlerts(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		rel := mustRender(t, sdk, loadSchemahook(t), metricsValues(t, "metrics.prometheusRule.enabled=true", "metrics.prometheusRule.pendingFor=20m"))
		o, ok := find(objects(t, rel), "PrometheusRule", metricsName)
		if !ok {
			t.Fatal("no PrometheusRule rendered")
		}
		rule := o.Obj.(*monitoringv1.PrometheusRule)
		dir := t.TempDir()
		rulesFile := filepath.Join(dir, "rules.yaml")
		b, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(rulesFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		promtool(t, "check", "rules", rulesFile)

		const (
			ours  = `{namespace="apps", job="demo-schemahook-metrics", instance="10.0.0.1:9300"}`
			other = `{namespace="other", job="demo-schemahook-metrics", instance="10.0.0.2:9300"}`
		)
		lbl := func(severity string) map[string]string {
			return map[string]string{"namespace": "apps", "job": "demo-schemahook-metrics", "instance": "10.0.0.1:9300", "severity": severity}
		}
		cases := []alertCase{
			{name: "dirty, not yet for 1m", alert: "SchemahookSchemaDirty", at: "2m",
				series: map[string]string{"schemahook_schema_dirty" + ours: "0 0 1 1 1 1"}},
			{name: "dirty for 1m", alert: "SchemahookSchemaDirty", at: "4m", firing: []map[string]string{lbl("critical")}, value: "1",
				series: map[string]string{"schemahook_schema_dirty" + ours: "0 0 1 1 1 1", "schemahook_schema_dirty" + other: "0x5"}},
			{name: "clean again", alert: "SchemahookSchemaDirty", at: "5m",
				series: map[string]string{"schemahook_schema_dirty" + ours: "0 0 1 1 1 0"}},
			{name: "pending less than pendingFor", alert: "SchemahookMigrationsPending", at: "15m",
				series: map[string]string{"schemahook_migrations_pending" + ours: "3x30"}},
			{name: "pending longer than pendingFor", alert: "SchemahookMigrationsPending", at: "25m", firing: []map[string]string{lbl("warning")}, value: "3",
				series: map[string]string{"schemahook_migrations_pending" + ours: "3x30"}},
			{name: "applied within pendingFor", alert: "SchemahookMigrationsPending", at: "25m",
				series: map[string]string{"schemahook_migrations_pending" + ours: "3x10 0x20"}},
			{name: "another release's pending", alert: "SchemahookMigrationsPending", at: "25m",
				series: map[string]string{"schemahook_migrations_pending" + other: "3x30"}},
			{name: "no drift", alert: "SchemahookSchemaDrift", at: "10m",
				series: map[string]string{"schemahook_schema_drift" + ours: "0x10"}},
			{name: "drift for 5m", alert: "SchemahookSchemaDrift", at: "10m", firing: []map[string]string{lbl("warning")}, value: "2",
				series: map[string]string{"schemahook_schema_drift" + ours: "0 0 2x8"}},
			{name: "exporter up", alert: "SchemahookExporterDown", at: "10m",
				series: map[string]string{"up" + ours: "1x10", "schemahook_up" + ours: "1x10"}},
			{name: "database unreadable", alert: "SchemahookExporterDown", at: "10m", firing: []map[string]string{lbl("warning")}, value: "0",
				series: map[string]string{"up" + ours: "1x10", "schemahook_up" + ours: "1 1 0x8"}},
			{name: "target down", alert: "SchemahookExporterDown", at: "10m", firing: []map[string]string{lbl("warning")}, value: "0",
				series: map[string]string{"up" + ours: "1 1 0x8"}},
			{name: "down briefly", alert: "SchemahookExporterDown", at: "10m",
				series: map[string]string{"up" + ours: "1 1 0 0 1x6", "schemahook_up" + ours: "1x10"}},
		}
		// Every alert of the rule has a case that fires it and one that does not.
		for _, g := range rule.Spec.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				if !slices.ContainsFunc(cases, func(c alertCase) bool { return c.alert == r.Alert && c.firing != nil }) ||
					!slices.ContainsFunc(cases, func(c alertCase) bool { return c.alert == r.Alert && c.firing == nil }) {
					t.Errorf("alert %s has no fixture that fires it and none that does not", r.Alert)
				}
			}
		}
		var tests []any
		for _, c := range cases {
			var inputs []any
			for _, s := range slices.Sorted(maps.Keys(c.series)) {
				inputs = append(inputs, map[string]string{"series": s, "values": c.series[s]})
			}
			var exp []any
			for _, l := range c.firing {
				exp = append(exp, map[string]any{"exp_labels": l, "exp_annotations": annotationsOf(t, rule, c.alert, c.value)})
			}
			tests = append(tests, map[string]any{
				"name": c.name, "interval": "1m", "input_series": inputs,
				"alert_rule_test": []any{map[string]any{"eval_time": c.at, "alertname": c.alert, "exp_alerts": exp}},
			})
		}
		b, err = yaml.Marshal(map[string]any{"rule_files": []string{rulesFile}, "evaluation_interval": "1m", "tests": tests})
		if err != nil {
			t.Fatal(err)
		}
		testFile := filepath.Join(dir, "tests.yaml")
		if err := os.WriteFile(testFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		promtool(t, "test", "rules", testFile)
	})
}

// annotationsOf returns the annotations of alert as Prometheus expands them for value: the
// chart's annotations use no template but {{ $value }}.
func annotationsOf(t *testing.T, rule *monitoringv1.PrometheusRule, alert, value string) map[string]string {
	t.Helper()
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert != alert {
				continue
			}
			out := map[string]string{}
			for k, v := range r.Annotations {
				v = strings.ReplaceAll(v, "{{ $value }}", value)
				if strings.Contains(v, "{{") {
					t.Fatalf("alert %s annotation %s uses a template this test cannot expand: %q", alert, k, v)
				}
				out[k] = v
			}
			return out
		}
	}
	t.Fatalf("no alert %s in the rule", alert)
	return nil
}

// promtool runs promtool from its pinning module (built on first use, then cached) and fails
// the test with its output unless it exits 0.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"tool", "promtool"}, args...)...)
	cmd.Dir = promtoolDir
	cmd.Env = append(os.Environ(), promtoolFlags)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}
