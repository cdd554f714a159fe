package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const metricsService = "demo-schemahook-metrics"

// scrapeMetrics fetches the exporter's /metrics through the API server's Service proxy and
// returns its unlabelled schemahook_ gauges.
func (s *suite) scrapeMetrics(ctx context.Context) (map[string]float64, error) {
	b, err := s.kube.CoreV1().Services(s.ns).ProxyGet("http", metricsService, "9300", "/metrics", nil).DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parsing /metrics: %w", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "schemahook_") {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 0 {
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out, nil
}

// waitForMetrics scrapes until the exporter reports want (the exporter's pod may be rolling).
func (s *suite) waitForMetrics(when string, want map[string]float64) {
	s.t.Helper()
	var last map[string]float64
	s.waitFor("the exporter to report "+when, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		got, err := s.scrapeMetrics(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		last = got
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				return false, fmt.Sprintf("%s = %v (reported %v)", k, g, ok), nil
			}
		}
		return true, "", nil
	})
	s.t.Logf("%s: %v", when, last)
}

// TestMetricsExporter: with metrics.enabled the exporter runs in the release's namespace under
// Pod Security "restricted", and a scrape follows the schema through the release's life: current
// after the install, one pending migration once an upgrade brings a new migration without
// updating the schema, current again after the upgrade that applies it, and dirty after a
// no-transaction migration stops midway.
func TestMetricsExporter(t *testing.T) {
	s := setup(t)
	s.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	s.migrationsConfigMap("migrations-v5", exampleMigrations(t, 5))
	s.migrationsConfigMap("migrations-v6", union(exampleMigrations(t, 5), map[string]string{
		"000006_half_done.up.sql":   "-- schemahook:no-transaction\nCREATE TABLE half_done (id int);\nSELECT 1 / 0;\n",
		"000006_half_done.down.sql": "DROP TABLE IF EXISTS half_done;\n",
	}))
	metrics := []string{"schemahook.metrics.enabled=true", "schemahook.gate.useMigrationCredentials=true", "schemahook.metrics.scrapeTimeout=3s"}

	if _, err := s.install(s.values("migrations-v4", append(metrics, "schemahook.config.updateSchema=true")...), true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	s.waitForMetrics("version 4, current", map[string]float64{"schemahook_up": 1, "schemahook_schema_version": 4,
		"schemahook_schema_head_version": 4, "schemahook_migrations_pending": 0, "schemahook_schema_dirty": 0})

	// A release with migration 5 and config.updateSchema off: the exporter rolls with the new
	// migrations and reports what is pending; the app's new pods wait in their gate.
	if _, _, err := s.upgrade(s.values("migrations-v5", metrics...), false); err != nil {
		t.Fatalf("helm upgrade to migrations v5 without updating the schema: %v", err)
	}
	s.waitForMetrics("one migration pending", map[string]float64{"schemahook_up": 1, "schemahook_schema_version": 4,
		"schemahook_schema_head_version": 5, "schemahook_migrations_pending": 1, "schemahook_schema_dirty": 0})

	if _, _, err := s.upgrade(s.values("migrations-v5", append(metrics, "schemahook.config.updateSchema=true")...), true); err != nil {
		t.Fatalf("helm upgrade applying migration 5: %v", err)
	}
	s.waitForMetrics("version 5, current", map[string]float64{"schemahook_up": 1, "schemahook_schema_version": 5,
		"schemahook_migrations_pending": 0, "schemahook_schema_dirty": 0})

	// Migration 6 runs without a transaction and fails after its first statement: the hook
	// fails, the release keeps its previous objects, and the exporter (still the previous
	// release's, with head 5) reports the database dirty at 6.
	if _, _, err := s.upgrade(s.values("migrations-v6", append(metrics, "schemahook.config.updateSchema=true")...), true); err == nil {
		t.Fatal("helm upgrade with a failing no-transaction migration succeeded")
	}
	s.waitForMetrics("dirty at 6", map[string]float64{"schemahook_up": 1, "schemahook_schema_version": 6, "schemahook_schema_dirty": 1})
	s.assertCreated("ReplicaSet", metricsService)
}
