package e2e

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// TestArgoCDRepeatedSync replays what Argo CD does with the chart on every sync, twice: render
// it like `helm template` (no release), run the PreSync hooks (Helm's pre-install and
// pre-upgrade) wave by wave, deleting an existing hook first (BeforeHookCreation) and waiting
// for Jobs to complete, apply the ordinary objects, then delete the hooks whose policy is
// HookSucceeded. The second sync must end exactly like the first — same database, same objects,
// same pods — and its hook must be a quick no-op that writes nothing.
func TestArgoCDRepeatedSync(t *testing.T) {
	s := setup(t)
	s.migrationsConfigMap("migrations-v5", exampleMigrations(t, 5))
	a := s.argo(s.values("migrations-v5", "schemahook.config.updateSchema=true"))

	first := a.sync()
	s.assertSchema(5, tablesV5, nil)
	if !strings.Contains(first.jobLogs[schemaUpdateName], "initializing empty database") {
		t.Errorf("the first sync's hook did not initialize the database:\n%s", first.jobLogs[schemaUpdateName])
	}
	rows := s.rowVersions()
	objects := a.objects()
	pods := s.assertAppReady()
	s.assertNoHookObjects("after the first sync")

	second := a.sync()
	t.Logf("PreSync hooks: first sync %s, second sync %s; whole sync: %s, %s",
		first.preSync.Round(10*time.Millisecond), second.preSync.Round(10*time.Millisecond),
		first.total.Round(10*time.Millisecond), second.total.Round(10*time.Millisecond))
	if log := second.jobLogs[schemaUpdateName]; !strings.Contains(log, "schema is current") || strings.Contains(log, "applied migration") {
		t.Errorf("the second sync's hook was not a no-op:\n%s", log)
	}
	if second.preSync > 45*time.Second {
		t.Errorf("the second sync's PreSync hooks took %s", second.preSync)
	}
	s.assertSchema(5, tablesV5, nil)
	if after := s.rowVersions(); !slices.Equal(rows, after) {
		t.Errorf("the second sync wrote to the version tables:\nbefore %v\nafter  %v", rows, after)
	}
	if after := a.objects(); !slices.Equal(objects, after) {
		t.Errorf("the objects after the second sync differ from the first's:\nfirst  %v\nsecond %v", objects, after)
	}
	if again := s.assertAppReady(); !slices.Equal(podUIDs(pods), podUIDs(again)) {
		t.Errorf("the second sync replaced the app pods: %v → %v", podUIDs(pods), podUIDs(again))
	}
	s.assertNoHookObjects("after the second sync")
	s.assertCreated("Job", schemaUpdateName)
}

// argoApp is one Argo CD Application: the chart rendered once, synced as often as asked.
type argoApp struct {
	s       *suite
	dyn     dynamic.Interface
	mapper  meta.RESTMapper
	objs    []*unstructured.Unstructured // the ordinary objects, applied in the Sync phase
	preSync []argoHook                   // PreSync hooks, in the order Argo runs them
}

type argoHook struct {
	obj             *unstructured.Unstructured
	wave            int
	beforeCreation  bool // BeforeHookCreation
	deleteOnSuccess bool // HookSucceeded
}

func (h argoHook) String() string { return h.obj.GetKind() + "/" + h.obj.GetName() }

type syncResult struct {
	preSync, total time.Duration
	jobLogs        map[string]string // Job name → its pod's log
}

// argo renders the chart the way Argo CD does, with `helm template` (a client-only install dry
// run: no cluster, no release, IsInstall and revision 1 every time), and sorts the hooks.
func (s *suite) argo(vals map[string]any) *argoApp {
	s.t.Helper()
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...any) {},
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = releaseName, s.ns
	in.DryRun, in.DryRunOption, in.ClientOnly, in.Replace = true, "client", true, true
	rel, err := in.Run(loadChart(s.t), vals)
	if err != nil {
		s.t.Fatalf("rendering the chart: %v", err)
	}
	dyn, err := dynamic.NewForConfig(s.rest)
	if err != nil {
		s.t.Fatal(err)
	}
	a := &argoApp{
		s:      s,
		dyn:    dyn,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(s.kube.Discovery())),
	}
	for _, m := range releaseutil.SplitManifests(rel.Manifest) {
		a.objs = append(a.objs, s.decode(m))
	}
	// Argo CD sees the hooks as part of the rendered output (helm template prints them too) and
	// reads their annotations itself.
	for _, h := range rel.Hooks {
		u := s.decode(h.Manifest)
		hook, ok := argoPreSync(s.t, u)
		if !ok {
			s.t.Logf("Argo CD would not run %s/%s (helm.sh/hook %q) in PreSync", u.GetKind(), u.GetName(), u.GetAnnotations()["helm.sh/hook"])
			continue
		}
		a.preSync = append(a.preSync, hook)
	}
	// Phase, then wave, then kind, then name.
	slices.SortStableFunc(a.preSync, func(x, y argoHook) int {
		return cmp.Or(cmp.Compare(x.wave, y.wave), cmp.Compare(kindRank(x.obj.GetKind()), kindRank(y.obj.GetKind())),
			cmp.Compare(x.obj.GetName(), y.obj.GetName()))
	})
	slices.SortStableFunc(a.objs, func(x, y *unstructured.Unstructured) int {
		return cmp.Compare(kindRank(x.GetKind()), kindRank(y.GetKind()))
	})
	s.t.Logf("Argo CD PreSync hooks in order: %v", a.preSync)
	if len(a.preSync) == 0 || a.preSync[len(a.preSync)-1].obj.GetName() != schemaUpdateName {
		s.t.Fatalf("the PreSync hooks do not end with the Job %s: %v", schemaUpdateName, a.preSync)
	}
	return a
}

