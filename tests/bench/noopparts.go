package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/pgdriver"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/hook/source"
)

// noopParts splits P1 into what a no-op costs: starting the process (a command that does no
// work), loading and checksumming the migration files, connecting (TCP, startup, SCRAM), and
// the engine's queries — the last three in this process, medians of as many runs as P1.
type noopParts struct {
	start      map[string]time.Duration // `version` of each tool, process start to exit
	load       time.Duration            // source.Open of the P2 directory, as the CLI does
	connect    time.Duration            // connect and close, authentication included
	update     time.Duration            // runner.Update on a current database, connection included
	roundTrips int                      // of one such update, connection start-up included
}

func (e *env) noopParts(ctx context.Context) (noopParts, error) {
	res := noopParts{start: map[string]time.Duration{}}
	versionArgs := map[string][]string{
		toolSchemahook: {e.bin.schemahook, "version"},
		toolMigrate:    {e.bin.migrate, "-version"},
		toolGoose:      {e.bin.goose, "-version"},
	}
	starts := map[string][]time.Duration{}
	for r := 0; r < e.cfg.runs; r++ {
		for i := range p1Tools {
			tool := p1Tools[(i+r)%len(p1Tools)]
			p, err := runProc(ctx, time.Minute, nil, versionArgs[tool]...)
			if err != nil {
				return res, err
			}
			starts[tool] = append(starts[tool], p.wall)
		}
	}
	for tool, ds := range starts {
		res.start[tool] = median(ds)
	}

	var err error
	res.load, err = medianOf(e.cfg.runs, func() error {
		_, err := source.Open(source.Dir(e.small.dir), ".")
		return err
	})
	if err != nil {
		return res, err
	}
	os.Setenv("PGPASSWORD", e.pg.password)
	cfg, err := dbconn.Config(e.pg.urlNoPassword(dbName("p2", toolSchemahook)))
	os.Unsetenv("PGPASSWORD")
	if err != nil {
		return res, err
	}
	res.connect, err = medianOf(e.cfg.runs, func() error {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		return res, err
	}

	var sock sockStats
	counted := cfg.Copy()
	counted.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, s: &sock}, nil
	}
	cat, err := source.Open(source.Dir(e.small.dir), ".")
	if err != nil {
		return res, err
	}
	r := runner.New(counted, cat, runner.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))),
		runner.WithDriverOptions(pgdriver.Options{AppliedBy: "bench"}))
	if _, err := r.Update(ctx); err != nil {
		return res, err
	}
	res.roundTrips = sock.roundTrips
	res.update, err = medianOf(e.cfg.runs, func() error {
		out, err := r.Update(ctx)
		if err == nil && len(out.Applied) > 0 {
			err = errNotNoop
		}
		return err
	})
	return res, err
}

var errNotNoop = errors.New("the P1 database was not at head")

// medianOf times f n times after one untimed warm-up run.
func medianOf(n int, f func() error) (time.Duration, error) {
	if err := f(); err != nil {
		return 0, err
	}
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	return median(ds), nil
}
