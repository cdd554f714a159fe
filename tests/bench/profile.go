package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/hook/source"
)

// profileResult explains where the time of schemahook's P2 run goes: on the client's CPU
// (and in which code), waiting for the server (how many round trips), and inside the server
// (which statements).
type profileResult struct {
	wall       time.Duration
	cpu        time.Duration // user + system time of this process during the run
	roundTrips int           // a socket read that follows a write
	bytesOut   int64
	bytesIn    int64
	readWait   time.Duration // time blocked in socket reads: the server working, plus loopback
	serverExec time.Duration // pg_stat_statements total_exec_time for the database
	statements int64
	byKind     []stmtGroup
	byPackage  []cpuGroup
	byCaller   []cpuGroup // cumulative time under selected frames
	cpuSampled time.Duration
	top        string // go tool pprof -top, trimmed
	file       string // the CPU profile, kept under tests/bench/results/
}

type stmtGroup struct {
	kind  string
	calls int64
	total time.Duration
}

type cpuGroup struct {
	name string
	flat time.Duration
}

// profile runs schemahook's engine in this process — the same runner.Update the CLI calls,
// configured the same way — on a fresh database with the P2 migrations, under a CPU profile
// and with its connection's socket instrumented. There is no profiling switch in the binary,
// and none is needed: the process start-up around it is what P1 measures.
func (e *env) profile(ctx context.Context) (profileResult, error) {
	var res profileResult
	// One run is too short for 100 Hz sampling to say much: profile a few, report per run.
	dbs := make([]string, profileRuns)
	runners := make([]*runner.Runner, profileRuns)
	var sock sockStats
	dialer := &net.Dialer{}
	cat, err := source.Load(source.Dir(e.small.dir), ".")
	if err != nil {
		return res, err
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	for i := range dbs {
		dbs[i] = fmt.Sprintf("%s_%d", dbName("prof", toolSchemahook), i)
		if err := e.pg.createDB(ctx, dbs[i]); err != nil {
			return res, err
		}
		// As the binary sees it: DATABASE_URL without password, PGPASSWORD from the environment.
		os.Setenv("PGPASSWORD", e.pg.password)
		cfg, err := dbconn.Config(e.pg.urlNoPassword(dbs[i]))
		os.Unsetenv("PGPASSWORD")
		if err != nil {
			return res, err
		}
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, s: &sock}, nil
		}
		runners[i] = runner.New(cfg, cat, runner.WithLogger(log), runner.WithWaitForDB(time.Minute),
			runner.WithDriverOptions(pgdriver.Options{AppliedBy: "bench"}))
	}
	if err := e.pg.resetStatements(ctx); err != nil {
		return res, err
	}

	dir := filepath.Join(e.benchDir, "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	res.file = filepath.Join(dir, "schemahook-p2.cpu.pprof")
	f, err := os.Create(res.file)
	if err != nil {
		return res, err
	}
	defer f.Close()
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	if err := pprof.StartCPUProfile(f); err != nil {
		return res, err
	}
	for _, r := range runners {
		start := time.Now()
		out, err := r.Update(ctx)
		res.wall += time.Since(start)
		if err == nil && len(out.Applied) != e.small.count {
			err = fmt.Errorf("applied %d migrations, want %d", len(out.Applied), e.small.count)
		}
		if err != nil {
			pprof.StopCPUProfile()
			return res, fmt.Errorf("in-process update: %w", err)
		}
	}
	pprof.StopCPUProfile()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	res.cpu = time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	res.roundTrips, res.bytesOut, res.bytesIn, res.readWait = sock.roundTrips, sock.bytesOut, sock.bytesIn, sock.readWait
	if err := f.Close(); err != nil {
		return res, err
	}
	if err := e.serverSide(ctx, &res); err != nil {
		return res, err
	}
	if err := pprofSummary(ctx, e.benchDir, &res); err != nil {
		return res, err
	}
	res.perRun(profileRuns)
	for _, db := range dbs {
		if err := e.pg.dropDB(ctx, db); err != nil {
			return res, err
		}
	}
	return res, nil
}

