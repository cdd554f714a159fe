// Package argocd syncs charts/example-app (with charts/schemahook as its dependency) to a real
// cluster with Argo CD's own sync engine, gitops-engine, at the version Argo CD v2.14.21 pins,
// driven the way Argo CD's application controller drives it (engine_test.go), and checks every
// step both in the database and in the cluster.
//
// It is a module of its own: gitops-engine needs the Kubernetes libraries of Argo CD's release
// (k8s.io/* v0.31, from Argo CD's replace block), which the other test modules have outgrown.
// The cluster and PostgreSQL come from the same environment as tests/e2e
// (tests/e2e/cluster/e2e-local.sh exports it); without it the tests skip, except under CI, where
// they fail.
package argocd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/strvals"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/schemahook/schemahook/migrations"
)

const (
	exampleAppDir = "../../charts/example-app"
	schemahookDir = "../../charts/schemahook"

	releaseName      = "demo"
	deploymentName   = "demo-example-app"
	schemaUpdateName = "demo-schemahook-schema-update"
	gateContainer    = "wait-for-schema"
	dbSecret         = "app-db" // database.existingSecret, created before the first sync
)

// settings are tests/e2e's: what e2e-local.sh exports.
type settings struct {
	kubeconfig, image                  string
	pgHost, pgPort, pgUser, pgPassword string
	adminURL, pgSSLMode                string
}

func env(t *testing.T) settings {
	t.Helper()
	names := []string{"KUBECONFIG", "SCHEMAHOOK_E2E_IMAGE", "SCHEMAHOOK_E2E_PG_HOST", "SCHEMAHOOK_E2E_PG_PORT",
		"SCHEMAHOOK_E2E_PG_USER", "SCHEMAHOOK_E2E_PG_PASSWORD_FILE", "SCHEMAHOOK_E2E_PG_ADMIN_URL"}
	var missing []string
	for _, n := range names {
		if os.Getenv(n) == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("needs a Kubernetes cluster and PostgreSQL: %s not set; tests/e2e/cluster/e2e-local.sh sets them up", strings.Join(missing, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	pw, err := os.ReadFile(os.Getenv("SCHEMAHOOK_E2E_PG_PASSWORD_FILE"))
	if err != nil {
		t.Fatalf("reading the application's database password: %v", err)
	}
	s := settings{
		kubeconfig: os.Getenv("KUBECONFIG"), image: os.Getenv("SCHEMAHOOK_E2E_IMAGE"),
		pgHost: os.Getenv("SCHEMAHOOK_E2E_PG_HOST"), pgPort: os.Getenv("SCHEMAHOOK_E2E_PG_PORT"),
		pgUser: os.Getenv("SCHEMAHOOK_E2E_PG_USER"), pgPassword: strings.TrimRight(string(pw), "\r\n"),
		adminURL: os.Getenv("SCHEMAHOOK_E2E_PG_ADMIN_URL"), pgSSLMode: os.Getenv("SCHEMAHOOK_E2E_PG_SSLMODE"),
	}
	if s.pgSSLMode == "" {
		s.pgSSLMode = "require"
	}
	return s
}

// world is one test's namespace (Pod Security "restricted") and database, and the clients.
type world struct {
	t      *testing.T
	env    settings
	ns     string
	dbName string
	kube   kubernetes.Interface
	rest   *rest.Config
	db     *pgx.Conn // superuser, on the test's database
}

func setup(t *testing.T) *world {
	t.Helper()
	e := env(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", e.kubeconfig)
	if err != nil {
		t.Fatalf("loading KUBECONFIG: %v", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	base := regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), "")
	if len(base) > 30 {
		base = base[:30]
	}
	id := hex.EncodeToString(b)
	w := &world{t: t, env: e, kube: kube, rest: cfg, ns: "argocd-" + base + "-" + id, dbName: "argocd_" + base + "_" + id}

	ctx := ctxT(t, 30*time.Second)
	admin := w.connect(ctx, "")
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s",
		pgx.Identifier{w.dbName}.Sanitize(), pgx.Identifier{e.pgUser}.Sanitize())); err != nil {
		t.Fatalf("creating database %s: %v", w.dbName, err)
	}
	_ = admin.Close(ctx)
	t.Cleanup(w.dropDatabase)
	w.db = w.connect(ctx, w.dbName)
	t.Cleanup(func() { _ = w.db.Close(context.Background()) })

	labels := map[string]string{}
	for _, mode := range []string{"enforce", "warn", "audit"} {
		labels["pod-security.kubernetes.io/"+mode] = "restricted"
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", w.ns, err)
	}
	t.Cleanup(w.deleteNamespace)
	if _, err := kube.CoreV1().Secrets(w.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: dbSecret},
		StringData: map[string]string{"password": e.pgPassword},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating Secret %s: %v", dbSecret, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			w.dump()
		}
	})
	t.Logf("namespace %s, database %s", w.ns, w.dbName)
	return w
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func (w *world) connect(ctx context.Context, db string) *pgx.Conn {
	w.t.Helper()
	cfg, err := pgx.ParseConfig(w.env.adminURL)
	if err != nil {
		w.t.Fatalf("SCHEMAHOOK_E2E_PG_ADMIN_URL: %v", err)
	}
	if db != "" {
		cfg.Database = db
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		w.t.Fatalf("connecting to PostgreSQL as the superuser: %v", err)
	}
	return c
}

