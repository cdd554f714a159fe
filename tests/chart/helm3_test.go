package chart_test

import (
	"bytes"
	"fmt"
	"io"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/kube"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// helm3 is the helm.sh/helm/v3 SDK.
type helm3 struct{}

func (helm3) name() string { return "helm3" }

func (helm3) load(t *testing.T, src chartSrc) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(src.dir)
	if err != nil {
		t.Fatalf("helm3: load %s: %v", src.dir, err)
	}
	if len(src.deps) > 0 {
		var deps []*chart.Chart
		for _, d := range src.deps {
			deps = append(deps, helm3{}.load(t, d))
		}
		ch.SetDependencies(deps...)
	}
	return ch
}

// config is Helm's test kit: in-memory storage, a kube client that prints instead of applying and
// whose waits succeed at once, hook logs discarded.
func (helm3) config() *action.Configuration {
	return &action.Configuration{
		Releases:       storage.Init(driver.NewMemory()),
		KubeClient:     &kubefake.PrintingKubeClient{Out: io.Discard, LogOutput: io.Discard},
		Capabilities:   chartutil.DefaultCapabilities,
		Log:            func(string, ...any) {},
		HookOutputFunc: func(_, _, _ string) io.Writer { return io.Discard },
	}
}

func (h helm3) render(t *testing.T, src chartSrc, values map[string]any, upgrade bool) (*rendered, error) {
	t.Helper()
	in := action.NewInstall(h.config())
	in.ReleaseName = releaseName
	in.Namespace = releaseNamespace
	in.DryRun = true
	in.DryRunOption = "client"
	in.ClientOnly = true
	in.Replace = true
	in.IsUpgrade = upgrade
	return fromHelm3(in.Run(h.load(t, src), values))
}

func (helm3) lint(t *testing.T, dir string, values map[string]any) lintResult {
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

func (h helm3) newCluster(t *testing.T, rec *hookRecorder) cluster {
	cfg := h.config()
	if rec != nil {
		cfg.KubeClient = &recordingKubeClient3{PrintingKubeClient: kubefake.PrintingKubeClient{Out: io.Discard, LogOutput: io.Discard}, rec: rec}
	}
	return &helm3Cluster{t: t, cfg: cfg}
}

type helm3Cluster struct {
	t   *testing.T
	cfg *action.Configuration
}

func (c *helm3Cluster) install(src chartSrc, values map[string]any) (*rendered, error) {
	in := action.NewInstall(c.cfg)
	in.ReleaseName, in.Namespace = releaseName, releaseNamespace
	return fromHelm3(in.Run(helm3{}.load(c.t, src), values))
}

func (c *helm3Cluster) upgrade(src chartSrc, values map[string]any, opts upgradeOptions) (*rendered, error) {
	up := action.NewUpgrade(c.cfg)
	up.Namespace = releaseNamespace
	up.ReuseValues, up.ResetThenReuseValues = opts.reuseValues, opts.resetThenReuseValues
	return fromHelm3(up.Run(releaseName, helm3{}.load(c.t, src), values))
}

func fromHelm3(rel *release.Release, err error) (*rendered, error) {
	if err != nil {
		return nil, err
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

func (c *helm3Cluster) rollback(revision int) error {
	rb := action.NewRollback(c.cfg)
	rb.Version = revision
	rb.Timeout = time.Minute
	return rb.Run(releaseName)
}

func (c *helm3Cluster) lastStatus() string {
	rel, err := c.cfg.Releases.Last(releaseName)
	if err != nil {
		c.t.Fatal(err)
	}
	return rel.Info.Status.String()
}

// recordingKubeClient3 is the printing fake reporting to a hookRecorder.
type recordingKubeClient3 struct {
	kubefake.PrintingKubeClient
	rec *hookRecorder
}

var _ kube.InterfaceLogs = (*recordingKubeClient3)(nil)

func (c *recordingKubeClient3) Build(r io.Reader, validate bool) (kube.ResourceList, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	c.rec.built = string(b)
	return c.PrintingKubeClient.Build(bytes.NewReader(b), validate)
}

func (c *recordingKubeClient3) WatchUntilReady(resources kube.ResourceList, timeout time.Duration) error {
	if err := c.rec.watch(); err != nil {
		return err
	}
	return c.PrintingKubeClient.WatchUntilReady(resources, timeout)
}

func (c *recordingKubeClient3) Update(original, target kube.ResourceList, force bool) (*kube.Result, error) {
	c.rec.steps = append(c.rec.steps, "update")
	return c.PrintingKubeClient.Update(original, target, force)
}

func (c *recordingKubeClient3) GetPodList(namespace string, opts metav1.ListOptions) (*corev1.PodList, error) {
	c.rec.logsFor = append(c.rec.logsFor, opts.LabelSelector)
	return c.PrintingKubeClient.GetPodList(namespace, opts)
}