const profileRuns = 5

// perRun turns the totals of n runs into one run's figures.
func (p *profileResult) perRun(n int) {
	d := time.Duration(n)
	p.wall, p.cpu, p.readWait, p.serverExec, p.cpuSampled = p.wall/d, p.cpu/d, p.readWait/d, p.serverExec/d, p.cpuSampled/d
	p.roundTrips /= n
	p.bytesOut, p.bytesIn, p.statements = p.bytesOut/int64(n), p.bytesIn/int64(n), p.statements/int64(n)
	for i := range p.byKind {
		p.byKind[i].calls /= int64(n)
		p.byKind[i].total /= d
	}
	for i := range p.byPackage {
		p.byPackage[i].flat /= d
	}
	for i := range p.byCaller {
		p.byCaller[i].flat /= d
	}
}

// serverSide groups the statements the server ran for the profiled update.
func (e *env) serverSide(ctx context.Context, res *profileResult) error {
	if !e.pg.stmts {
		return nil
	}
	rows, err := e.pg.admin.Query(ctx, `SELECT query, calls, total_exec_time FROM pg_stat_statements
		WHERE dbid IN (SELECT oid FROM pg_database WHERE datname LIKE $1)`, dbName("prof", toolSchemahook)+"\\_%")
	if err != nil {
		return err
	}
	defer rows.Close()
	groups := map[string]*stmtGroup{}
	for rows.Next() {
		var (
			q     string
			calls int64
			ms    float64
		)
		if err := rows.Scan(&q, &calls, &ms); err != nil {
			return err
		}
		k := stmtKind(q)
		if groups[k] == nil {
			groups[k] = &stmtGroup{kind: k}
		}
		d := time.Duration(ms * float64(time.Millisecond))
		groups[k].calls += calls
		groups[k].total += d
		res.statements += calls
		res.serverExec += d
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, g := range groups {
		res.byKind = append(res.byKind, *g)
	}
	sort.Slice(res.byKind, func(i, j int) bool { return res.byKind[i].total > res.byKind[j].total })
	return nil
}

var spaces = regexp.MustCompile(`\s+`)

// stmtKind names a statement for the breakdown: schemahook's own statements by their text,
// the migrations' statements by their first words (500 CREATE TABLEs are one line).
func stmtKind(q string) string {
	q = strings.TrimSpace(spaces.ReplaceAllString(q, " "))
	own := strings.Contains(q, "schemahook_history") || strings.Contains(q, "schema_migrations") ||
		strings.HasPrefix(q, "SELECT ") || strings.HasPrefix(q, "SET ") || strings.HasPrefix(q, "BEGIN") ||
		strings.HasPrefix(q, "COMMIT") || strings.HasPrefix(q, "ROLLBACK") || strings.HasPrefix(q, "RESET")
	if own {
		if len(q) > 70 {
			q = q[:70] + "…"
		}
		return "schemahook: `" + q + "`"
	}
	words := strings.Fields(strings.ToUpper(q))
	if len(words) > 2 {
		words = words[:2]
	}
	return "migration files: " + strings.Join(words, " ")
}

// pprofSummary reads the profile with `go tool pprof` (the profile carries its symbols) and
// sums the flat time by where the code comes from.
func pprofSummary(ctx context.Context, benchDir string, res *profileResult) error {
	cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=100000", res.file)
	cmd.Dir = benchDir
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go tool pprof: %w", err)
	}
	groups, callers := map[string]time.Duration{}, map[string]time.Duration{}
	var top []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Duration:"):
			top = append(top, strings.TrimSpace(line))
			if i := strings.Index(line, "Total samples = "); i >= 0 {
				res.cpuSampled = parseDur(strings.Fields(line[i+len("Total samples = "):])[0])
			}
		case strings.HasPrefix(strings.TrimSpace(line), "flat "):
			top = append(top, line)
		case len(f) >= 6 && strings.HasSuffix(f[1], "%"):
			name := strings.Join(f[5:], " ")
			groups[codeOrigin(name)] += parseDur(f[0])
			for _, fr := range frames {
				if name == fr.fn {
					callers[fr.what] += parseDur(f[3])
				}
			}
			if len(top) < 17 {
				top = append(top, line)
			}
		}
	}
	for name, d := range groups {
		res.byPackage = append(res.byPackage, cpuGroup{name, d})
	}
	sort.Slice(res.byPackage, func(i, j int) bool { return res.byPackage[i].flat > res.byPackage[j].flat })
	for _, fr := range frames {
		if d, ok := callers[fr.what]; ok {
			res.byCaller = append(res.byCaller, cpuGroup{fr.what, d})
		}
	}
	res.top = strings.Join(top, "\n")
	return nil
}

