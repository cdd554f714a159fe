package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/schemahook/schemahook/migrations"
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

// Migrations ------------------------------------------------------------------------------------

// exampleMigrations returns the repository's example migrations (migrations/) up to version
// upTo, by file name.
func exampleMigrations(t *testing.T, upTo int) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(migrations.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		var v int
		if _, err := fmt.Sscanf(p, "%d_", &v); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if v <= upTo {
			b, err := fs.ReadFile(migrations.FS, p)
			out[p] = string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testdataMigrations returns the *.sql files of testdata/<dir>.
func testdataMigrations(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations in testdata/%s (%v)", dir, err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = string(b)
	}
	return out
}

func union(sets ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// migrationsConfigMap creates the ConfigMap that migrations.configMap names. Each set of
// migrations gets its own name, as the chart's README recommends, so that a revision (and a
// rollback to it) keeps seeing its own set.
func (s *suite) migrationsConfigMap(name string, files map[string]string) {
	s.t.Helper()
	_, err := s.kube.CoreV1().ConfigMaps(s.ns).Create(ctxT(s.t, 30*time.Second), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Data:       files,
	}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("creating ConfigMap %s: %v", name, err)
	}
}

// Database assertions ----------------------------------------------------------------------------

// schemaVersion reads schema_migrations: (-1, false) when the database has no schema yet.
func (s *suite) schemaVersion() (int, bool) {
	s.t.Helper()
	if !s.tableExists("schema_migrations") {
		return -1, false
	}
	var v int
	var dirty bool
	err := s.db.QueryRow(context.Background(), "SELECT version, dirty FROM schema_migrations").Scan(&v, &dirty)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, false
	}
	if err != nil {
		s.t.Fatalf("reading schema_migrations: %v", err)
	}
	return v, dirty
}

func (s *suite) tableExists(name string) bool {
	s.t.Helper()
	var ok bool
	if err := s.db.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", "public."+name).Scan(&ok); err != nil {
		s.t.Fatal(err)
	}
	return ok
}

// history is the versions in schemahook_history, ascending.
func (s *suite) history() []int {
	s.t.Helper()
	rows, _ := s.db.Query(context.Background(), "SELECT version FROM schemahook_history ORDER BY version")
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		s.t.Fatalf("reading schemahook_history: %v", err)
	}
	return vs
}

// rowVersions identifies the physical version of every row of schema_migrations and
// schemahook_history (xmin, the transaction that wrote it): equal before and after a step
// assertFailedUpgradeChangedNothing checks what a failed migration must leave behind after the
// upgrade to revision 2 with the failing 000005 file: the release failed, the database still at
// 4 with only its tables, and the version and history rows exactly as they were (rows, from
// rowVersions before the upgrade).
func (s *suite) assertFailedUpgradeChangedNothing(rows []string) {
	s.t.Helper()
	if rel := s.lastRelease(); rel.Version != 2 || rel.Info.Status != release.StatusFailed {
		s.t.Errorf("release revision %d is %s, want revision 2 failed", rel.Version, rel.Info.Status)
	}
	s.assertSchema(4, tablesV4, []string{"audit_log"})
	if after := s.rowVersions(); !slices.Equal(rows, after) {
		s.t.Errorf("the failed upgrade wrote to the version tables:\nbefore %v\nafter  %v", rows, after)
	}
}

// means the step wrote nothing there.
func (s *suite) rowVersions() []string {
	s.t.Helper()
	rows, _ := s.db.Query(context.Background(), `
		SELECT 'schema_migrations v' || version || ' xmin ' || xmin::text FROM schema_migrations
		UNION ALL
		SELECT 'schemahook_history v' || version || ' xmin ' || xmin::text FROM schemahook_history
		ORDER BY 1`)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		s.t.Fatalf("reading row versions: %v", err)
	}
	return out
}

