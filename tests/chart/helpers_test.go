// Package chart_test checks the Helm charts in charts/ through both Helm SDKs, v3 and v4 (see
// helm_test.go): values are validated, templates rendered and hooks parsed by Helm itself, and
// every rendered object is decoded strictly into its Kubernetes type before anything is asserted
// about it.
package chart_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
)

// Chart directories. testdata/charts is a symbolic link to the repository's charts/: go test
// caches a passing result and reuses it until a file the test read changes, but it only looks at
// files inside this module, so reading the charts through ../../charts would let a cached pass
// outlive a broken chart.
const (
	schemahookDir = "testdata/charts/schemahook"
	exampleAppDir = "testdata/charts/example-app"

	releaseName      = "demo"
	releaseNamespace = "apps"

	// helmDefaultTimeout is `helm install/upgrade --timeout`'s default, which applies to each hook.
	helmDefaultTimeoutSeconds = 300
)

// The chart's hook contract, spelled as Helm parses it.
var (
	schemaUpdateEvents  = []string{evPreInstall, evPreUpgrade}
	rollbackGuardEvents = []string{evPreRollback}
	hookDeletePolicies  = []string{policyBefore, policySuccess}
	// The Jobs' supporting objects are hook-failed too: Argo CD deletes them after a failed sync
	// (HookSucceeded only acts when the whole operation succeeds); the failed Job stays for its logs.
	supportDeletePolicies = []string{policyBefore, policySuccess, policyFailed}
)

// Object names of the release rendered as releaseName with the schemahook chart's defaults.
const (
	fullname          = releaseName + "-schemahook"
	schemaUpdateName  = fullname + "-schema-update"
	rollbackGuardName = fullname + "-rollback-guard"
)

// chartCase names a chart and how to load it, so that tests can run over both charts.
type chartCase struct {
	name string
	load func(t *testing.T) chartSrc
	// prefix turns a schemahook value path into this chart's path for it.
	prefix string
	// ciValues are the chart's ci/*-values.yaml files.
	ciValues []string
}

func charts(t *testing.T) []chartCase {
	t.Helper()
	return []chartCase{
		{name: "schemahook", load: loadSchemahook, prefix: "", ciValues: ciValuesFiles(t, schemahookDir)},
		{name: "example-app", load: loadExampleApp, prefix: "schemahook.", ciValues: ciValuesFiles(t, exampleAppDir)},
	}
}

func ciValuesFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("%s has no ci/*-values.yaml", dir)
	}
	return files
}

func loadSchemahook(*testing.T) chartSrc { return chartSrc{dir: schemahookDir} }

// loadExampleApp is example-app with this tree's schemahook chart as its dependency.
func loadExampleApp(*testing.T) chartSrc {
	return chartSrc{dir: exampleAppDir, deps: []chartSrc{{dir: schemahookDir}}}
}

// vals builds values the way `helm --set` does, so that types (int, bool, string) are what a user
// would get on the command line. Later assignments win.
func vals(t *testing.T, sets ...string) map[string]any {
	t.Helper()
	v := map[string]any{}
	for _, s := range sets {
		if err := strvals.ParseInto(s, v); err != nil {
			t.Fatalf("--set %s: %v", s, err)
		}
	}
	return v
}

// valuesFile reads a values file like `helm -f`.
func valuesFile(t *testing.T, path string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return v.AsMap()
}

// object is one rendered Kubernetes object.
type object struct {
	Kind string
	Name string
	// Hook is Helm's parsed view of the object if it is a hook, nil for an ordinary release object.
	Hook *hook
	Obj  runtime.Object
}

func (o object) String() string { return o.Kind + "/" + o.Name }

// strictDecoder rejects unknown and duplicated fields, so a misspelled field in a template fails
// here instead of being silently dropped by the API server.
var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// objects decodes every object of the release, hooks included.
func objects(t *testing.T, rel *rendered) []object {
	t.Helper()
	var out []object
	for _, m := range releaseutil.SplitManifests(rel.Manifest) {
		out = append(out, decode(t, m, nil))
	}
	for _, h := range rel.Hooks {
		out = append(out, decode(t, h.Manifest, h))
	}
	slices.SortFunc(out, func(a, b object) int { return strings.Compare(a.String(), b.String()) })
	return out
}

