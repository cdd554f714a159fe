package chart_test

import (
	"bytes"
	"fmt"
	"io"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"log/slog"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	ri "helm.sh/helm/v4/pkg/release"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"
)

// helm4 is the helm.sh/helm/v4 SDK.
type helm4 struct{}

func (helm4) name() string { return "helm4" }

func (helm4) load(t *testing.T, src chartSrc) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(src.dir)
	if err != nil {
		t.Fatalf("helm4: load %s: %v", src.dir, err)
	}
	if len(src.deps) > 0 {
		var deps []*chart.Chart
		for _, d := range src.deps {
			deps = append(deps, helm4{}.load(t, d))
		}
		ch.SetDependencies(deps...)
	}
	return ch
}

// config is Helm's test kit: in-memory storage, a kube client that prints instead of applying and
// whose waits succeed at once, hook logs and Helm's own log discarded.
func (helm4) config() *action.Configuration {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	cfg.Releases = storage.Init(driver.NewMemory())
	cfg.KubeClient = &kubefake.PrintingKubeClient{Out: io.Discard, LogOutput: io.Discard}
	cfg.Capabilities = common.DefaultCapabilities
	cfg.HookOutputFunc = func(_, _, _ string) io.Writer { return io.Discard }
	return cfg
}

func (h helm4) render(t *testing.T, src chartSrc, values map[string]any, upgrade bool) (*rendered, error) {
	t.Helper()
	in := action.NewInstall(h.config())
	in.ReleaseName = releaseName
	in.Namespace = releaseNamespace
	in.DryRunStrategy = action.DryRunClient
	in.Replace = true
	in.IsUpgrade = upgrade
	return fromHelm4(in.Run(h.load(t, src), values))
}

func (helm4) lint(t *testing.T, dir string, values map[string]any) lintResult {
	t.Helper()
	l := action.NewLint()
	l.Strict = true
	l.Namespace = releaseNamespace
	res := l.Run([]string{dir}, values)
	out := lintResult{linted: res.TotalChartsLinted, errors: res.Errors}
	for _, m := range res.Messages {
		out.messages = append(out.messages, m.Error())
	}
	return out
}

func (h helm4) newCluster(t *testing.T, rec *hookRecorder) cluster {
	cfg := h.config()
	if rec != nil {
		cfg.KubeClient = &recordingKubeClient4{PrintingKubeClient: kubefake.PrintingKubeClient{Out: io.Discard, LogOutput: io.Discard}, rec: rec}
	}
	return &helm4Cluster{t: t, cfg: cfg}
}

type helm4Cluster struct {
	t   *testing.T
	cfg *action.Configuration
}

func (c *helm4Cluster) install(src chartSrc, values map[string]any) (*rendered, error) {
	in := action.NewInstall(c.cfg)
	in.ReleaseName, in.Namespace = releaseName, releaseNamespace
	return fromHelm4(in.Run(helm4{}.load(c.t, src), values))
}

func (c *helm4Cluster) upgrade(src chartSrc, values map[string]any, opts upgradeOptions) (*rendered, error) {
	up := action.NewUpgrade(c.cfg)
	up.Namespace = releaseNamespace
	up.ReuseValues, up.ResetThenReuseValues = opts.reuseValues, opts.resetThenReuseValues
	return fromHelm4(up.Run(releaseName, helm4{}.load(c.t, src), values))
}

func fromHelm4(r ri.Releaser, err error) (*rendered, error) {
	if err != nil {
		return nil, err
	}
	rel, ok := r.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("helm4 returned a %T, want a *release.Release (pkg/release/v1)", r)
	}
	out := &rendered{Manifest: rel.Manifest, Notes: rel.Info.Notes, Config: rel.Config,
		Chart: fmt.Sprintf("%s-%s", rel.Chart.Metadata.Name, rel.Chart.Metadata.Version)}
	for _, h := range rel.Hooks {
		x := &hook{Name: h.Name, Kind: h.Kind, Path: h.Path, Manifest: h.Manifest, Weight: h.Weight}
		for _, e := range h.Events {
			x.Events = append(x.Events, string(e))
		}
		for _, p := range h.DeletePolicies {
			x.DeletePolicies = append(x.DeletePolicies, string(p))
		}
		for _, p := range h.OutputLogPolicies {
			x.OutputLogPolicies = append(x.OutputLogPolicies, string(p))
		}
		out.Hooks = append(out.Hooks, x)
	}
	return out, nil
}

func (c *helm4Cluster) rollback(revision int) error {
	rb := action.NewRollback(c.cfg)
	rb.Version = revision
	rb.Timeout = time.Minute
	return rb.Run(releaseName)
}

func (c *helm4Cluster) lastStatus() string {
	last, err := c.cfg.Releases.Last(releaseName)
	if err != nil {
		c.t.Fatal(err)
	}
	rel, ok := last.(*release.Release)
	if !ok {
		c.t.Fatalf("helm4 stored a %T, want a *release.Release (pkg/release/v1)", last)
	}
	return rel.Info.Status.String()
}

// recordingKubeClient4 is the printing fake reporting to a hookRecorder. Helm 4 waits through a
// Waiter the client hands out, so the waits are recorded there.
type recordingKubeClient4 struct {
	kubefake.PrintingKubeClient
	rec *hookRecorder
}

func (c *recordingKubeClient4) Build(r io.Reader, validate bool) (kube.ResourceList, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	c.rec.built = string(b)
	return c.PrintingKubeClient.Build(bytes.NewReader(b), validate)
}

func (c *recordingKubeClient4) GetWaiter(ws kube.WaitStrategy) (kube.Waiter, error) {
	return c.GetWaiterWithOptions(ws)
}

func (c *recordingKubeClient4) GetWaiterWithOptions(ws kube.WaitStrategy, opts ...kube.WaitOption) (kube.Waiter, error) {
	w, err := c.PrintingKubeClient.GetWaiterWithOptions(ws, opts...)
	if err != nil {
		return nil, err
	}
	return recordingWaiter4{Waiter: w, rec: c.rec}, nil
}

func (c *recordingKubeClient4) Update(original, target kube.ResourceList, opts ...kube.ClientUpdateOption) (*kube.Result, error) {
	c.rec.steps = append(c.rec.steps, "update")
	return c.PrintingKubeClient.Update(original, target, opts...)
}

func (c *recordingKubeClient4) GetPodList(namespace string, opts metav1.ListOptions) (*corev1.PodList, error) {
	c.rec.logsFor = append(c.rec.logsFor, opts.LabelSelector)
	return c.PrintingKubeClient.GetPodList(namespace, opts)
}

type recordingWaiter4 struct {
	kube.Waiter
	rec *hookRecorder
}

func (w recordingWaiter4) WatchUntilReady(resources kube.ResourceList, timeout time.Duration) error {
	if err := w.rec.watch(); err != nil {
		return err
	}
	return w.Waiter.WatchUntilReady(resources, timeout)
}