// frames are the entry points whose cumulative CPU says what the client spends it on; flat
// time alone lands in the runtime (allocation, GC) and hides who asked for it.
var frames = []struct{ fn, what string }{
	{"github.com/golang-migrate/migrate/v4.(*Migrate).readUp", "golang-migrate reading ahead: opening each file again through its source"},
	{"github.com/golang-migrate/migrate/v4.(*Migration).Buffer", "golang-migrate buffering each file before the driver reads it"},
	{"github.com/schemahook/schemahook/hook/pgdriver.(*Driver).Run", "reading and checking each file (pgdriver Run)"},
	{"github.com/schemahook/schemahook/hook/pgdriver.(*Driver).SetVersion", "building, sending and confirming the queries: files, version and history rows, COMMIT (pgdriver SetVersion)"},
	{"log/slog.(*Logger).Info", "logging one line per migration"},
	{"runtime.gcBgMarkWorker", "garbage collection"},
}

// codeOrigin buckets a function by the code it belongs to.
func codeOrigin(fn string) string {
	switch {
	case strings.HasPrefix(fn, "github.com/schemahook/"):
		return "schemahook"
	case strings.HasPrefix(fn, "github.com/jackc/"):
		return "pgx (protocol, encoding)"
	case strings.HasPrefix(fn, "github.com/golang-migrate/"):
		return "golang-migrate (source, loop)"
	case strings.HasPrefix(fn, "crypto/"), strings.HasPrefix(fn, "golang.org/x/crypto"):
		return "crypto (SCRAM authentication, checksums)"
	case strings.HasPrefix(fn, "syscall."), strings.HasPrefix(fn, "internal/runtime/syscall"),
		strings.HasPrefix(fn, "internal/poll."), strings.HasPrefix(fn, "net."), strings.HasPrefix(fn, "os."):
		return "system calls (socket, files)"
	case strings.HasPrefix(fn, "runtime."), strings.HasPrefix(fn, "internal/runtime"):
		return "Go runtime (allocation, GC, scheduler)"
	case strings.HasPrefix(fn, "log/slog"), strings.HasPrefix(fn, "encoding/json"):
		return "logging"
	}
	return "other standard library"
}

// parseDur reads pprof's durations ("10ms", "1.20s", "0").
func parseDur(s string) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f)
	}
	return 0
}

// sockStats counts what crosses the connection's socket.
type sockStats struct {
	mu                sync.Mutex
	roundTrips        int
	bytesOut, bytesIn int64
	readWait          time.Duration
	wrote             bool
}

type countingConn struct {
	net.Conn
	s *sockStats
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.s.mu.Lock()
	c.s.bytesOut += int64(n)
	c.s.wrote = true
	c.s.mu.Unlock()
	return n, err
}

func (c *countingConn) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := c.Conn.Read(p)
	wait := time.Since(start)
	c.s.mu.Lock()
	c.s.bytesIn += int64(n)
	c.s.readWait += wait
	if c.s.wrote && n > 0 {
		// The first answer after a request: one round trip.
		c.s.roundTrips++
		c.s.wrote = false
	}
	c.s.mu.Unlock()
	return n, err
}
