package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/strvals"
	action4 "helm.sh/helm/v4/pkg/action"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	// The charts, relative to this package.
	chartsDir     = "../../charts"
	exampleAppDir = chartsDir + "/example-app"
	schemahookDir = chartsDir + "/schemahook"

	releaseName = "demo"
	// Names the charts derive from releaseName (example-app's fullname and the dependency's
	// component names).
	deploymentName   = "demo-example-app"
	schemaUpdateName = "demo-schemahook-schema-update"
	guardName        = "demo-schemahook-rollback-guard"
	testPodName      = "demo-schemahook-schema-update-test"
	gateContainer    = "wait-for-schema"

	// dbSecret holds the application's database password, created before the release like in
	// production (database.existingSecret): the hook runs before any object of the release exists.
	dbSecret = "app-db"

	// helmTimeout is --timeout of every Helm action, which Helm applies to each hook and to each
	// wait separately. The values below keep the Jobs' own deadlines inside it, so a hung hook
	// fails the Job (and says why) before Helm gives up on it.
	helmTimeout = 2 * time.Minute
)

// suite is one test's world: a namespace that enforces Pod Security "restricted", a database
// owned by the application's role, the clients, and the logs of the hooks Helm ran.
type suite struct {
	t      *testing.T
	env    settings
	ns     string
	dbName string
	kube   kubernetes.Interface
	rest   *rest.Config
	db     *pgx.Conn // superuser, connected to the test's database
	helm   *action.Configuration
	// major is the Helm major whose SDK s.install, s.upgrade, s.rollback, s.lastRelease and
	// s.helmTest use: 3 (helm, from setup), or 4 (helm4, from helmMajors).
	major int
	helm4 *action4.Configuration
	// charts is the directory holding example-app and schemahook that s.install and
	// s.upgrade release ("" is this tree's charts/); a test may point it at an older tree.
	charts string

	mu       sync.Mutex
	hookLogs strings.Builder // every line Helm streamed from hook and test pods
}

// setup creates the test's namespace, database and password Secret, and registers their
// removal. When the test fails it dumps what the namespace held first; in every case it fails
// the test if a pod was refused by Pod Security admission.
func setup(t *testing.T) *suite {
	t.Helper()
	e := env(t)
	apiWarnings.take() // warnings of earlier tests are theirs
	cfg, err := clientcmd.BuildConfigFromFlags("", e.kubeconfig)
	if err != nil {
		t.Fatalf("loading KUBECONFIG: %v", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := randomHex(t, 3)
	base := regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), "")
	if len(base) > 30 {
		base = base[:30]
	}
	s := &suite{t: t, env: e, kube: kube, rest: cfg, ns: "e2e-" + base + "-" + id, dbName: "e2e_" + base + "_" + id, major: 3}

	// The database, owned by the application's role: the hook runs as that role, like in
	// production, and creates its tables in the public schema it owns.
	ctx := ctxT(t, 30*time.Second)
	admin := s.connect(ctx, "")
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s",
		pgx.Identifier{s.dbName}.Sanitize(), pgx.Identifier{e.pgUser}.Sanitize())); err != nil {
		t.Fatalf("creating database %s: %v", s.dbName, err)
	}
	_ = admin.Close(ctx)
	t.Cleanup(s.dropDatabase)
	s.db = s.connect(ctx, s.dbName)
	t.Cleanup(func() { _ = s.db.Close(context.Background()) })

	labels := map[string]string{}
	for _, mode := range []string{"enforce", "warn", "audit"} {
		labels["pod-security.kubernetes.io/"+mode] = "restricted"
		labels["pod-security.kubernetes.io/"+mode+"-version"] = "latest"
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: s.ns, Labels: labels},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", s.ns, err)
	}
	t.Cleanup(s.deleteNamespace)
	if _, err := kube.CoreV1().Secrets(s.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: dbSecret},
		StringData: map[string]string{"password": e.pgPassword},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating Secret %s: %v", dbSecret, err)
	}
	t.Cleanup(func() {
		s.checkPodSecurity()
		if t.Failed() {
			s.dump()
		}
	})

	s.helm = s.helmConfig()
	t.Logf("namespace %s, database %s", s.ns, s.dbName)
	return s
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// connect opens a superuser connection to database db ("" keeps the admin URL's).
func (s *suite) connect(ctx context.Context, db string) *pgx.Conn {
	s.t.Helper()
	cfg, err := pgx.ParseConfig(s.env.adminURL)
	if err != nil {
		s.t.Fatalf("SCHEMAHOOK_E2E_PG_ADMIN_URL: %v", err)
	}
	if db != "" {
		cfg.Database = db
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		s.t.Fatalf("connecting to PostgreSQL as the superuser: %v", err)
	}
	return c
}