func (s *suite) decode(manifest string) *unstructured.Unstructured {
	s.t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		s.t.Fatalf("decoding a rendered object: %v\n%s", err, manifest)
	}
	u.SetNamespace(s.ns)
	return u
}

// argoPreSync maps an object's hook annotations the way Argo CD does (gitops-engine's
// hook/helm): argocd.argoproj.io/hook wins over helm.sh/hook; pre-install and pre-upgrade are
// PreSync; pre-rollback and test are not supported and never run. Delete policies from both
// annotations add up, BeforeHookCreation when there are none; the wave is sync-wave, else the
// Helm hook weight.
func argoPreSync(t *testing.T, u *unstructured.Unstructured) (argoHook, bool) {
	ann := u.GetAnnotations()
	var phases []string
	if v, ok := ann["argocd.argoproj.io/hook"]; ok {
		phases = splitList(v)
	} else {
		for _, e := range splitList(ann["helm.sh/hook"]) {
			switch e {
			case "pre-install", "pre-upgrade":
				phases = append(phases, "PreSync")
			case "post-install", "post-upgrade":
				phases = append(phases, "PostSync")
			}
		}
	}
	if !slices.Contains(phases, "PreSync") {
		return argoHook{}, false
	}
	h := argoHook{obj: u}
	policies := splitList(ann["argocd.argoproj.io/hook-delete-policy"])
	for _, p := range splitList(ann["helm.sh/hook-delete-policy"]) {
		switch p {
		case "before-hook-creation":
			policies = append(policies, "BeforeHookCreation")
		case "hook-succeeded":
			policies = append(policies, "HookSucceeded")
		case "hook-failed":
			policies = append(policies, "HookFailed")
		}
	}
	if len(policies) == 0 {
		policies = []string{"BeforeHookCreation"}
	}
	h.beforeCreation = slices.Contains(policies, "BeforeHookCreation")
	h.deleteOnSuccess = slices.Contains(policies, "HookSucceeded")
	wave := ann["argocd.argoproj.io/sync-wave"]
	if wave == "" {
		wave = ann["helm.sh/hook-weight"]
	}
	if wave != "" {
		w, err := strconv.Atoi(wave)
		if err != nil {
			t.Fatalf("%s/%s: wave %q: %v", u.GetKind(), u.GetName(), wave, err)
		}
		h.wave = w
	}
	return h, true
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// kindRank orders kinds like Argo CD and Helm do (dependencies first).
func kindRank(kind string) int {
	if i := slices.Index(releaseutil.InstallOrder, kind); i >= 0 {
		return i
	}
	return len(releaseutil.InstallOrder)
}

// sync runs one Argo CD sync: PreSync hooks, the Sync phase, then HookSucceeded deletions.
func (a *argoApp) sync() syncResult {
	s := a.s
	s.t.Helper()
	ctx := ctxT(s.t, 3*time.Minute)
	res := syncResult{jobLogs: map[string]string{}}
	start := time.Now()
	for i := 0; i < len(a.preSync); {
		// One wave: create every hook of it, then wait until they are all done.
		j := i
		for j < len(a.preSync) && a.preSync[j].wave == a.preSync[i].wave {
			j++
		}
		wave := a.preSync[i:j]
		for _, h := range wave {
			if h.beforeCreation {
				a.delete(ctx, h.obj)
			}
			a.apply(ctx, h.obj)
			s.t.Logf("argo: PreSync wave %d: created %s", h.wave, h)
		}
		for _, h := range wave {
			if h.obj.GetKind() == "Job" {
				res.jobLogs[h.obj.GetName()] = a.waitJob(ctx, h.obj.GetName())
			}
		}
		i = j
	}
	res.preSync = time.Since(start)
	for _, o := range a.objs {
		a.apply(ctx, o)
	}
	s.waitFor("the Deployment rolled out", 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		d, err := s.kube.AppsV1().Deployments(s.ns).Get(ctx, deploymentName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		want := *d.Spec.Replicas
		st := d.Status
		return st.ObservedGeneration == d.Generation && st.UpdatedReplicas == want && st.ReadyReplicas == want && st.Replicas == want,
			fmt.Sprintf("%+v", st), nil
	})
	for i := len(a.preSync) - 1; i >= 0; i-- {
		if h := a.preSync[i]; h.deleteOnSuccess {
			a.delete(ctx, h.obj)
			s.t.Logf("argo: deleted %s (HookSucceeded)", h)
		}
	}
	res.total = time.Since(start)
	return res
}

func (a *argoApp) resource(u *unstructured.Unstructured) dynamic.ResourceInterface {
	a.s.t.Helper()
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		a.s.t.Fatalf("no API resource for %s: %v", gvk, err)
	}
	return a.dyn.Resource(m.Resource).Namespace(a.s.ns)
}