// assertSchema checks that the database is at version want, clean, with history rows 1..want
// and the given tables present or absent.
func (s *suite) assertSchema(want int, present, absent []string) {
	s.t.Helper()
	v, dirty := s.schemaVersion()
	if v != want || dirty {
		s.t.Errorf("schema_migrations = (version %d, dirty %v), want (%d, false)", v, dirty, want)
	}
	var wantHist []int
	for i := 1; i <= want; i++ {
		wantHist = append(wantHist, i)
	}
	if got := s.history(); !slices.Equal(got, wantHist) {
		s.t.Errorf("schemahook_history versions = %v, want %v", got, wantHist)
	}
	for _, tbl := range present {
		if !s.tableExists(tbl) {
			s.t.Errorf("table %s is missing at version %d", tbl, want)
		}
	}
	for _, tbl := range absent {
		if s.tableExists(tbl) {
			s.t.Errorf("table %s exists at version %d", tbl, want)
		}
	}
}

// Cluster assertions -----------------------------------------------------------------------------

// waitFor polls cond every 500 ms until it is true, failing the test after timeout with what cond
// last said.
func (s *suite) waitFor(what string, timeout time.Duration, cond func(ctx context.Context) (bool, string, error)) {
	s.t.Helper()
	ctx := ctxT(s.t, timeout)
	start := time.Now()
	var last string
	for {
		ok, state, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			s.t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			s.t.Logf("%s after %s", what, time.Since(start).Round(100*time.Millisecond))
			return
		}
		last = state
		select {
		case <-ctx.Done():
			s.t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// appPods lists the application's pods that are not being deleted, oldest first.
func (s *suite) appPods(ctx context.Context) []corev1.Pod {
	s.t.Helper()
	list, err := s.kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/instance=" + releaseName + ",app.kubernetes.io/component=app",
	})
	if err != nil {
		s.t.Fatalf("listing app pods: %v", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return out
}

func podReady(p corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podUIDs(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, string(p.UID))
	}
	slices.Sort(out)
	return out
}

// assertAppReady waits (briefly: Helm has usually waited already) until the Deployment is fully
// rolled out and its only pods are Running and Ready, and returns them. Old pods of an upgrade
// may still be terminating for a moment after Helm's wait.
func (s *suite) assertAppReady() []corev1.Pod {
	s.t.Helper()
	var pods []corev1.Pod
	s.waitFor("the Deployment rolled out, all its pods Ready", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		d, err := s.kube.AppsV1().Deployments(s.ns).Get(ctx, deploymentName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		if st.ObservedGeneration != d.Generation || st.UpdatedReplicas != want || st.ReadyReplicas != want || st.Replicas != want {
			return false, fmt.Sprintf("Deployment generation %d, status %+v", d.Generation, st), nil
		}
		pods = s.appPods(ctx)
		if len(pods) != int(want) {
			return false, fmt.Sprintf("%d app pods: %s", len(pods), describePods(pods)), nil
		}
		for _, p := range pods {
			if !podReady(p) {
				return false, "not Ready: " + describePods(pods), nil
			}
		}
		return true, "", nil
	})
	return pods
}

func podState(p corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, ", %s=%s", c.Type, c.Status)
	}
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, "; %s: ready=%v restarts=%d %s", cs.Name, cs.Ready, cs.RestartCount, containerState(cs.State))
	}
	return b.String()
}

func containerState(st corev1.ContainerState) string {
	switch {
	case st.Running != nil:
		return "running"
	case st.Waiting != nil:
		return "waiting (" + st.Waiting.Reason + ")"
	case st.Terminated != nil:
		return fmt.Sprintf("terminated (%s, exit %d)", st.Terminated.Reason, st.Terminated.ExitCode)
	}
	return "unknown"
}

// The markers of objects the charts create as hooks: constant names containing these, and the
// component label of the schema-update objects, the rollback guard and the test pod.
var hookNameParts = []string{"schema-update", "rollback-guard"}

