// Command bench measures schemahook against golang-migrate, goose and psql on one throwaway
// local PostgreSQL and writes docs/benchmarks.md. `make bench` runs it; see that file for what
// each figure means.
//
// The peers are built from pinned module versions (go.mod), schemahook from this repository,
// all with the same flags. Every figure is a whole process, start to exit, as a hook Job runs
// it, except the profile, which runs schemahook's engine in this process to see inside it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

type config struct {
	quick      bool
	onlyP3     bool          // run P3 alone and print its figures; no report
	onlyP8     bool          // run P8 alone and print its figures; no report
	onlyP9     bool          // run P9 alone and print its figures; no report
	p9SizeMB   int           // P9: size of the database copied
	p9Cluster  string        // P9: the e2e test's file with the cluster's freeze window
	runs       int           // P1 runs per tool
	repeats    int           // P2 repeats per tool
	migrations int           // P2 size
	hold       time.Duration // P3: how long the idle transaction holds its lock
	fsync      bool
	out        string
	timeout    time.Duration
	settle     time.Duration
}

// env is what every phase needs.
type env struct {
	cfg            config
	root, benchDir string
	work           string
	bin            binaries
	pg             *server
	small          *migrationSet
}

func main() {
	var c config
	flag.BoolVar(&c.quick, "quick", false, "CI size: 10 s lock hold, 20 no-op runs, 2 repeats")
	flag.BoolVar(&c.onlyP3, "p3", false, "run only P3 (lock queue) and print its figures; docs/benchmarks.md is left alone")
	flag.BoolVar(&c.onlyP8, "p8", false, "run only P8 (lint speed) and print its figures; docs/benchmarks.md is left alone")
	flag.BoolVar(&c.onlyP9, "p9", false, "run only P9 (copy strategy) and print its figures; docs/benchmarks.md is left alone")
	flag.IntVar(&c.p9SizeMB, "p9-size", 1024, "P9: size in MB of the database copied")
	flag.StringVar(&c.p9Cluster, "p9-cluster", "", "P9: file of name=seconds lines the e2e test TestCopyStrategy wrote (SCHEMAHOOK_BENCH_CLUSTER_OUT)")
	flag.IntVar(&c.runs, "runs", 25, "P1: no-op runs per tool (at least 20)")
	flag.IntVar(&c.repeats, "repeats", 3, "P2: fresh-database runs per tool; the median counts")
	flag.IntVar(&c.migrations, "migrations", 500, "P2: generated migrations")
	flag.DurationVar(&c.hold, "hold", 20*time.Second, "P3: how long an idle transaction holds ACCESS SHARE on the table")
	flag.BoolVar(&c.fsync, "fsync", false, "run PostgreSQL with fsync on (commits then cost what the disk costs)")
	flag.StringVar(&c.out, "out", "../../docs/benchmarks.md", "report to write (empty: none)")
	flag.DurationVar(&c.timeout, "timeout", 15*time.Minute, "give up after this long")
	flag.DurationVar(&c.settle, "settle", time.Minute, "wait up to this long for the machine's CPU pressure to drop below 20% before measuring")
	flag.Parse()
	if c.quick {
		c.hold, c.runs, c.repeats = 10*time.Second, 20, 2
	}
	if c.quick && c.p9SizeMB == 1024 {
		c.p9SizeMB = 128
	}
	if c.runs < 20 || c.repeats < 1 || c.migrations < 5 || c.hold < 2*time.Second {
		fmt.Fprintln(os.Stderr, "bench: need -runs ≥ 20, -repeats ≥ 1, -migrations ≥ 5, -hold ≥ 2s")
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
}

func run(c config) (err error) {
	start, loadBefore := time.Now(), loadAvg()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	e := &env{cfg: c}
	if e.benchDir, err = os.Getwd(); err != nil {
		return err
	}
	e.root = filepath.Clean(filepath.Join(e.benchDir, "..", ".."))
	if b, err := os.ReadFile(filepath.Join(e.root, "go.mod")); err != nil || !strings.Contains(string(b), "module github.com/schemahook/schemahook\n") {
		return errors.New("run me from tests/bench of the schemahook repository (make bench)")
	}
	if e.work, err = os.MkdirTemp("", "schemahook-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(e.work)

	pgbin, err := serverBin()
	if err != nil {
		return err
	}
	logf("building schemahook, golang-migrate and goose")
	if e.bin, err = build(ctx, e.root, e.benchDir, e.work, pgbin); err != nil {
		return err
	}
	r := &results{cfg: c, bin: e.bin}
	if c.onlyP8 {
		logf("P8: lint, %d warm runs", p8Runs)
		if r.p8, err = e.lintRuns(ctx); err != nil {
			return err
		}
		fmt.Print(r.p8Table())
		return nil
	}
	logf("starting PostgreSQL")
	if e.pg, err = startServer(ctx, c.fsync); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.pg.stop()) }()
	if e.small, err = smallMigrations(filepath.Join(e.work, "small"), c.migrations); err != nil {
		return err
	}

	r.pgVersion = e.pg.version
	if c.onlyP9 {
		logf("P9: copy of a %d MB database", c.p9SizeMB)
		if r.p9, err = e.copyRuns(ctx); err != nil {
			return err
		}
		fmt.Print(r.p9Table())
		return nil
	}
	if c.onlyP3 {
		logf("P3: lock queue, %s hold", c.hold)
		if r.p3, err = e.lockQueue(ctx); err != nil {
			return err
		}
		fmt.Print(r.p3Table())
		return nil
	}
	if p := cpuPressure(); p > 20 && c.settle > 0 {
		logf("CPU pressure %.0f%%: waiting up to %s for the machine to calm down", p, c.settle)
	}
	r.machine.pressureBefore = pressureString(settle(ctx, c.settle, 20))
	logf("P2: %d migrations on a fresh database, %d× per tool", c.migrations, c.repeats)
	if r.p2, err = e.applyAll(ctx); err != nil {
		return err
	}
	logf("P1: no-op update, %d× per tool", c.runs)
	if r.p1, err = e.noop(ctx); err != nil {
		return err
	}
	logf("P1 parts: process start, file loading, connecting, queries")
	if r.noopParts, err = e.noopParts(ctx); err != nil {
		return err
	}
	logf("P3: lock queue, %s hold", c.hold)
	if r.p3, err = e.lockQueue(ctx); err != nil {
		return err
	}
	logf("P8: lint, %d warm runs", p8Runs)
	if r.p8, err = e.lintRuns(ctx); err != nil {
		return err
	}
	logf("P9: copy of a %d MB database", c.p9SizeMB)
	if r.p9, err = e.copyRuns(ctx); err != nil {
		return err
	}
	logf("P4: sizes")
	r.sizes = e.sizes(ctx)
	logf("profiling schemahook's engine on P2")
	if r.prof, err = e.profile(ctx); err != nil {
		return err
	}
	pressureBefore := r.machine.pressureBefore
	r.machine = machineInfo(ctx, e.root)
	r.machine.loadBefore, r.machine.loadAfter = loadBefore, loadAvg()
	r.machine.pressureBefore, r.machine.pressureAfter = pressureBefore, pressureString(cpuPressure())
	r.elapsed = time.Since(start)

	table := r.table()
	fmt.Println(table)
	if c.out != "" {
		if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(c.out, []byte(r.markdown(table)), 0o644); err != nil {
			return err
		}
		logf("wrote %s (%s)", c.out, r.elapsed.Round(time.Second))
	}
	return nil
}

