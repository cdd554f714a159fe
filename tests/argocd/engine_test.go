package argocd

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/gitops-engine/pkg/cache"
	"github.com/argoproj/gitops-engine/pkg/health"
	gosync "github.com/argoproj/gitops-engine/pkg/sync"
	"github.com/argoproj/gitops-engine/pkg/sync/common"
	"github.com/argoproj/gitops-engine/pkg/sync/hook"
	"github.com/argoproj/gitops-engine/pkg/utils/kube"
	"github.com/argoproj/gitops-engine/pkg/utils/tracing"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The Application's settings that Argo CD v2.14 takes from its defaults, written out.
const (
	// trackingLabel is the default label tracking (application.resourceTrackingMethod: label):
	// the repo-server sets it on every rendered object, hooks included, and the cluster cache
	// counts an object as the Application's when it carries it.
	trackingLabel = "app.kubernetes.io/instance"
	// appName is the Application's name, and so the Helm release name and the tracking label's
	// value (the repo-server renders with --name-template <app name> unless releaseName is set).
	appName = releaseName
	// argoCDManager is the field manager of Argo CD's controller (common.ArgoCDSSAManager).
	argoCDManager = "argocd-controller"
	// syncWaveDelay is controller/sync.go's delayBetweenSyncWaves (ARGOCD_SYNC_WAVE_DELAY unset).
	syncWaveDelay = 2 * time.Second
	// passInterval bounds the wait between two passes of one operation when the cluster cache
	// reports no change: Argo CD's controller is requeued on every change of the app's
	// resources, as gitops-engine's own engine.Sync also does, with a refresh each second.
	passInterval = time.Second
)

// application is one Argo CD Application over the test's namespace: a chart rendered like the
// repo-server does, and synced by gitops-engine the way Argo CD's controller drives it.
type application struct {
	w     *world
	cache cache.ClusterCache
	log   logr.Logger

	mu      sync.Mutex
	changed chan struct{} // a resource of the namespace changed in the cluster cache
	logs    map[string]string
}

// newApplication starts the cluster cache of the namespace (what Argo CD's controller keeps per
// destination cluster), with Argo CD's rule for what is the Application's: a top-level object
// carrying the tracking label.
func (w *world) newApplication() *application {
	w.t.Helper()
	a := &application{w: w, changed: make(chan struct{}, 1), logs: map[string]string{}}
	a.log = engineLogger(w.t)
	c := cache.NewClusterCache(w.rest,
		cache.SetNamespaces([]string{w.ns}),
		cache.SetClusterResources(false),
		cache.SetLogr(logr.Discard()),
		cache.SetPopulateResourceInfoHandler(func(un *unstructured.Unstructured, isRoot bool) (any, bool) {
			name := ""
			if isRoot {
				name = un.GetLabels()[trackingLabel]
			}
			return name, name != ""
		}),
	)
	if err := c.EnsureSynced(); err != nil {
		w.t.Fatalf("syncing the cluster cache of namespace %s: %v", w.ns, err)
	}
	c.OnResourceUpdated(func(newRes, oldRes *cache.Resource, _ map[kube.ResourceKey]*cache.Resource) {
		select {
		case a.changed <- struct{}{}:
		default:
		}
	})
	w.t.Cleanup(func() { c.Invalidate() })
	a.cache = c
	return a
}

// engineLogger sends gitops-engine's log lines about the operation's phase, applies and
// failures to the test log while the test runs (the rest repeats each pass's task list), and
// drops those of goroutines that outlive it.
func engineLogger(t *testing.T) logr.Logger {
	var mu sync.Mutex
	done := false
	t.Cleanup(func() { mu.Lock(); done = true; mu.Unlock() })
	return funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		keep := strings.Contains(args, "operation state") || strings.Contains(args, "Adding resource result") ||
			strings.Contains(strings.ToLower(args), "fail") || strings.Contains(args, `"error"`)
		if !done && keep {
			t.Logf("gitops-engine: %s %s", prefix, args)
		}
	}, funcr.Options{Verbosity: 0})
}

