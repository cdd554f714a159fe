// Package exporter exports the schema state of one database as Prometheus metrics: the version
// it is at, the head of the migrations it was given, what is pending, dirty or drifted, and the
// applied history's timings.
//
// A scrape reads the database once, in Collect, through the same read-only path as `schemahook
// status` (runner.Status): a new connection, the version row and the history in one round trip,
// and — only when the version is dirty — who holds the migration lock, so that a migration in
// progress reads as in progress rather than dirty. Nothing is cached between scrapes: when the
// database cannot be read within the timeout, the scrape reports schemahook_up 0 and no schema
// series at all, so that a graph shows a gap and an alert on the last value does not keep firing
// (or stay silent) on data that is no longer true.
package exporter

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/hook/version"
)

// DefaultTimeout bounds one scrape's connection and read: well under Prometheus's default
// scrape timeout (10s), so a slow database yields schemahook_up 0 rather than a failed scrape.
const DefaultTimeout = 5 * time.Second

// Collector is a prometheus.Collector that reads the schema state on every Collect.
type Collector struct {
	r       *runner.Runner
	timeout time.Duration
	log     *slog.Logger
}

// Option configures a Collector.
type Option func(*Collector)

// WithTimeout bounds each scrape's connection and read (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *Collector) { c.timeout = d } }

// WithLogger sets where failed reads are logged (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *Collector) { c.log = l } }

// New returns a Collector reading the database and migrations of r. Build r without a
// database wait (runner.WithWaitForDB(0), the default): a scrape must answer within its timeout.
func New(r *runner.Runner, opts ...Option) *Collector {
	c := &Collector{r: r, timeout: DefaultTimeout, log: slog.Default()}
	for _, o := range opts {
		o(c)
	}
	return c
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("schemahook_"+name, help, labels, nil)
}

// The metrics. Names follow Prometheus practice: the application prefix, base units (seconds),
// no _total on gauges.
var (
	upDesc      = desc("up", "1 when the last scrape read the schema state from the database, 0 when it could not (then no schema series are reported).")
	buildDesc   = desc("build_info", "Always 1; the labels say which schemahook build exports.", "version", "goversion")
	versionDesc = desc("schema_version", "The version the database's schema is at; -1 when no migration is applied.")
	headDesc    = desc("schema_head_version", "The highest version among the migrations the exporter was given (the release's).")
	pendingDesc = desc("migrations_pending", "Migrations above the database's version that an update would apply; 0 when the database is newer than the migrations.")
	dirtyDesc   = desc("schema_dirty", "1 when a migration that runs without a transaction stopped midway and a human must repair it (schemahook force); 0 otherwise, also while a migration is in progress.")
	runningDesc = desc("migration_in_progress", "1 while a session holds the migration lock with the version marked as being migrated.")
	driftDesc   = desc("schema_drift", "Applied migrations whose file changed or disappeared since they were applied; update refuses the database while it is above 0.")
	newerDesc   = desc("schema_newer", "1 when the database is at a version above the head of the migrations the exporter was given (an older release must not run on it).")
	// A gauge per applied migration, not a histogram: the history is re-read on every scrape,
	// so a histogram would be rebuilt from the same rows each time and could say how many
	// migrations were slow but not which file. The series are as many as the migration files
	// and do not change once applied, so their number is bounded by the repository, not by time.
	durDesc  = desc("migration_duration_seconds", "How long each applied migration took, from the history table.", "version", "name")
	lastDesc = desc("last_migration_timestamp_seconds", "When the most recently applied migration was applied (Unix time), from the history table.")
)

// Handler serves /metrics (the Collector, plus the Go runtime's and the process's own metrics)
// and /healthz, which answers without touching the database: the exporter is alive even when
// the database is not, and schemahook_up says so.
func Handler(c *Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux
}

// Describe sends the descriptors of every metric Collect may send.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, buildDesc, versionDesc, headDesc, pendingDesc, dirtyDesc,
		runningDesc, driftDesc, newerDesc, durDesc, lastDesc} {
		ch <- d
	}
}

// Collect reads the database once and sends the metrics. When the read fails it sends only
// schemahook_up 0 and schemahook_build_info, and logs why.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(buildDesc, prometheus.GaugeValue, 1, version.Version, runtime.Version())
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.r.Status(ctx)
	if err != nil {
		c.log.Warn("scrape: cannot read the schema state, reporting schemahook_up 0", "error", err.Error(), "timeout", c.timeout.String())
		ch <- gauge(upDesc, 0)
		return
	}
	ch <- gauge(upDesc, 1)
	cur := -1.0
	if st.Current != nil {
		cur = float64(*st.Current)
	}
	ch <- gauge(versionDesc, cur)
	ch <- gauge(headDesc, float64(st.Head))
	ch <- gauge(pendingDesc, float64(len(st.Pending)))
	ch <- gauge(dirtyDesc, b2f(st.Dirty))
	ch <- gauge(runningDesc, b2f(st.State == "migrating"))
	ch <- gauge(driftDesc, float64(len(st.Drift)))
	ch <- gauge(newerDesc, b2f(st.State == "newer"))
	var last time.Time
	for _, a := range st.Applied {
		ch <- prometheus.MustNewConstMetric(durDesc, prometheus.GaugeValue, a.DurationMS/1000, strconv.FormatUint(uint64(a.Version), 10), a.Name)
		if a.AppliedAt.After(last) {
			last = a.AppliedAt
		}
	}
	if !last.IsZero() {
		ch <- gauge(lastDesc, float64(last.UnixNano())/1e9)
	}
}

func gauge(d *prometheus.Desc, v float64) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
