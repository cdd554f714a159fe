package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// P9 is the copy strategy (schemaUpdate.strategy: copy): how long copying a database of
// p9SizeMB takes on one server with CREATE DATABASE … TEMPLATE, per STRATEGY, against the usual
// peer, pg_dump | pg_restore (directory format, 2 jobs each); and schemahook's whole hook run
// with the copy. The writer freeze window on a cluster (freeze → first new pod Ready) comes from
// the e2e test TestCopyStrategy, which writes it to the file -p9-cluster names.
type p9result struct {
	sizeBytes            int64
	walLog, fileCopy     time.Duration
	dumpRestore          time.Duration
	hook                 proc
	freezeWindow, gapMax float64 // seconds, from the cluster run; < 0 when not measured
}

const p9Source = "p9_src"

// copyRuns is P9.
func (e *env) copyRuns(ctx context.Context) (res p9result, err error) {
	res.freezeWindow, res.gapMax = -1, -1
	if err := e.pg.createDB(ctx, p9Source); err != nil {
		return res, err
	}
	defer func() {
		for _, db := range []string{p9Source, "p9_wal", "p9_file", "p9_dump", p9Source + "__v5", p9Source + "__schemahook"} {
			_ = e.pg.dropDB(context.WithoutCancel(ctx), db)
		}
	}()
	if res.sizeBytes, err = e.fillP9(ctx); err != nil {
		return res, err
	}
	timed := func(sql string) (time.Duration, error) {
		if _, err := e.pg.admin.Exec(ctx, "CHECKPOINT"); err != nil { // each method starts from the same state
			return 0, err
		}
		start := time.Now()
		_, err := e.pg.admin.Exec(ctx, sql)
		return time.Since(start), err
	}
	if res.walLog, err = timed("CREATE DATABASE p9_wal TEMPLATE " + p9Source + " STRATEGY WAL_LOG"); err != nil {
		return res, fmt.Errorf("P9 WAL_LOG: %w", err)
	}
	if res.fileCopy, err = timed("CREATE DATABASE p9_file TEMPLATE " + p9Source + " STRATEGY FILE_COPY"); err != nil {
		return res, fmt.Errorf("P9 FILE_COPY: %w", err)
	}
	if res.dumpRestore, err = e.dumpRestore(ctx); err != nil {
		return res, err
	}
	if _, err := e.pg.admin.Exec(ctx, "CHECKPOINT"); err != nil {
		return res, err
	}
	// The hook as the chart runs it: the serving database (the base, at schema 5 like the
	// example migrations) is frozen, copied with WAL_LOG and the copy migrated (nothing pending).
	environ := []string{"SCHEMAHOOK_DATABASE_URL=" + e.pg.urlNoPassword(p9Source), "PGPASSWORD=" + e.pg.password,
		"SCHEMAHOOK_MIGRATIONS=" + filepath.Join(e.root, "migrations"), "SCHEMAHOOK_STRATEGY=copy",
		"SCHEMAHOOK_COPY_DATABASE=" + p9Source + "__v5", "SCHEMAHOOK_LOG_FORMAT=json"}
	if res.hook, err = runProc(ctx, 10*time.Minute, environ, e.bin.schemahook, "update"); err != nil {
		return res, fmt.Errorf("P9 hook: %w", err)
	}
	if e.cfg.p9Cluster != "" {
		res.freezeWindow, res.gapMax = readClusterP9(e.cfg.p9Cluster)
	}
	return res, nil
}

// fillP9 makes the source about p9SizeMB: the example schema at its head (so the hook has a
// schema to check) and one table of 1 kB rows with an index, then VACUUM so that every method
// copies the same settled files.
func (e *env) fillP9(ctx context.Context) (int64, error) {
	environ := []string{"SCHEMAHOOK_DATABASE_URL=" + e.pg.urlNoPassword(p9Source), "PGPASSWORD=" + e.pg.password,
		"SCHEMAHOOK_MIGRATIONS=" + filepath.Join(e.root, "migrations")}
	if _, err := runProc(ctx, time.Minute, environ, e.bin.schemahook, "update"); err != nil {
		return 0, fmt.Errorf("P9 schema: %w", err)
	}
	c, err := pgx.Connect(ctx, e.pg.url(p9Source))
	if err != nil {
		return 0, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows := int64(e.cfg.p9SizeMB) * 1024 * 1024 / 1200 // ~1.2 kB per row with its index entry
	for _, sql := range []string{
		`CREATE TABLE payload (id bigint PRIMARY KEY, body text NOT NULL)`,
		fmt.Sprintf(`INSERT INTO payload SELECT g, repeat(md5(g::text), 30) FROM generate_series(1, %d) g`, rows),
		`VACUUM ANALYZE payload`,
	} {
		if _, err := c.Exec(ctx, sql); err != nil {
			return 0, fmt.Errorf("P9 filling the source: %w", err)
		}
	}
	var size int64
	err = c.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&size)
	return size, err
}

