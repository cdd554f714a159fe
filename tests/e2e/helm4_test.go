package e2e

// The Helm 4 backend of the suite's Helm actions. The scenarios that must behave the same on
// both majors run once per major (helmMajors); s.install, s.upgrade, s.rollback, s.lastRelease
// and s.helmTest then drive Helm 4's SDK the way the helm 4 CLI does, and return the release as
// Helm 3's type: both majors store the same release record (Secret sh.helm.release.v1.*), so the
// record's JSON converts one into the other, and the assertions stay the same.

import (
	"context"
	"encoding/json"

	"log/slog"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	action4 "helm.sh/helm/v4/pkg/action"
	chart4 "helm.sh/helm/v4/pkg/chart/v2"
	loader4 "helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	release4 "helm.sh/helm/v4/pkg/release"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// helmMajors runs fn as subtests "helm3" and "helm4", each with a suite of its own (namespace,
// database) whose Helm actions use that major's SDK.
func helmMajors(t *testing.T, fn func(t *testing.T, s *suite)) {
	for _, major := range []int{3, 4} {
		t.Run(map[int]string{3: "helm3", 4: "helm4"}[major], func(t *testing.T) {
			s := setup(t)
			if major == 4 {
				s.major, s.helm4 = 4, s.helmConfig4()
			}
			fn(t, s)
		})
	}
}

// helmConfig4 is helmConfig for Helm 4: Helm's log (slog) in the test log, and hook pods' logs
// in the test log and s.hookLogs, as Helm 4's SDK writes them (the CLI routes the same bytes
// through its logger).
func (s *suite) helmConfig4() *action4.Configuration {
	flags := genericclioptions.NewConfigFlags(false)
	kc, ns := s.env.kubeconfig, s.ns
	flags.KubeConfig, flags.Namespace = &kc, &ns
	logw := &lineWriter{fn: func(line string) { s.t.Logf("helm4: %s", line) }}
	cfg := action4.NewConfiguration(action4.ConfigurationSetLogger(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err := cfg.Init(flags, s.ns, "secret"); err != nil {
		s.t.Fatalf("helm 4 init: %v", err)
	}
	cfg.SetHookOutputFunc(s.hookOutput)
	return cfg
}

// loadChart4 is loadChart with Helm 4's loader: example-app under dir with dir's schemahook
// chart as its dependency.
func loadChart4(t *testing.T, dir string) *chart4.Chart {
	t.Helper()
	ch, err := loader4.Load(dir + "/example-app")
	if err != nil {
		t.Fatalf("loading %s/example-app: %v", dir, err)
	}
	dep, err := loader4.Load(dir + "/schemahook")
	if err != nil {
		t.Fatalf("loading %s/schemahook: %v", dir, err)
	}
	ch.SetDependencies(dep)
	return ch
}

// waitStrategy is what the helm 4 CLI uses: --wait means the kstatus watcher; without it Helm
// waits for hooks only.
func waitStrategy(wait bool) kube.WaitStrategy {
	if wait {
		return kube.StatusWatcherStrategy
	}
	return kube.HookOnlyStrategy
}

// asRelease3 converts a Helm 4 release to Helm 3's type through the record both store.
func (s *suite) asRelease3(r release4.Releaser) *release.Release {
	s.t.Helper()
	if r == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		s.t.Fatalf("encoding the Helm 4 release: %v", err)
	}
	var out release.Release
	if err := json.Unmarshal(b, &out); err != nil {
		s.t.Fatalf("reading the Helm 4 release as Helm 3's record: %v", err)
	}
	return &out
}

// install4 is `helm install` of Helm 4: server-side apply (its default for new releases).
func (s *suite) install4(vals map[string]any, wait bool) (*release.Release, error) {
	in := action4.NewInstall(s.helm4)
	in.ReleaseName, in.Namespace = releaseName, s.ns
	in.WaitStrategy, in.Timeout = waitStrategy(wait), helmTimeout
	start := time.Now()
	rel, err := in.RunWithContext(context.Background(), loadChart4(s.t, s.chartsDir()), vals)
	s.t.Logf("helm 4 install (wait=%v): %s, error: %v", wait, time.Since(start).Round(10*time.Millisecond), err)
	return s.asRelease3(rel), err
}

// upgrade4 is `helm upgrade` of Helm 4 (--server-side=auto: the release's own apply method);
// atomic is --rollback-on-failure, which waits with the watcher as the CLI does.
func (s *suite) upgrade4(vals map[string]any, wait, atomic bool) (*release.Release, time.Duration, error) {
	up := action4.NewUpgrade(s.helm4)
	up.Namespace = s.ns
	up.WaitStrategy, up.Timeout = waitStrategy(wait || atomic), helmTimeout
	up.RollbackOnFailure = atomic
	start := time.Now()
	rel, err := up.RunWithContext(context.Background(), releaseName, loadChart4(s.t, s.chartsDir()), vals)
	d := time.Since(start)
	s.t.Logf("helm 4 upgrade (wait=%v, rollback-on-failure=%v): %s, error: %v", wait, atomic, d.Round(10*time.Millisecond), err)
	return s.asRelease3(rel), d, err
}

// rollback4 is `helm rollback <revision> --wait` of Helm 4.
func (s *suite) rollback4(revision int, noHooks bool) error {
	rb := action4.NewRollback(s.helm4)
	rb.Version, rb.DisableHooks = revision, noHooks
	rb.WaitStrategy, rb.Timeout = kube.StatusWatcherStrategy, helmTimeout
	start := time.Now()
	err := rb.Run(releaseName)
	s.t.Logf("helm 4 rollback to %d: %s, error: %v", revision, time.Since(start).Round(10*time.Millisecond), err)
	return err
}

func (s *suite) lastRelease4() *release.Release {
	s.t.Helper()
	rel, err := s.helm4.Releases.Last(releaseName)
	if err != nil {
		s.t.Fatalf("reading the release: %v", err)
	}
	return s.asRelease3(rel)
}

// helmTest4 is `helm test` of Helm 4: the test hooks' deletion waits for the shutdown function.
func (s *suite) helmTest4() (*release.Release, error) {
	rt := action4.NewReleaseTesting(s.helm4)
	rt.Namespace, rt.Timeout = s.ns, helmTimeout
	rel, shutdown, err := rt.Run(releaseName)
	if serr := shutdown(); serr != nil && err == nil {
		err = serr
	}
	return s.asRelease3(rel), err
}

// assertLastHookLine checks that the last line Helm streamed of job's pod log (logs as
// takeHookLogs returns them; Helm may stream other hooks' logs after it, e.g. the guard of an
// automatic rollback) starts with want: the binary's final plain-text error line, the same on
// both majors, with nothing escaped.
func (s *suite) assertLastHookLine(logs, job, want string) {
	s.t.Helper()
	last := ""
	for _, l := range strings.Split(logs, "\n") {
		if pod, line, ok := strings.Cut(l, ": "); ok && strings.HasPrefix(pod, job+"-") {
			last = line
		}
	}
	if !strings.HasPrefix(last, want) || strings.Contains(last, `\"`) {
		s.t.Errorf("the last line Helm %d showed of %s's log is %q, want the error as plain text starting %q", s.major, job, last, want)
	}
}