func isHookObject(m metav1.ObjectMeta) bool {
	for _, part := range hookNameParts {
		if strings.Contains(m.Name, part) {
			return true
		}
	}
	switch m.Labels["app.kubernetes.io/component"] {
	case "schema-update", "rollback-guard", "schema-check":
		return true
	}
	if _, ok := m.Labels["batch.kubernetes.io/job-name"]; ok {
		return true // a pod of a Job: the charts' only Jobs are hooks
	}
	_, ok := m.Annotations["helm.sh/hook"]
	return ok
}

// hookObjects lists every object of every kind the charts can create as a hook (Jobs, their
// Pods, ConfigMaps, Secrets, ServiceAccounts, Roles, RoleBindings) that looks like one, as
// "Kind/name", sorted. Objects being deleted count: they are not gone yet.
func (s *suite) hookObjects(ctx context.Context) []string {
	s.t.Helper()
	var out []string
	add := func(kind string, metas []metav1.ObjectMeta, err error) {
		if err != nil {
			s.t.Fatalf("listing %ss: %v", kind, err)
		}
		for _, m := range metas {
			if isHookObject(m) {
				out = append(out, kind+"/"+m.Name)
			}
		}
	}
	opts := metav1.ListOptions{}
	core, rbac := s.kube.CoreV1(), s.kube.RbacV1()
	if l, err := s.kube.BatchV1().Jobs(s.ns).List(ctx, opts); err == nil {
		add("Job", metas(l.Items, func(x batchv1.Job) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("Job", nil, err)
	}
	if l, err := core.Pods(s.ns).List(ctx, opts); err == nil {
		add("Pod", metas(l.Items, func(x corev1.Pod) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("Pod", nil, err)
	}
	if l, err := core.ConfigMaps(s.ns).List(ctx, opts); err == nil {
		add("ConfigMap", metas(l.Items, func(x corev1.ConfigMap) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("ConfigMap", nil, err)
	}
	if l, err := core.Secrets(s.ns).List(ctx, opts); err == nil {
		add("Secret", metas(l.Items, func(x corev1.Secret) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("Secret", nil, err)
	}
	if l, err := core.ServiceAccounts(s.ns).List(ctx, opts); err == nil {
		add("ServiceAccount", metas(l.Items, func(x corev1.ServiceAccount) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("ServiceAccount", nil, err)
	}
	if l, err := rbac.Roles(s.ns).List(ctx, opts); err == nil {
		add("Role", metas(l.Items, func(x rbacv1.Role) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("Role", nil, err)
	}
	if l, err := rbac.RoleBindings(s.ns).List(ctx, opts); err == nil {
		add("RoleBinding", metas(l.Items, func(x rbacv1.RoleBinding) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("RoleBinding", nil, err)
	}
	slices.Sort(out)
	return out
}

func metas[T any](items []T, f func(T) metav1.ObjectMeta) []metav1.ObjectMeta {
	out := make([]metav1.ObjectMeta, 0, len(items))
	for _, x := range items {
		out = append(out, f(x))
	}
	return out
}

// assertNoHookObjects fails the test if any hook object is left in the namespace.
func (s *suite) assertNoHookObjects(when string) {
	s.t.Helper()
	if left := s.hookObjects(ctxT(s.t, 30*time.Second)); len(left) > 0 {
		s.t.Errorf("%s: hook objects left behind: %v", when, left)
	}
}

// jobPods lists the pods of Job name.
func (s *suite) jobPods(ctx context.Context, job string) []corev1.Pod {
	s.t.Helper()
	l, err := s.kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job})
	if err != nil {
		s.t.Fatalf("listing pods of Job %s: %v", job, err)
	}
	return l.Items
}

// podLog reads a container's log through the API (the kubelet's log endpoint), as `kubectl
// logs` does.
func (s *suite) podLog(pod, container string) string {
	s.t.Helper()
	b, err := s.kube.CoreV1().Pods(s.ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctxT(s.t, 30*time.Second))
	if err != nil {
		s.t.Fatalf("reading the log of %s/%s: %v", pod, container, err)
	}
	return string(b)
}

// jobLog is the log of the (only) container of the (only) pod of Job name.
func (s *suite) jobLog(job string) string {
	s.t.Helper()
	pods := s.jobPods(ctxT(s.t, 30*time.Second), job)
	if len(pods) != 1 {
		s.t.Fatalf("Job %s has %d pods, want 1", job, len(pods))
	}
	return s.podLog(pods[0].Name, pods[0].Spec.Containers[0].Name)
}

func jobCondition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func (s *suite) deployment() *appsv1.Deployment {
	s.t.Helper()
	d, err := s.kube.AppsV1().Deployments(s.ns).Get(ctxT(s.t, 30*time.Second), deploymentName, metav1.GetOptions{})
	if err != nil {
		s.t.Fatalf("Deployment %s: %v", deploymentName, err)
	}
	return d
}

// migrationsVolume is the ConfigMap the Deployment's pods mount as migrations.
func migrationsVolume(d *appsv1.Deployment) string {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			return v.ConfigMap.Name
		}
	}
	return ""
}

// Pod Security and diagnostics -------------------------------------------------------------------

func (s *suite) events(ctx context.Context) []corev1.Event {
	s.t.Helper()
	l, err := s.kube.CoreV1().Events(s.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		s.t.Errorf("listing events: %v", err)
		return nil
	}
	slices.SortFunc(l.Items, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	return l.Items
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// checkPodSecurity fails the test if a controller could not create a pod (FailedCreate: Pod
// Security admission refusing a Job's or ReplicaSet's pod), or if the API server warned about a
// Pod Security violation (the namespaces' `warn: restricted`, which also covers pod templates).
func (s *suite) checkPodSecurity() {
	for _, e := range s.events(context.Background()) {
		if e.Reason == "FailedCreate" || strings.Contains(e.Message, "PodSecurity") {
			s.t.Errorf("%s %s/%s: %s: %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	for _, w := range apiWarnings.take() {
		if strings.Contains(w, "PodSecurity") || strings.Contains(w, "would violate") {
			s.t.Errorf("API warning: %s", w)
		} else {
			s.t.Logf("API warning: %s", w)
		}
	}
}

// assertCreated checks, from the namespace's events, that a controller created a pod for an
// object of this kind whose name starts with namePrefix (SuccessfulCreate of a Job or
// ReplicaSet), or that such a bare pod was scheduled: proof that admission let it through.
func (s *suite) assertCreated(kind, namePrefix string) {
	s.t.Helper()
	for _, e := range s.events(ctxT(s.t, 30*time.Second)) {
		if e.InvolvedObject.Kind == kind && strings.HasPrefix(e.InvolvedObject.Name, namePrefix) &&
			(e.Reason == "SuccessfulCreate" || e.Reason == "Scheduled") {
			return
		}
	}
	s.t.Errorf("no SuccessfulCreate/Scheduled event for %s %s*: its pod was never admitted", kind, namePrefix)
}

// dump logs the namespace's pods (with their containers' logs) and events, for a failed test.
func (s *suite) dump() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.t.Logf("---- state of namespace %s", s.ns)
	if l, err := s.kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range l.Items {
			s.t.Logf("pod %s: %s", p.Name, podState(p))
			for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
				b, err := s.kube.CoreV1().Pods(s.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, TailLines: ptr(int64(20))}).DoRaw(ctx)
				if err == nil && len(b) > 0 {
					sc := bufio.NewScanner(bytes.NewReader(b))
					for sc.Scan() {
						s.t.Logf("  %s/%s: %s", p.Name, c.Name, sc.Text())
					}
				}
			}
		}
	}
	if l, err := s.kube.BatchV1().Jobs(s.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, j := range l.Items {
			s.t.Logf("job %s: active %d succeeded %d failed %d conditions %v", j.Name, j.Status.Active, j.Status.Succeeded, j.Status.Failed, j.Status.Conditions)
		}
	}
	for _, e := range s.events(ctx) {
		s.t.Logf("event %s %s/%s %s: %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
	}
}

func ptr[T any](v T) *T { return &v }