// dumpRestore is the peer: pg_dump -Fd -j2 into a directory, then pg_restore -j2 into a new
// database (what a copy across servers or major versions takes).
func (e *env) dumpRestore(ctx context.Context) (time.Duration, error) {
	bin := filepath.Dir(e.bin.psql)
	dir := filepath.Join(e.work, "p9-dump")
	_ = os.RemoveAll(dir)
	if err := e.pg.createDB(ctx, "p9_dump"); err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := runProc(ctx, 30*time.Minute, e.pg.libpqEnv(p9Source), filepath.Join(bin, "pg_dump"), "-Fd", "-j2", "-f", dir); err != nil {
		return 0, fmt.Errorf("P9 pg_dump: %w", err)
	}
	if _, err := runProc(ctx, 30*time.Minute, e.pg.libpqEnv("p9_dump"), filepath.Join(bin, "pg_restore"), "-j2", "-d", "p9_dump", dir); err != nil {
		return 0, fmt.Errorf("P9 pg_restore: %w", err)
	}
	d := time.Since(start)
	return d, os.RemoveAll(dir)
}

// readClusterP9 reads name=seconds lines written by the e2e test TestCopyStrategy.
func readClusterP9(path string) (window, gap float64) {
	window, gap = -1, -1
	b, err := os.ReadFile(path)
	if err != nil {
		return window, gap
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		f, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			continue
		}
		switch k {
		case "freeze_window_seconds":
			window = f
		case "reader_longest_gap_seconds":
			gap = f
		}
	}
	return window, gap
}

// p9Goal: a same-server copy must beat the dump/restore peer, else the strategy has no point.
func (r *results) p9Goal() verdict {
	p := r.p9
	return verdict{met: p.walLog > 0 && p.walLog < p.dumpRestore && p.fileCopy < p.dumpRestore,
		note: fmt.Sprintf("(WAL_LOG %.1f×, FILE_COPY %.1f× faster)", ratio(p.dumpRestore, p.walLog), ratio(p.dumpRestore, p.fileCopy))}
}

// p9Rows are P9's rows of the results table; the peer goes in the psql column.
func (r *results) p9Rows() string {
	var b strings.Builder
	row := func(cells ...string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	p := r.p9
	peer := "pg_dump -Fd -j2 \\| pg_restore -j2: " + secs(p.dumpRestore)
	row("P9", fmt.Sprintf("copy of a %s database: `CREATE DATABASE … TEMPLATE … STRATEGY WAL_LOG` (the default)", mb(p.sizeBytes)),
		secs(p.walLog), "—", "—", peer, "faster than dump/restore", r.p9Goal().String())
	row("P9", "the same with `STRATEGY FILE_COPY` (PostgreSQL "+r.pgVersion+"; `file_copy_method = clone` needs 18)", secs(p.fileCopy), "—", "—", peer, "", "")
	row("P9", "`update --strategy copy`, the whole hook: freeze, copy (WAL_LOG), migrate the copy, record", secs(p.hook.wall), "—", "—", "—", "", "")
	cluster := "not measured (e2e `TestCopyStrategy` with `SCHEMAHOOK_BENCH_CLUSTER_OUT`, then `-p9-cluster FILE`)"
	if p.freezeWindow >= 0 {
		cluster = fmt.Sprintf("%.1f s (old release's reader: longest gap %.1f s)", p.freezeWindow, p.gapMax)
	}
	row("P9", "cluster: writer freeze window, freeze → first new pod Ready (small database)", cluster, "—", "—", "—", "", "")
	return b.String()
}

// p9Table is P9's rows alone under the table's header (bench -p9).
func (r *results) p9Table() string {
	head := "| | figure | schemahook | golang-migrate | goose | psql (peer) | goal | result |\n|---|---|---:|---:|---:|---:|---|---|\n"
	return head + r.p9Rows()
}