// dbName is the database a phase gives a tool.
func dbName(phase, tool string) string {
	return phase + "_" + strings.ReplaceAll(tool, "-", "_")
}

// p2run is one tool's fresh-database run.
type p2run struct {
	wall   time.Duration
	maxRSS int64
	cpu    time.Duration // user + system of the tool's process
	stats  dbStats
}

var p2Tools = []string{toolSchemahook, toolMigrate, toolGoose, toolPsql, toolPsqlTx, toolUpgrade}

// applyAll is P2: every tool applies the whole generated set to its own empty database,
// repeats times, in a rotating order so that no tool always runs first or last. The last
// repeat's databases stay at head for P1.
func (e *env) applyAll(ctx context.Context) (map[string][]p2run, error) {
	out := map[string][]p2run{}
	for r := 0; r < e.cfg.repeats; r++ {
		for i := range p2Tools {
			tool := p2Tools[(i+r)%len(p2Tools)]
			db := dbName("p2", tool)
			if err := e.pg.createDB(ctx, db); err != nil {
				return nil, err
			}
			if tool == toolUpgrade {
				first := *e.small
				first.dir = e.small.firstDir
				if _, err := e.runTool(ctx, toolSchemahook, db, &first); err != nil {
					return nil, fmt.Errorf("P2 %s, first migration: %w", tool, err)
				}
			}
			if err := e.pg.resetStatements(ctx); err != nil {
				return nil, err
			}
			cpuBefore := e.pg.cpuTime()
			p, err := e.runTool(ctx, tool, db, e.small)
			if err != nil {
				return nil, fmt.Errorf("P2 %s: %w", tool, err)
			}
			st, err := e.pg.stats(ctx, db)
			if err != nil {
				return nil, err
			}
			st.cpu = e.pg.cpuTime() - cpuBefore
			if err := e.verify(ctx, db, e.small); err != nil {
				return nil, fmt.Errorf("P2 %s: %w", tool, err)
			}
			out[tool] = append(out[tool], p2run{wall: p.wall, maxRSS: p.maxRSS, cpu: p.user + p.sys, stats: st})
			logf("  %-14s %8s", tool, p.wall.Round(time.Millisecond))
		}
	}
	return out, nil
}

