package chart_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// copyOn are the values of the copy strategy at schema version 5, for chart c.
func copyOn(c chartCase, extra ...string) []string {
	p := c.prefix
	return append([]string{p + "config.updateSchema=true", p + "database.host=pg.example", p + "database.name=app",
		p + "database.existingSecret=pg", p + "gate.useMigrationCredentials=true",
		p + "schemaUpdate.strategy=copy", p + "schemaUpdate.copy.schemaVersion=5"}, extra...)
}

// TestCopyStrategyWiring: with the copy strategy the hook Job and the guard connect to the base
// database and are told the copy's name, version and lineage; every pod of the release (gate,
// application, test pod) uses the copy, named by content, and the gate reads the lineage.
func TestCopyStrategyWiring(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			for _, upgrade := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/upgrade=%t", c.name, upgrade), func(t *testing.T) {
					rel, err := render(t, sdk, c.load(t), vals(t, copyOn(c, c.prefix+"schemaUpdate.copy.keep=2", c.prefix+"schemaUpdate.copy.method=file_copy")...), upgrade)
					if err != nil {
						t.Fatal(err)
					}
					objs := objects(t, rel)
					for _, name := range []string{schemaUpdateName, rollbackGuardName} {
						o, ok := find(objs, "Job", name)
						if !ok {
							t.Fatalf("no Job %s", name)
						}
						tmpl := o.Obj.(*batchv1.Job).Spec.Template
						env := containerEnv(t, objs, podTemplate{o, tmpl.ObjectMeta, tmpl.Spec}, tmpl.Spec.Containers[0])
						want := map[string]string{"PGDATABASE": "app", "SCHEMAHOOK_STRATEGY": "copy", "SCHEMAHOOK_COPY_DATABASE": "app__v5",
							"SCHEMAHOOK_COPY_VERSION": "5", "SCHEMAHOOK_COPY_LINEAGE": "app__schemahook", "SCHEMAHOOK_COPY_KEEP": "2",
							"SCHEMAHOOK_COPY_METHOD": "file_copy", "SCHEMAHOOK_COPY_DISK_BUDGET": "0", "SCHEMAHOOK_ACCEPT_WRITE_LOSS": "false"}
						for k, v := range want {
							if env[k] != v {
								t.Errorf("%s: %s=%q, want %q", name, k, env[k], v)
							}
						}
					}
					for _, p := range pods(objs) {
						if _, isJob := p.Owner.Obj.(*batchv1.Job); isJob {
							continue
						}
						for _, ctr := range containers(p.Spec) {
							if ctr.Name == "install-schemahook" {
								continue
							}
							env := containerEnv(t, objs, p, ctr)
							if env["PGDATABASE"] != "app__v5" {
								t.Errorf("%s/%s: PGDATABASE=%q, want the copy app__v5", p.Owner, ctr.Name, env["PGDATABASE"])
							}
							if env["SCHEMAHOOK_COPY_LINEAGE"] != "app__schemahook" {
								t.Errorf("%s/%s: SCHEMAHOOK_COPY_LINEAGE=%q, want app__schemahook (the gate refuses a lossy switch back)", p.Owner, ctr.Name, env["SCHEMAHOOK_COPY_LINEAGE"])
							}
						}
					}
					if c.name == "example-app" && len(ofKind[*appsv1.Deployment](objs)) != 1 {
						t.Error("the example app's Deployment is missing")
					}
				})
			}
		}
	})
}

// TestCopyStrategyNaming: the name comes from the values only (not the revision, which Argo CD
// always renders as 1), follows nameTemplate, and inPlace leaves everything as before.
func TestCopyStrategyNaming(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		c := charts(t)[0]
		env := func(sets ...string) map[string]string {
			t.Helper()
			return podEnv(t, sdk, c, vals(t, sets...))
		}
		if got := podEnv(t, sdk, c, nameTemplate(vals(t, copyOn(c)...), "{{ .database }}_schema{{ .version }}"))["PGDATABASE"]; got != "app_schema5" {
			t.Errorf("custom template: PGDATABASE=%q, want app_schema5", got)
		}
		plain := env("config.updateSchema=true", "database.host=pg.example", "database.name=app", "database.existingSecret=pg", "gate.useMigrationCredentials=true")
		if plain["PGDATABASE"] != "app" || plain["SCHEMAHOOK_COPY_LINEAGE"] != "" {
			t.Errorf("inPlace: PGDATABASE=%q SCHEMAHOOK_COPY_LINEAGE=%q, want app and none", plain["PGDATABASE"], plain["SCHEMAHOOK_COPY_LINEAGE"])
		}
	})
}

// nameTemplate sets schemaUpdate.copy.nameTemplate, which --set cannot spell.
func nameTemplate(v map[string]any, tmpl string) map[string]any {
	v["schemaUpdate"].(map[string]any)["copy"].(map[string]any)["nameTemplate"] = tmpl
	return v
}