// render is what the repo-server does with a Helm source: `helm template` with the release name
// and the destination namespace (a client-only install: revision 1 and IsInstall on every
// render), every hook printed too, then the tracking label and the namespace set on each object.
func (a *application) render(vals map[string]any) []*unstructured.Unstructured {
	w := a.w
	w.t.Helper()
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...any) {},
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = releaseName, w.ns
	in.DryRun, in.DryRunOption, in.ClientOnly, in.Replace, in.IncludeCRDs = true, "client", true, true, true
	rel, err := in.Run(loadChart(w.t), vals)
	if err != nil {
		w.t.Fatalf("helm template: %v", err)
	}
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(manifests))
	for k := range manifests {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var docs []string
	for _, k := range keys {
		docs = append(docs, manifests[k])
	}
	for _, h := range rel.Hooks {
		docs = append(docs, h.Manifest)
	}
	var out []*unstructured.Unstructured
	for _, d := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(d), &u.Object); err != nil {
			w.t.Fatalf("decoding a rendered object: %v\n%s", err, d)
		}
		if len(u.Object) == 0 {
			continue
		}
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[trackingLabel] = appName
		u.SetLabels(labels)
		if namespaced, err := a.cache.IsNamespaced(u.GroupVersionKind().GroupKind()); err == nil && namespaced && u.GetNamespace() == "" {
			u.SetNamespace(w.ns)
		}
		out = append(out, u)
	}
	return out
}

// operation is the result of one sync operation.
type operation struct {
	phase    common.OperationPhase
	message  string
	results  []common.ResourceSyncResult
	took     time.Duration
	passes   int
	delays   int               // Argo CD's 2 s waits after a sync wave that was not the last
	jobLogs  map[string]string // hook Job name → the log of its last pod that ran to the end
	applied  []string          // "Kind/name" of every resource and hook the operation ran
	failures []string          // the results that failed, with their messages
}

func (o operation) String() string {
	return fmt.Sprintf("%s in %s (%d passes, %d wave delays): %s", o.phase, o.took.Round(10*time.Millisecond), o.passes, o.delays, o.message)
}

// sync runs one sync operation (`argocd app sync`, or an automated sync) of the rendered
// objects to its end, the way Argo CD's controller does: each pass reads the live objects from
// the cluster cache, reconciles them with the target (sync.Reconcile, hooks split off), builds a
// new sync context from the previous pass's state with the options of controller/sync.go, and
// runs Sync() once. Hook pods' logs are read at the start of each pass, because the pass that
// sees a Job complete may also delete it.
func (a *application) sync(vals map[string]any) operation {
	w := a.w
	w.t.Helper()
	targets := a.render(vals)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	revision := "rev-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	start := time.Now()
	startedAt := metav1.NewTime(start)
	op := operation{jobLogs: map[string]string{}}
	var (
		phase   common.OperationPhase // "" until the first pass: a new operation
		message string
		results []common.ResourceSyncResult
	)
	propagation := metav1.DeletePropagationForeground
	kubectl := &kube.KubectlCmd{Log: a.log, Tracer: tracing.NopTracer{}}
	for !phase.Completed() {
		op.passes++
		a.readHookLogs(ctx, op.jobLogs)
		live, err := a.cache.GetManagedLiveObjs(targets, func(r *cache.Resource) bool { return r.Info == appName })
		if err != nil {
			w.t.Fatalf("reading the live state: %v", err)
		}
		rec := gosync.Reconcile(targets, live, w.ns, a.cache)
		opts := []gosync.SyncOpt{
			gosync.WithLogr(a.log),
			gosync.WithHealthOverride(nil),
			// dryRun, prune (`argocd app sync --prune`), force, skipHooks (only for a sync of
			// selected resources or the "apply" strategy; never here).
			gosync.WithOperationSettings(false, true, false, false),
			gosync.WithInitialState(phase, message, results, startedAt),
			gosync.WithManifestValidation(true),
			gosync.WithSyncWaveHook(func(_ common.SyncPhase, _ int, finalWave bool) error {
				if !finalWave {
					op.delays++
					time.Sleep(syncWaveDelay)
				}
				return nil
			}),
			gosync.WithPruneLast(false),
			gosync.WithResourceModificationChecker(false, nil),
			gosync.WithPrunePropagationPolicy(&propagation),
			gosync.WithReplace(false),
			gosync.WithServerSideApply(false), // client-side apply, Argo CD's default
			gosync.WithServerSideApplyManager(argoCDManager),
			gosync.WithPruneConfirmed(false),
		}
		sc, cleanup, err := gosync.NewSyncContext(revision, rec, w.rest, w.rest, kubectl, w.ns, a.cache.GetOpenAPISchema(), opts...)
		if err != nil {
			w.t.Fatalf("creating the sync context: %v", err)
		}
		sc.Sync()
		phase, message, results = sc.GetState()
		cleanup()
		if phase.Completed() {
			break
		}
		select {
		case <-ctx.Done():
			w.t.Fatalf("the sync operation did not end within 5 minutes: %s: %s\n%s", phase, message, resultLines(results))
		case <-a.changed:
		case <-time.After(passInterval):
		}
	}
	op.phase, op.message, op.results, op.took = phase, message, results, time.Since(start)
	a.readHookLogs(ctx, op.jobLogs)
	for _, r := range results {
		op.applied = append(op.applied, r.ResourceKey.Kind+"/"+r.ResourceKey.Name)
		if r.Status == common.ResultCodeSyncFailed || r.HookPhase == common.OperationFailed || r.HookPhase == common.OperationError {
			op.failures = append(op.failures, fmt.Sprintf("%s/%s: %s", r.ResourceKey.Kind, r.ResourceKey.Name, r.Message))
		}
	}
	w.t.Logf("argocd: sync operation %s\n%s", op, resultLines(results))
	return op
}