func decode(t *testing.T, manifest string, h *hook) object {
	t.Helper()
	obj, gvk, err := strictDecoder.Decode([]byte(manifest), nil, nil)
	if err != nil {
		t.Fatalf("decode rendered manifest: %v\n%s", err, manifest)
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		t.Fatalf("%s has no object metadata: %v", gvk, err)
	}
	return object{Kind: gvk.Kind, Name: m.GetName(), Hook: h, Obj: obj}
}

func objectMeta(t *testing.T, o object) metav1.Object {
	t.Helper()
	m, err := meta.Accessor(o.Obj)
	if err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	return m
}

func annotations(t *testing.T, o object) map[string]string {
	t.Helper()
	return objectMeta(t, o).GetAnnotations()
}

func ofKind[T runtime.Object](objs []object) []T {
	var out []T
	for _, o := range objs {
		if x, ok := o.Obj.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

func find(objs []object, kind, name string) (object, bool) {
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return object{}, false
}

// isMigrationsConfigMap reports whether o is the migrations ConfigMap a parent chart renders
// (schemahook.migrations.configMap): a hook that is kept for the gate, unlike the hook Jobs'
// supporting objects.
func isMigrationsConfigMap(o object) bool {
	return o.Kind == "ConfigMap" && o.Hook != nil && strings.HasSuffix(o.Name, "-migrations")
}

// podTemplate is a pod that a rendered object would run, with the object that owns it.
type podTemplate struct {
	Owner object
	Meta  metav1.ObjectMeta
	Spec  corev1.PodSpec
}

// pods returns every pod the release would run: Job and Deployment templates and bare Pods.
func pods(objs []object) []podTemplate {
	var out []podTemplate
	for _, o := range objs {
		switch x := o.Obj.(type) {
		case *batchv1.Job:
			out = append(out, podTemplate{o, x.Spec.Template.ObjectMeta, x.Spec.Template.Spec})
		case *appsv1.Deployment:
			out = append(out, podTemplate{o, x.Spec.Template.ObjectMeta, x.Spec.Template.Spec})
		case *corev1.Pod:
			out = append(out, podTemplate{o, x.ObjectMeta, x.Spec})
		}
	}
	return out
}

// containers returns init and regular containers.
func containers(spec corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

func envNamed(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// containerEnv is the environment a container starts with, as far as the release decides it:
// the data of ConfigMaps it reads through envFrom (which must be rendered), overridden by its literal
// env values. Values from a Secret show up as "<secret NAME/KEY>".
func containerEnv(t *testing.T, objs []object, pod podTemplate, ctr corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range ctr.EnvFrom {
		if ef.ConfigMapRef == nil {
			t.Fatalf("%s/%s: envFrom %+v, want only ConfigMaps", pod.Owner, ctr.Name, ef)
		}
		cm, ok := find(objs, "ConfigMap", ef.ConfigMapRef.Name)
		if !ok {
			t.Fatalf("%s/%s: envFrom ConfigMap %s, which the chart does not render", pod.Owner, ctr.Name, ef.ConfigMapRef.Name)
		}
		for k, v := range cm.Obj.(*corev1.ConfigMap).Data {
			env[ef.Prefix+k] = v
		}
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "<secret " + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key + ">"
		case e.ValueFrom != nil:
			t.Fatalf("%s/%s: env %s from %+v", pod.Owner, ctr.Name, e.Name, e.ValueFrom)
		default:
			env[e.Name] = e.Value
		}
	}
	return env
}

// copyDir copies a chart directory, leaving out a built charts/ folder. Links to directories
// (example-app's migrations/) are copied as the directories they point at, as `helm package` does.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() && rel == "charts" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.Type()&fs.ModeSymlink != 0 {
			if fi, err := os.Stat(path); err == nil && fi.IsDir() {
				copyDir(t, path+string(filepath.Separator), target)
				return nil
			}
		}
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// writeChart writes files (path relative to the chart → content) to a new temporary directory and
// returns it.
func writeChart(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// modifiedChart copies a chart directory and lets edit change the copy's Chart.yaml.
func modifiedChart(t *testing.T, src chartSrc, edit func(chartYAML string) string) chartSrc {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, src.dir, dir)
	path := filepath.Join(dir, "Chart.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	return chartSrc{dir: dir, deps: src.deps}
}