// apply is a server-side apply under Argo CD's field manager.
func (a *argoApp) apply(ctx context.Context, u *unstructured.Unstructured) {
	a.s.t.Helper()
	if _, err := a.resource(u).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "argocd-controller", Force: true}); err != nil {
		a.s.t.Fatalf("applying %s/%s: %v", u.GetKind(), u.GetName(), err)
	}
}

// delete deletes the object with foreground propagation (a Job's pods go first) and waits
// until it is gone.
func (a *argoApp) delete(ctx context.Context, u *unstructured.Unstructured) {
	a.s.t.Helper()
	ri := a.resource(u)
	err := ri.Delete(ctx, u.GetName(), metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationForeground)})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		a.s.t.Fatalf("deleting %s/%s: %v", u.GetKind(), u.GetName(), err)
	}
	a.s.waitFor(fmt.Sprintf("%s/%s deleted", u.GetKind(), u.GetName()), time.Minute, func(ctx context.Context) (bool, string, error) {
		_, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		return false, "still there", err
	})
}

// waitJob waits for the Job to complete and returns its pod's log; a failed Job fails the sync.
func (a *argoApp) waitJob(ctx context.Context, name string) string {
	s := a.s
	s.t.Helper()
	var job *batchv1.Job
	s.waitFor("Job "+name+" complete", 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		j, err := s.kube.BatchV1().Jobs(s.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		job = j
		if jobCondition(j, batchv1.JobFailed) != nil {
			return true, "", nil
		}
		return jobCondition(j, batchv1.JobComplete) != nil, fmt.Sprintf("%+v", j.Status), nil
	})
	log := s.jobLog(name)
	s.t.Logf("argo: Job %s log:\n%s", name, strings.TrimSpace(log))
	if c := jobCondition(job, batchv1.JobFailed); c != nil {
		s.t.Fatalf("argo: PreSync Job %s failed (%s: %s): the sync stops", name, c.Reason, c.Message)
	}
	return log
}

// objects is what a sync leaves in the namespace: every object of the kinds the charts render
// (hooks included) and of the app's controllers, as "Kind/name", sorted.
func (a *argoApp) objects() []string {
	s := a.s
	s.t.Helper()
	ctx := ctxT(s.t, 30*time.Second)
	var out []string
	for _, k := range []struct{ group, version, resource, kind string }{
		{"", "v1", "configmaps", "ConfigMap"}, {"", "v1", "secrets", "Secret"}, {"", "v1", "serviceaccounts", "ServiceAccount"},
		{"", "v1", "services", "Service"}, {"", "v1", "pods", "Pod"}, {"apps", "v1", "deployments", "Deployment"},
		{"apps", "v1", "replicasets", "ReplicaSet"}, {"batch", "v1", "jobs", "Job"},
		{"rbac.authorization.k8s.io", "v1", "roles", "Role"}, {"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"},
	} {
		gvr := schema.GroupVersionResource{Group: k.group, Version: k.version, Resource: k.resource}
		l, err := a.dyn.Resource(gvr).Namespace(s.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			s.t.Fatalf("listing %s: %v", k.resource, err)
		}
		for _, o := range l.Items {
			if o.GetDeletionTimestamp() == nil {
				out = append(out, k.kind+"/"+o.GetName())
			}
		}
	}
	slices.Sort(out)
	return out
}
