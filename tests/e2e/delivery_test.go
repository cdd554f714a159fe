package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
)

// The three ways to deliver migrations, each installed with config.updateSchema on: the hook
// applies the example schema and the gated app pods start on it.

// imageEnv returns a harness image named by env var name, skipping (or, under CI, failing) when
// the harness did not build it.
func imageEnv(t *testing.T, name string) (repo, tag string) {
	t.Helper()
	ref := os.Getenv(name)
	if ref == "" {
		msg := fmt.Sprintf("%s not set; %s", name, harnessHint)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return splitImage(ref)
}

// TestMigrationsFromAppImage: migrations.image points at an application image that holds only
// the SQL files (no shell, no binary). The Job, the gate and the stand-in app run that image with
// the binary an init container copied into an emptyDir.
func TestMigrationsFromAppImage(t *testing.T) {
	repo, tag := imageEnv(t, "SCHEMAHOOK_E2E_APP_IMAGE")
	s := setup(t)
	vals := s.values("", "schemahook.config.updateSchema=true", "migrations.fromChartFiles=false", "schemahook.migrations.configMap=",
		"schemahook.migrations.image.repository="+repo, "schemahook.migrations.image.tag="+tag,
		"schemahook.migrations.image.path=/app/migrations", "schemahook.migrations.image.pullPolicy=IfNotPresent")
	if _, err := s.install(vals, true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	s.assertSchema(5, tablesV5, nil)
	if logs := s.takeHookLogs(); !strings.Contains(logs, `"source":"/app/migrations"`) {
		t.Errorf("the hook's log does not name /app/migrations as its source:\n%s", logs)
	}
	pods := s.assertAppReady()
	for _, c := range pods[0].Spec.InitContainers {
		if c.Name == "wait-for-schema" && c.Image != repo+":"+tag {
			t.Errorf("the gate runs %s, want the application image %s:%s", c.Image, repo, tag)
		}
	}
	s.assertNoHookObjects("after install")
	s.assertCreated("Job", schemaUpdateName)
}

// TestMigrationsFromDerivedImage: image.* points at an image built FROM the schemahook image
// with the migrations copied in and SCHEMAHOOK_MIGRATIONS set; the chart needs nothing else.
func TestMigrationsFromDerivedImage(t *testing.T) {
	repo, tag := imageEnv(t, "SCHEMAHOOK_E2E_EXAMPLE_IMAGE")
	s := setup(t)
	vals := s.values("", "schemahook.config.updateSchema=true", "migrations.fromChartFiles=false", "schemahook.migrations.configMap=",
		"schemahook.image.repository="+repo, "schemahook.image.tag="+tag)
	if _, err := s.install(vals, true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	s.assertSchema(5, tablesV5, nil)
	s.assertAppReady()
	s.assertNoHookObjects("after install")
}

// TestMigrationsFromChartFiles: example-app renders its own migrations/*.sql into the migrations
// ConfigMap, a hook created before the Job and kept for the gate, through an install and an
// upgrade. Nothing is created by hand before the install.
func TestMigrationsFromChartFiles(t *testing.T) {
	s := setup(t)
	vals := s.values("", "schemahook.config.updateSchema=true")
	if _, err := s.install(vals, true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	s.assertSchema(5, tablesV5, nil)
	installed := s.assertAppReady()
	if _, _, err := s.upgrade(vals, true); err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	s.assertSchema(5, tablesV5, nil)
	if again := s.assertAppReady(); !slices.Equal(podUIDs(installed), podUIDs(again)) {
		t.Errorf("an upgrade with the same migrations replaced the app pods")
	}
	left := s.hookObjects(ctxT(t, 30*time.Second))
	if !slices.Equal(left, []string{"ConfigMap/example-app-migrations"}) {
		t.Errorf("hook objects after the upgrade: %v, want only the kept migrations ConfigMap", left)
	}
}

// TestChartFilesTooLargeForAConfigMap: migrations over the chart-rendered ConfigMap's limit fail
// the install at render, naming the application-image mode, before anything reaches the cluster.
func TestChartFilesTooLargeForAConfigMap(t *testing.T) {
	s := setup(t)
	ch := loadChart(t)
	big := "-- padding\n" + strings.Repeat("SELECT 1; -- "+strings.Repeat("x", 100)+"\n", 6000)
	ch.Files = append(ch.Files, &chart.File{Name: "migrations/000006_big.up.sql", Data: []byte(big)},
		&chart.File{Name: "migrations/000006_big.down.sql", Data: []byte("SELECT 1;\n")})
	in := action.NewInstall(s.helm)
	in.ReleaseName, in.Namespace, in.Timeout = releaseName, s.ns, helmTimeout
	_, err := in.Run(ch, s.values("", "schemahook.config.updateSchema=true"))
	if err == nil || !strings.Contains(err.Error(), "migrations.image") || !strings.Contains(err.Error(), "1 MiB") {
		t.Fatalf("helm install with %d bytes of migrations: %v; want a render error naming migrations.image and the 1 MiB limit", len(big), err)
	}
	if v, _ := s.schemaVersion(); v != -1 {
		t.Errorf("the database is at version %d after a failed render", v)
	}
	if left := s.hookObjects(ctxT(t, 30*time.Second)); len(left) != 0 {
		t.Errorf("objects created by an install that failed at render: %v", left)
	}
}

// TestReadOnlyGate: the gate and the stand-in app connect as a role that can only read the
// schemahook tables (the README's GRANTs); the migration role's password reaches the hook Jobs
// only. The gated pods start, and the gate's role cannot write.
func TestReadOnlyGate(t *testing.T) {
	s := setup(t)
	ctx := ctxT(t, 60*time.Second)
	role := "gate_" + randomHex(t, 4)
	password := randomHex(t, 12)
	admin := s.connect(ctx, s.dbName)
	defer admin.Close(ctx)
	owner := pgx.Identifier{s.env.pgUser}.Sanitize()
	ident := pgx.Identifier{role}.Sanitize()
	for _, stmt := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", ident, password),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", pgx.Identifier{s.dbName}.Sanitize(), ident),
		fmt.Sprintf("GRANT USAGE ON SCHEMA public TO %s", ident),
		// The tables do not exist before the first install: SELECT on what the migration role creates.
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA public GRANT SELECT ON TABLES TO %s", owner, ident),
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", strings.Replace(stmt, password, "…", 1), err)
		}
	}
	t.Cleanup(func() {
		c := s.connect(context.Background(), "")
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{s.dbName}.Sanitize()+" WITH (FORCE)")
		_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+ident)
	})
	if _, err := s.kube.CoreV1().Secrets(s.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "gate-credentials"},
		StringData: map[string]string{"password": password},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vals := s.values("", "schemahook.config.updateSchema=true", "schemahook.gate.useMigrationCredentials=false",
		"schemahook.gate.existingSecret=gate-credentials", "schemahook.gate.database.user="+role)
	if _, err := s.install(vals, true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	s.assertSchema(5, tablesV5, nil)
	pods := s.assertAppReady()
	for _, c := range slices.Concat(pods[0].Spec.InitContainers, pods[0].Spec.Containers) {
		for _, e := range c.Env {
			if e.Name == "PGPASSWORD" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "gate-credentials") {
				t.Errorf("%s: PGPASSWORD from %+v, want Secret gate-credentials only", c.Name, e.ValueFrom)
			}
			if e.Name == "PGUSER" && e.Value != role {
				t.Errorf("%s: PGUSER %q, want %q", c.Name, e.Value, role)
			}
		}
	}
	// The gate's role reads, and cannot write.
	cfg, err := pgx.ParseConfig(s.env.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database, cfg.User, cfg.Password = s.dbName, role, password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting as %s: %v", role, err)
	}
	defer c.Close(ctx)
	var v int
	if err := c.QueryRow(ctx, "SELECT version FROM schema_migrations").Scan(&v); err != nil || v != 5 {
		t.Errorf("the gate's role reads version %d, %v; want 5", v, err)
	}
	for _, stmt := range []string{"UPDATE schema_migrations SET dirty = true", "INSERT INTO accounts (email) VALUES ('x@example.com')", "CREATE TABLE gate_was_here (id int)"} {
		_, err := c.Exec(ctx, stmt)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s as the gate's role: %v; want permission denied (42501)", stmt, err)
		}
	}
}