func resultLines(rs []common.ResourceSyncResult) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "  %-8s %-8s %s/%s: %s %s %s\n", r.SyncPhase, r.HookType, r.ResourceKey.Kind, r.ResourceKey.Name, r.Status, r.HookPhase, r.Message)
	}
	return b.String()
}

// readHookLogs stores the log of every hook Job's pod whose containers all ended, by Job name.
func (a *application) readHookLogs(ctx context.Context, into map[string]string) {
	w := a.w
	pods, err := w.kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name"})
	if err != nil {
		w.t.Fatalf("listing hook pods: %v", err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			continue
		}
		job := p.Labels["batch.kubernetes.io/job-name"]
		a.mu.Lock()
		seen, ok := a.logs[string(p.UID)]
		a.mu.Unlock()
		if !ok {
			seen = w.podLog(ctx, p.Name, "")
			a.mu.Lock()
			a.logs[string(p.UID)] = seen
			a.mu.Unlock()
			w.t.Logf("argocd: hook pod %s (%s):\n%s", p.Name, p.Status.Phase, strings.TrimSpace(seen))
		}
		into[job] = seen
	}
}

// health is the Application's health as Argo CD's controller computes it (controller/health.go):
// the worst health of its live resources, hooks left out, a missing resource counting only if its
// kind has a health check.
func (a *application) health(vals map[string]any) (health.HealthStatusCode, []string) {
	w := a.w
	w.t.Helper()
	targets := a.render(vals)
	live, err := a.cache.GetManagedLiveObjs(targets, func(r *cache.Resource) bool { return r.Info == appName })
	if err != nil {
		w.t.Fatalf("reading the live state: %v", err)
	}
	rec := gosync.Reconcile(targets, live, w.ns, a.cache)
	status := health.HealthStatusHealthy
	var detail []string
	for i, target := range rec.Target {
		l := rec.Live[i]
		if target != nil && hook.Skip(target) || l != nil && hook.IsHook(l) {
			continue
		}
		var h *health.HealthStatus
		obj := target
		if l == nil {
			h = &health.HealthStatus{Status: health.HealthStatusMissing}
		} else {
			obj = l
			if h, err = health.GetResourceHealth(l, nil); err != nil {
				w.t.Fatalf("health of %s/%s: %v", l.GetKind(), l.GetName(), err)
			}
		}
		if h == nil || h.Status == health.HealthStatusMissing && health.GetHealthCheckFunc(obj.GroupVersionKind()) == nil {
			continue
		}
		detail = append(detail, fmt.Sprintf("%s/%s %s %s", obj.GetKind(), obj.GetName(), h.Status, h.Message))
		if health.IsWorse(status, h.Status) {
			status = h.Status
		}
	}
	slices.Sort(detail)
	return status, detail
}

// waitHealth waits until the Application's health is want and returns how long it took.
func (a *application) waitHealth(vals map[string]any, want health.HealthStatusCode, within time.Duration) time.Duration {
	w := a.w
	w.t.Helper()
	start := time.Now()
	for {
		got, detail := a.health(vals)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			w.t.Fatalf("the Application is %s after %s, want %s:\n  %s", got, within, want, strings.Join(detail, "\n  "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
