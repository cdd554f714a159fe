package integration

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/exporter"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/tests/clitest"
	"github.com/schemahook/schemahook/tests/pgtest"
)

// scraper serves an exporter for one database and migrations directory, and counts the
// connections its scrapes open and what they send.
type scraper struct {
	t   *testing.T
	srv *httptest.Server
	rt  *roundTrips
	mu  sync.Mutex
	n   int // connections dialled
}

func newScraper(t *testing.T, url, dir string) *scraper {
	t.Helper()
	cfg, err := dbconn.Config(url)
	if err != nil {
		t.Fatal(err)
	}
	s := &scraper{t: t, rt: &roundTrips{}}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countedConn{Conn: c, rt: s.rt}, nil
	}
	r := runner.New(cfg, load(t, dir), runner.WithLogger(testLogger(t)))
	s.srv = httptest.NewServer(exporter.Handler(exporter.New(r, exporter.WithTimeout(3*time.Second), exporter.WithLogger(testLogger(t)))))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scraper) dials() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// scrape fetches /metrics and returns the schemahook_ series: name (with labels, sorted as the
// exposition has them) → value.
func (s *scraper) scrape() map[string]float64 {
	s.t.Helper()
	resp, err := http.Get(s.srv.URL + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		s.t.Fatalf("parsing /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "schemahook_") {
			continue
		}
		for _, m := range f.GetMetric() {
			out[seriesName(name, m)] = m.GetGauge().GetValue()
		}
	}
	return out
}

func seriesName(name string, m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name + "{")
	for i, l := range m.GetLabel() {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(l.GetName() + "=" + l.GetValue())
	}
	b.WriteString("}")
	return b.String()
}

// want fails the test unless every series in w has its value in got.
func want(t *testing.T, when string, got map[string]float64, w map[string]float64) {
	t.Helper()
	for k, v := range w {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: %s = %v (present %v), want %v\nall: %v", when, k, g, ok, v, got)
		}
	}
}