func (w *world) dropDatabase() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := w.connect(ctx, "")
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{w.dbName}.Sanitize())); err != nil {
		w.t.Errorf("dropping database %s: %v", w.dbName, err)
	}
}

// deleteNamespace deletes the namespace and waits until it is gone. Argo CD's hook finalizer is
// removed from what is left, as deleting the Application would.
func (w *world) deleteNamespace() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.kube.CoreV1().Namespaces().Delete(ctx, w.ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		w.t.Errorf("deleting namespace %s: %v", w.ns, err)
		return
	}
	zero := int64(0)
	for {
		_ = w.kube.CoreV1().Pods(w.ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		if jobs, err := w.kube.BatchV1().Jobs(w.ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, j := range jobs.Items {
				if len(j.Finalizers) > 0 {
					j.Finalizers = nil
					_, _ = w.kube.BatchV1().Jobs(w.ns).Update(ctx, &j, metav1.UpdateOptions{})
				}
			}
		}
		if _, err := w.kube.CoreV1().Namespaces().Get(ctx, w.ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
			w.t.Errorf("namespace %s still there after 2 minutes", w.ns)
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// dump logs what the namespace holds, for a failed test.
func (w *world) dump() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := w.kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		w.t.Logf("dump: pod %s: %s", p.Name, podState(p))
	}
	for _, o := range w.hookObjects(ctx) {
		w.t.Logf("dump: hook object %s", o)
	}
}

// Chart and values -------------------------------------------------------------------------------

// loadChart loads example-app with this tree's schemahook chart as its dependency.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(exampleAppDir)
	if err != nil {
		t.Fatalf("loading %s: %v", exampleAppDir, err)
	}
	dep, err := loader.Load(schemahookDir)
	if err != nil {
		t.Fatalf("loading %s: %v", schemahookDir, err)
	}
	ch.SetDependencies(dep)
	return ch
}

// values are the Application's Helm parameters (spec.source.helm.parameters): the harness image
// and database, the migrations ConfigMap the test created, short deadlines, then sets.
func (w *world) values(migrationsConfigMap string, sets ...string) map[string]any {
	w.t.Helper()
	repo, tag := w.env.image, "latest"
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	all := append([]string{
		"migrations.fromChartFiles=false",
		"schemahook.migrations.configMap=" + migrationsConfigMap,
		"schemahook.image.repository=" + repo,
		"schemahook.image.tag=" + tag,
		"schemahook.image.pullPolicy=IfNotPresent",
		"schemahook.database.host=" + w.env.pgHost,
		"schemahook.database.port=" + w.env.pgPort,
		"schemahook.database.name=" + w.dbName,
		"schemahook.database.user=" + w.env.pgUser,
		"schemahook.database.sslMode=" + w.env.pgSSLMode,
		"schemahook.database.existingSecret=" + dbSecret,
		"schemahook.schemaUpdate.waitForDatabase=15s",
		"schemahook.schemaUpdate.timeout=60s",
		"schemahook.schemaUpdate.activeDeadlineSeconds=100",
		"schemahook.gate.wait=3m",
	}, sets...)
	v := map[string]any{}
	for _, set := range all {
		if err := strvals.ParseInto(set, v); err != nil {
			w.t.Fatalf("--set %s: %v", set, err)
		}
	}
	return v
}

// inlinePassword swaps database.existingSecret for the inline development password
// (database.password), which makes the chart render a hook Secret.
func (w *world) inlinePassword() []string {
	return []string{"schemahook.database.existingSecret=", "schemahook.database.password=" + w.env.pgPassword}
}

// exampleMigrations returns migrations/ up to version upTo, by file name.
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

// e2eMigrations returns the *.sql files of tests/e2e/testdata/<dir>: a 000005 that fails
// (failing) and its fix (fixed).
func e2eMigrations(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "e2e", "testdata", dir, "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations in tests/e2e/testdata/%s (%v)", dir, err)
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

// migrationsConfigMap creates a ConfigMap of migrations outside the Application (as a set of
// migrations shipped next to the app, one name per set).
func (w *world) migrationsConfigMap(name string, files map[string]string) {
	w.t.Helper()
	if _, err := w.kube.CoreV1().ConfigMaps(w.ns).Create(ctxT(w.t, 30*time.Second), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Data: files,
	}, metav1.CreateOptions{}); err != nil {
		w.t.Fatalf("creating ConfigMap %s: %v", name, err)
	}
}

// Database -----------------------------------------------------------------------------------------