// podEnv is the environment of the helm test pod's container (it runs `check`, like the gate).
func podEnv(t *testing.T, sdk helm, c chartCase, values map[string]any) map[string]string {
	t.Helper()
	objs := objects(t, mustRender(t, sdk, c.load(t), values))
	for _, o := range objs {
		if pod, ok := o.Obj.(*corev1.Pod); ok {
			return containerEnv(t, objs, podTemplate{o, pod.ObjectMeta, pod.Spec}, pod.Spec.Containers[0])
		}
	}
	t.Fatal("no test pod rendered")
	return nil
}

// TestCopyStrategyBadValues: what cannot work is refused at render, before any hook runs.
func TestCopyStrategyBadValues(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		c := charts(t)[0]
		long := strings.Repeat("d", 60)
		if _, err := render(t, sdk, c.load(t), nameTemplate(vals(t, copyOn(c)...), "{{ .database }}"), false); err == nil || !strings.Contains(err.Error(), "renders database.name itself") {
			t.Errorf("a template without the version: render = %v", err)
		}
		for name, tc := range map[string]struct {
			sets []string
			want string
		}{
			"no schemaVersion":           {[]string{"schemaUpdate.copy.schemaVersion="}, "schemaUpdate.copy.schemaVersion is required"},
			"schemaVersion not a number": {[]string{"schemaUpdate.copy.schemaVersion=v5"}, "schemaVersion"},
			"no database.name":           {[]string{"database.name="}, "database.name is required with schemaUpdate.strategy=copy"},
			"name over 63 bytes":         {[]string{"database.name=" + long}, "63 bytes"},
			"unknown strategy":           {[]string{"schemaUpdate.strategy=bluegreen"}, "strategy"},
			"unknown method":             {[]string{"schemaUpdate.copy.method=clone"}, "method"},
			"keep 0":                     {[]string{"schemaUpdate.copy.keep=0"}, "keep"},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := render(t, sdk, c.load(t), vals(t, copyOn(c, tc.sets...)...), false)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("render = %v, want an error containing %q", err, tc.want)
				}
			})
		}
	})
}

// TestCopyStrategyWithStopWorkloads: both at once: the hook gets the selector and the copy
// settings, and stops the workloads only when it is about to copy (see update --strategy copy).
func TestCopyStrategyWithStopWorkloads(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		c := charts(t)[0]
		rel := mustRender(t, sdk, c.load(t), vals(t, copyOn(c, "schemaUpdate.stopWorkloads.enabled=true", "schemaUpdate.stopWorkloads.selector=app=web")...))
		objs := objects(t, rel)
		o, ok := find(objs, "Job", schemaUpdateName)
		if !ok {
			t.Fatal("no schema-update Job")
		}
		tmpl := o.Obj.(*batchv1.Job).Spec.Template
		env := containerEnv(t, objs, podTemplate{o, tmpl.ObjectMeta, tmpl.Spec}, tmpl.Spec.Containers[0])
		if env["SCHEMAHOOK_STOP_WORKLOADS"] != "app=web" || env["SCHEMAHOOK_STRATEGY"] != "copy" || env["PGDATABASE"] != "app" {
			t.Errorf("Job env: SCHEMAHOOK_STOP_WORKLOADS=%q SCHEMAHOOK_STRATEGY=%q PGDATABASE=%q", env["SCHEMAHOOK_STOP_WORKLOADS"], env["SCHEMAHOOK_STRATEGY"], env["PGDATABASE"])
		}
	})
}

// TestCopyVersionFromValuesFile: a values file's numbers reach the templates as float64, so a
// timestamp version (what `schemahook create --timestamp` names files with) must not render in
// exponent form, which the chart would refuse as "schemaVersion is required".
func TestCopyVersionFromValuesFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "values.yaml")
	body := "config:\n  updateSchema: true\ndatabase:\n  host: pg.example\n  name: app\n  existingSecret: pg\n" +
		"schemaUpdate:\n  strategy: copy\n  copy:\n    schemaVersion: 20240101120000\n    keep: 2\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	forEachHelm(t, func(t *testing.T, sdk helm) {
		rel, err := render(t, sdk, loadSchemahook(t), valuesFile(t, file), false)
		if err != nil {
			t.Fatal(err)
		}
		objs := objects(t, rel)
		o, ok := find(objs, "Job", schemaUpdateName)
		if !ok {
			t.Fatalf("no Job %s", schemaUpdateName)
		}
		tmpl := o.Obj.(*batchv1.Job).Spec.Template
		env := containerEnv(t, objs, podTemplate{o, tmpl.ObjectMeta, tmpl.Spec}, tmpl.Spec.Containers[0])
		for k, want := range map[string]string{"SCHEMAHOOK_COPY_DATABASE": "app__v20240101120000", "SCHEMAHOOK_COPY_VERSION": "20240101120000", "SCHEMAHOOK_COPY_KEEP": "2"} {
			if env[k] != want {
				t.Errorf("%s=%q, want %q", k, env[k], want)
			}
		}
	})
}