func (s *suite) dropDatabase() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.connect(ctx, "")
	defer c.Close(ctx)
	// FORCE: a gate pod of the deleted namespace may still be connected.
	if _, err := c.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{s.dbName}.Sanitize())); err != nil {
		s.t.Errorf("dropping database %s: %v", s.dbName, err)
	}
}

// deleteNamespace deletes the namespace and waits until it is gone. Pods are deleted without a
// grace period while it terminates, so that nothing waits out 30 s per pod.
func (s *suite) deleteNamespace() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := s.kube.CoreV1().Namespaces().Delete(ctx, s.ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		s.t.Errorf("deleting namespace %s: %v", s.ns, err)
		return
	}
	zero := int64(0)
	for {
		_ = s.kube.CoreV1().Pods(s.ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_, err := s.kube.CoreV1().Namespaces().Get(ctx, s.ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			s.t.Logf("namespace %s deleted in %s", s.ns, time.Since(start).Round(100*time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			s.t.Errorf("namespace %s still there after %s", s.ns, time.Since(start).Round(time.Second))
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Helm ------------------------------------------------------------------------------------------

// helmConfig is what the helm CLI builds from --kubeconfig/--namespace: the Secret storage
// driver, Helm's debug log in the test log, and hook pods' logs (helm.sh/hook-output-log-policy)
// in the test log and in s.hookLogs.
func (s *suite) helmConfig() *action.Configuration {
	flags := genericclioptions.NewConfigFlags(false)
	kc, ns := s.env.kubeconfig, s.ns
	flags.KubeConfig, flags.Namespace = &kc, &ns
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, s.ns, "secret", func(format string, v ...any) { s.t.Logf("helm: "+format, v...) }); err != nil {
		s.t.Fatalf("helm init: %v", err)
	}
	cfg.SetHookOutputFunc(s.hookOutput)
	return cfg
}

// hookOutput is the writer Helm (3 and 4) streams a hook pod's log to: each line goes to the
// test log and to s.hookLogs.
func (s *suite) hookOutput(_, pod, container string) io.Writer {
	return &lineWriter{fn: func(line string) {
		s.t.Logf("hook %s/%s: %s", pod, container, line)
		s.mu.Lock()
		defer s.mu.Unlock()
		fmt.Fprintf(&s.hookLogs, "%s/%s: %s\n", pod, container, line)
	}}
}

// takeHookLogs returns the hook log lines Helm streamed since the last call.
func (s *suite) takeHookLogs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.hookLogs.String()
	s.hookLogs.Reset()
	return out
}

type lineWriter struct {
	buf bytes.Buffer
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line) // incomplete: keep for the next write
			return len(p), nil
		}
		w.fn(strings.TrimRight(line, "\r\n"))
	}
}

// loadChart loads example-app with this tree's schemahook chart as its dependency: what `helm
// dependency build` would put into charts/, without building it there and without picking up a
// stale copy if someone did.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	return loadChartFrom(t, chartsDir)
}

// loadChartFrom is loadChart for the example-app and schemahook charts under dir.
func loadChartFrom(t *testing.T, dir string) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(filepath.Join(dir, "example-app"))
	if err != nil {
		t.Fatalf("loading %s/example-app: %v", dir, err)
	}
	dep, err := loader.Load(filepath.Join(dir, "schemahook"))
	if err != nil {
		t.Fatalf("loading %s/schemahook: %v", dir, err)
	}
	ch.SetDependencies(dep)
	return ch
}

// chartsDir is the directory s.install and s.upgrade release charts from.
func (s *suite) chartsDir() string {
	if s.charts != "" {
		return s.charts
	}
	return chartsDir
}

// values are the release's values as `helm --set` would build them: the harness image, the
// database through database.existingSecret, the migrations ConfigMap, short deadlines, then sets.
func (s *suite) values(migrationsConfigMap string, sets ...string) map[string]any {
	s.t.Helper()
	repo, tag := splitImage(s.env.image)
	all := append([]string{
		"schemahook.image.repository=" + repo,
		"schemahook.image.tag=" + tag,
		"schemahook.image.pullPolicy=IfNotPresent",
		"schemahook.database.host=" + s.env.pgHost,
		"schemahook.database.port=" + s.env.pgPort,
		"schemahook.database.name=" + s.dbName,
		"schemahook.database.user=" + s.env.pgUser,
		"schemahook.database.sslMode=" + s.env.pgSSLMode,
		"schemahook.database.existingSecret=" + dbSecret,
		// Deadlines nested inside helmTimeout: wait for the database, then the update, inside the
		// Job's activeDeadlineSeconds, inside Helm's per-hook timeout.
		"schemahook.schemaUpdate.waitForDatabase=15s",
		"schemahook.schemaUpdate.timeout=60s",
		"schemahook.schemaUpdate.activeDeadlineSeconds=100",
		"schemahook.rollbackGuard.activeDeadlineSeconds=100",
		"schemahook.gate.wait=3m",
	}, sets...)
	if migrationsConfigMap != "" {
		// A ConfigMap the test created, instead of the one example-app renders from its files.
		all = append([]string{"migrations.fromChartFiles=false", "schemahook.migrations.configMap=" + migrationsConfigMap}, all...)
	}
	v := map[string]any{}
	for _, set := range all {
		if err := strvals.ParseInto(set, v); err != nil {
			s.t.Fatalf("--set %s: %v", set, err)
		}
	}
	return v
}