// The exporter reports the database's state as it changes: before and after an update,
// drift, a dirty version, and a migration in progress (not dirty). Each scrape opens one
// connection and reads the version table once, however many series it reports.
func TestExporterFollowsTheSchema(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	db := pgtest.New(t)
	files := exampleFiles(t)
	if res, err := newRunner(t, db, writeDir(t, upTo(files, 2)), pgdriver.Options{}).Update(ctx); err != nil || res.To != 2 {
		t.Fatalf("update to 2: %+v, %v", res, err)
	}
	s := newScraper(t, db.URL, writeDir(t, files))

	before := time.Now()
	dials, sent := s.dials(), len(s.rt.sentText())
	got := s.scrape()
	want(t, "at version 2", got, map[string]float64{
		"schemahook_up": 1, "schemahook_schema_version": 2, "schemahook_schema_head_version": 5,
		"schemahook_migrations_pending": 3, "schemahook_schema_dirty": 0, "schemahook_schema_drift": 0,
		"schemahook_migration_in_progress": 0, "schemahook_schema_newer": 0,
	})
	if n := s.dials() - dials; n != 1 {
		t.Errorf("one scrape opened %d connections, want 1", n)
	}
	// Reads of the version table itself; the lock-holder lookup that a database with pending
	// migrations also gets (is one of them running?) names it only as a parameter.
	if n := strings.Count(s.rt.sentText()[sent:], `FROM "schema_migrations"`); n != 1 {
		t.Errorf("one scrape read the version table %d times, want 1; sent:\n%q", n, s.rt.sentText()[sent:])
	}
	durations := 0
	for k := range got {
		if strings.HasPrefix(k, "schemahook_migration_duration_seconds{") {
			durations++
		}
	}
	if durations != 2 {
		t.Errorf("%d migration_duration_seconds series at version 2, want 2 (one per applied migration): %v", durations, got)
	}
	if _, ok := got["schemahook_migration_duration_seconds{name=create_accounts,version=1}"]; !ok {
		t.Errorf("no duration series for version 1 (create_accounts): %v", got)
	}
	if last := got["schemahook_last_migration_timestamp_seconds"]; last < float64(before.Add(-time.Minute).Unix()) || last > float64(time.Now().Unix()+1) {
		t.Errorf("last_migration_timestamp_seconds = %v, want about %d", last, before.Unix())
	}

	if res, err := newRunner(t, db, writeDir(t, files), pgdriver.Options{}).Update(ctx); err != nil || res.To != 5 {
		t.Fatalf("update to 5: %+v, %v", res, err)
	}
	want(t, "after the update", s.scrape(), map[string]float64{
		"schemahook_up": 1, "schemahook_schema_version": 5, "schemahook_migrations_pending": 0, "schemahook_schema_dirty": 0,
	})

	// A file changed after it was applied.
	changed := maps.Clone(files)
	changed["000001_create_accounts.up.sql"] += "\n-- edited\n"
	want(t, "a file changed", newScraper(t, db.URL, writeDir(t, changed)).scrape(), map[string]float64{
		"schemahook_up": 1, "schemahook_schema_drift": 1,
	})
	// The database is newer than the migrations given.
	want(t, "an older release's migrations", newScraper(t, db.URL, writeDir(t, upTo(files, 4))).scrape(), map[string]float64{
		"schemahook_up": 1, "schemahook_schema_version": 5, "schemahook_schema_head_version": 4,
		"schemahook_schema_newer": 1, "schemahook_migrations_pending": 0,
	})

	// A no-transaction migration that stopped midway: dirty.
	conn := db.Conn(t)
	if _, err := conn.Exec(ctx, "UPDATE schema_migrations SET dirty = true"); err != nil {
		t.Fatal(err)
	}
	want(t, "dirty", s.scrape(), map[string]float64{"schemahook_up": 1, "schemahook_schema_dirty": 1, "schemahook_migration_in_progress": 0})
	if _, err := conn.Exec(ctx, "UPDATE schema_migrations SET dirty = false"); err != nil {
		t.Fatal(err)
	}

	// A no-transaction migration running: its version is marked dirty while the migration lock
	// is held, which is not the dirty state a human must repair.
	slow := maps.Clone(files)
	slow["000006_slow.up.sql"] = "-- schemahook:no-transaction\nSELECT pg_sleep(3);\n"
	slow["000006_slow.down.sql"] = "SELECT 1;\n"
	done := make(chan error, 1)
	go func() {
		_, err := newRunner(t, db, writeDir(t, slow), pgdriver.Options{}).Update(ctx)
		done <- err
	}()
	running := newScraper(t, db.URL, writeDir(t, slow))
	seen := false
	for !seen {
		select {
		case err := <-done:
			t.Fatalf("the slow migration ended (%v) before a scrape saw it in progress", err)
		default:
		}
		got := running.scrape()
		// The step shows as running from its start (its session's mark), and its version as 6
		// once the no-transaction step has written its dirty mark: wait for that window.
		if got["schemahook_migration_in_progress"] == 1 {
			want(t, "in progress", got, map[string]float64{"schemahook_schema_dirty": 0})
			if got["schemahook_schema_version"] == 6 {
				seen = true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want(t, "after the slow migration", running.scrape(), map[string]float64{
		"schemahook_schema_version": 6, "schemahook_schema_dirty": 0, "schemahook_migration_in_progress": 0, "schemahook_migrations_pending": 0,
	})
}

// When the database cannot be read, a scrape says so with schemahook_up 0 and reports no
// schema series: no stale values presented as fresh.
func TestExporterDatabaseDown(t *testing.T) {
	// A port nothing listens on: bind one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := newScraper(t, "postgres://nobody@"+addr+"/nothing?sslmode=disable&connect_timeout=2", writeDir(t, exampleFiles(t)))
	got := s.scrape()
	if got["schemahook_up"] != 0 {
		t.Errorf("schemahook_up = %v with the database down, want 0", got["schemahook_up"])
	}
	for k := range got {
		if k != "schemahook_up" && !strings.HasPrefix(k, "schemahook_build_info{") {
			t.Errorf("series %s reported with the database down", k)
		}
	}
	if len(got) != 2 {
		t.Errorf("want schemahook_up and schemahook_build_info, got %v", got)
	}
}

// `schemahook exporter` serves /healthz and /metrics from the environment's connection
// settings and migrations, and stops cleanly (exit 0) on SIGTERM.
func TestExporterCommand(t *testing.T) {
	db := pgtest.New(t)
	if r := cli(t, db.URL, nil, "update"); r.Code != 0 {
		t.Fatalf("update: exit %d", r.Code)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(clitest.Binary(), "exporter", "--listen", addr)
	cmd.Env = append(clitest.Env(), "SCHEMAHOOK_DATABASE_URL="+db.URL)
	var stderr clitest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exporter did not answer on %s: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"schemahook_up 1", "schemahook_schema_version 5", "schemahook_schema_head_version 5", "# TYPE schemahook_migrations_pending gauge"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %v %v", resp, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exporter after SIGTERM: %v\n%s", err, stderr.String())
	}
}