// verify checks that a run left the whole schema: a tool that stops early is not fast.
func (e *env) verify(ctx context.Context, db string, set *migrationSet) error {
	conn, err := pgx.Connect(ctx, e.pg.url(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var tables, views int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE c.relkind = 'r' AND c.relname LIKE 't\_%'),
		count(*) FILTER (WHERE c.relkind = 'v')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`).Scan(&tables, &views)
	if err != nil {
		return err
	}
	if tables != set.tables || views != set.views {
		return fmt.Errorf("incomplete schema in %s: %d tables and %d views, want %d and %d", db, tables, views, set.tables, set.views)
	}
	return nil
}

var p1Tools = []string{toolSchemahook, toolMigrate, toolGoose}

// noop is P1: each tool runs `up` against its P2 database, which is at head — what every
// Argo CD sync and every helm upgrade without schema changes costs. Runs are interleaved so
// that a slow moment of the machine hits every tool alike; one warm-up run each is dropped.
func (e *env) noop(ctx context.Context) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	for r := -1; r < e.cfg.runs; r++ {
		for i := range p1Tools {
			tool := p1Tools[(i+max(r, 0))%len(p1Tools)]
			p, err := e.runTool(ctx, tool, dbName("p2", tool), e.small)
			if err != nil {
				return nil, fmt.Errorf("P1 %s: %w", tool, err)
			}
			if r >= 0 {
				out[tool] = append(out[tool], p.wall)
			}
		}
	}
	for _, tool := range p1Tools {
		if err := e.verify(ctx, dbName("p2", tool), e.small); err != nil {
			return nil, fmt.Errorf("P1 %s: %w", tool, err)
		}
	}
	return out, nil
}

// percentile is the nearest-rank percentile (p in 0..100) of xs.
func percentile[T int64 | time.Duration](xs []T, p float64) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// median of an odd count is the middle value; of an even count, the mean of the two middle ones.
func median[T int64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