// schema reads schema_migrations: (-1, false) when the database has no schema yet.
func (w *world) schema() (int, bool) {
	w.t.Helper()
	if !w.tableExists("schema_migrations") {
		return -1, false
	}
	var v int
	var dirty bool
	if err := w.db.QueryRow(context.Background(), "SELECT version, dirty FROM schema_migrations").Scan(&v, &dirty); err != nil {
		return -1, false
	}
	return v, dirty
}

func (w *world) tableExists(name string) bool {
	w.t.Helper()
	var ok bool
	if err := w.db.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", "public."+name).Scan(&ok); err != nil {
		w.t.Fatal(err)
	}
	return ok
}

// assertSchema checks that the database is at version want, clean, with the tables present
// and absent as given.
func (w *world) assertSchema(want int, present, absent []string) {
	w.t.Helper()
	if v, dirty := w.schema(); v != want || dirty {
		w.t.Errorf("schema_migrations = (version %d, dirty %v), want (%d, false)", v, dirty, want)
	}
	for _, tbl := range present {
		if !w.tableExists(tbl) {
			w.t.Errorf("table %s is missing at version %d", tbl, want)
		}
	}
	for _, tbl := range absent {
		if w.tableExists(tbl) {
			w.t.Errorf("table %s exists at version %d", tbl, want)
		}
	}
}

// rowVersions identifies the physical version (xmin) of every row of the version tables: equal
// before and after a step means the step wrote nothing there.
func (w *world) rowVersions() []string {
	w.t.Helper()
	rows, _ := w.db.Query(context.Background(), `
		SELECT 'schema_migrations v' || version || ' xmin ' || xmin::text FROM schema_migrations
		UNION ALL
		SELECT 'schemahook_history v' || version || ' xmin ' || xmin::text FROM schemahook_history
		ORDER BY 1`)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		w.t.Fatalf("reading row versions: %v", err)
	}
	return out
}

// Cluster ------------------------------------------------------------------------------------------

// waitFor polls cond every 500 ms until it is true, failing the test after timeout.
func (w *world) waitFor(what string, timeout time.Duration, cond func(ctx context.Context) (bool, string)) time.Duration {
	w.t.Helper()
	ctx := ctxT(w.t, timeout)
	start := time.Now()
	for {
		ok, state := cond(ctx)
		if ok {
			w.t.Logf("%s after %s", what, time.Since(start).Round(100*time.Millisecond))
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			w.t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, state)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// appPods lists the application's pods that are not being deleted, oldest first.
func (w *world) appPods(ctx context.Context) []corev1.Pod {
	w.t.Helper()
	list, err := w.kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/instance=" + releaseName + ",app.kubernetes.io/component=app",
	})
	if err != nil {
		w.t.Fatalf("listing app pods: %v", err)
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
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return p.Status.Phase == corev1.PodRunning && c.Status == corev1.ConditionTrue
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

func readyUIDs(pods []corev1.Pod) []string {
	var ready []corev1.Pod
	for _, p := range pods {
		if podReady(p) {
			ready = append(ready, p)
		}
	}
	return podUIDs(ready)
}

func podState(p corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		st := "unknown"
		switch {
		case cs.State.Running != nil:
			st = "running"
		case cs.State.Waiting != nil:
			st = "waiting (" + cs.State.Waiting.Reason + ")"
		case cs.State.Terminated != nil:
			st = fmt.Sprintf("terminated (exit %d)", cs.State.Terminated.ExitCode)
		}
		if t := cs.LastTerminationState.Terminated; t != nil {
			st += fmt.Sprintf(", last exit %d", t.ExitCode)
		}
		fmt.Fprintf(&b, "; %s: ready=%v restarts=%d %s", cs.Name, cs.Ready, cs.RestartCount, st)
	}
	return b.String()
}

func (w *world) podLog(ctx context.Context, pod, container string) string {
	w.t.Helper()
	b, err := w.kube.CoreV1().Pods(w.ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
	if err != nil {
		w.t.Fatalf("reading the log of %s/%s: %v", pod, container, err)
	}
	return string(b)
}

// hookObjects lists the objects the charts create as hooks that are still in the namespace:
// Jobs, ConfigMaps and Secrets named *schema-update*, as "Kind/name", sorted.
func (w *world) hookObjects(ctx context.Context) []string {
	w.t.Helper()
	var out []string
	jobs, err := w.kube.BatchV1().Jobs(w.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatalf("listing Jobs: %v", err)
	}
	for _, o := range jobs.Items {
		out = append(out, "Job/"+o.Name)
	}
	cms, err := w.kube.CoreV1().ConfigMaps(w.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatalf("listing ConfigMaps: %v", err)
	}
	for _, o := range cms.Items {
		if strings.Contains(o.Name, "schema-update") {
			out = append(out, "ConfigMap/"+o.Name)
		}
	}
	secrets, err := w.kube.CoreV1().Secrets(w.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatalf("listing Secrets: %v", err)
	}
	for _, o := range secrets.Items {
		if strings.Contains(o.Name, "schema-update") {
			out = append(out, "Secret/"+o.Name)
		}
	}
	slices.Sort(out)
	return out
}