// splitImage splits repository[:tag] (the repository may contain a registry port).
func splitImage(ref string) (repo, tag string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, "latest"
	}
	return ref[:i], ref[i+1:]
}

// install is `helm install demo charts/example-app -n <ns> [--wait] --timeout 2m`.
func (s *suite) install(vals map[string]any, wait bool) (*release.Release, error) {
	s.t.Helper()
	if s.major == 4 {
		return s.install4(vals, wait)
	}
	in := action.NewInstall(s.helm)
	in.ReleaseName, in.Namespace = releaseName, s.ns
	in.Wait, in.Timeout = wait, helmTimeout
	start := time.Now()
	rel, err := in.Run(loadChartFrom(s.t, s.chartsDir()), vals)
	s.t.Logf("helm install (wait=%v): %s, error: %v", wait, time.Since(start).Round(10*time.Millisecond), err)
	return rel, err
}

// upgrade is `helm upgrade demo charts/example-app -n <ns> [--wait] --timeout 2m` with the
// complete values (no --reuse-values).
func (s *suite) upgrade(vals map[string]any, wait bool) (*release.Release, time.Duration, error) {
	s.t.Helper()
	return s.upgradeWith(vals, wait, false)
}

// upgradeAtomic is `helm upgrade --atomic` (Helm 4: --rollback-on-failure): on failure Helm
// rolls the release back to the last deployed revision, which waits for its resources.
func (s *suite) upgradeAtomic(vals map[string]any) (*release.Release, time.Duration, error) {
	s.t.Helper()
	return s.upgradeWith(vals, true, true)
}

func (s *suite) upgradeWith(vals map[string]any, wait, atomic bool) (*release.Release, time.Duration, error) {
	s.t.Helper()
	if s.major == 4 {
		return s.upgrade4(vals, wait, atomic)
	}
	up := action.NewUpgrade(s.helm)
	up.Namespace = s.ns
	up.Wait, up.Timeout, up.Atomic = wait, helmTimeout, atomic
	start := time.Now()
	rel, err := up.Run(releaseName, loadChartFrom(s.t, s.chartsDir()), vals)
	d := time.Since(start)
	s.t.Logf("helm upgrade (wait=%v, atomic=%v): %s, error: %v", wait, atomic, d.Round(10*time.Millisecond), err)
	return rel, d, err
}

// rollback is `helm rollback demo <revision> -n <ns> --wait --timeout 2m`.
func (s *suite) rollback(revision int) error {
	s.t.Helper()
	return s.rollbackWith(revision, false)
}

// rollbackNoHooks is `helm rollback demo <revision> --no-hooks --wait --timeout 2m`: no guard.
func (s *suite) rollbackNoHooks(revision int) error {
	s.t.Helper()
	return s.rollbackWith(revision, true)
}

func (s *suite) rollbackWith(revision int, noHooks bool) error {
	s.t.Helper()
	if s.major == 4 {
		return s.rollback4(revision, noHooks)
	}
	rb := action.NewRollback(s.helm)
	rb.Version, rb.DisableHooks = revision, noHooks
	rb.Wait, rb.Timeout = true, helmTimeout
	start := time.Now()
	err := rb.Run(releaseName)
	s.t.Logf("helm rollback to %d: %s, error: %v", revision, time.Since(start).Round(10*time.Millisecond), err)
	return err
}

// lastRelease is the newest revision of the release, whatever its status.
func (s *suite) lastRelease() *release.Release {
	s.t.Helper()
	if s.major == 4 {
		return s.lastRelease4()
	}
	rel, err := s.helm.Releases.Last(releaseName)
	if err != nil {
		s.t.Fatalf("reading the release: %v", err)
	}
	return rel
}

// helmTest is `helm test demo -n <ns> --timeout 2m`: it returns the release with its test
// hooks' last runs.
func (s *suite) helmTest() (*release.Release, error) {
	s.t.Helper()
	start := time.Now()
	var (
		rel *release.Release
		err error
	)
	if s.major == 4 {
		rel, err = s.helmTest4()
	} else {
		rt := action.NewReleaseTesting(s.helm)
		rt.Namespace, rt.Timeout = s.ns, helmTimeout
		rel, err = rt.Run(releaseName)
	}
	s.t.Logf("helm %d test: %s, error: %v", s.major, time.Since(start).Round(10*time.Millisecond), err)
	return rel, err
}
