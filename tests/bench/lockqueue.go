package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// P3 timing. Readers run throughout; the idle transaction starts after them and the migration
// after it, so the migration always finds the lock taken and waits (almost) the whole hold.
const (
	readerInterval = 20 * time.Millisecond // 50 queries/s
	readerConns    = 64                    // the app's pool; a stalled table exhausts it
	holdAfter      = 500 * time.Millisecond
	migrateAfter   = time.Second
	drainAfter     = time.Second // readers keep going this long after the migration ends
)

// p3result is one tool's lock-queue run.
type p3result struct {
	readers         int
	maxLat, p99Lat  time.Duration
	failed          int           // reader queries that returned an error
	migration       time.Duration // process start to exit
	retries         int           // schemahook: lock-timeout retries logged
	hold, waitedFor time.Duration // the hold; how long of it the migration was queued
	// landed: from the idle transaction's COMMIT returning to the migration's process exit —
	// an upper bound of the time from the lock's release to the migration's commit.
	landed time.Duration
}

var p3Tools = []string{toolSchemahook, toolMigrate}

// lockQueue is P3: an application reads a table at 50 queries/s, a forgotten idle transaction
// holds ACCESS SHARE on it, and a migration ALTERs the table. A migration waiting for its
// ACCESS EXCLUSIVE lock queues every later reader behind it; schemahook gives up after
// lock_timeout and retries, golang-migrate waits as long as it takes.
func (e *env) lockQueue(ctx context.Context) (map[string]p3result, error) {
	base, full, err := lockMigrations(filepath.Join(e.work, "lock"))
	if err != nil {
		return nil, err
	}
	out := map[string]p3result{}
	for _, tool := range p3Tools {
		db := dbName("p3", tool)
		if err := e.pg.createDB(ctx, db); err != nil {
			return nil, err
		}
		if _, err := e.runTool(ctx, tool, db, base); err != nil {
			return nil, fmt.Errorf("P3 %s setup: %w", tool, err)
		}
		res, err := e.lockScenario(ctx, tool, db, full)
		if err != nil {
			return nil, fmt.Errorf("P3 %s: %w", tool, err)
		}
		out[tool] = res
		logf("  %-14s readers max %s p99 %s, migration %s, landed %s after the holder ended", tool, res.maxLat.Round(time.Millisecond),
			res.p99Lat.Round(time.Millisecond), res.migration.Round(time.Millisecond), res.landed.Round(time.Millisecond))
		if err := e.pg.dropDB(ctx, db); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (e *env) lockScenario(ctx context.Context, tool, db string, full *migrationSet) (p3result, error) {
	res := p3result{hold: e.cfg.hold}
	pcfg, err := pgxpool.ParseConfig(e.pg.url(db))
	if err != nil {
		return res, err
	}
	pcfg.MaxConns, pcfg.MinConns = readerConns, readerConns
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	// Open every connection before the clock starts: connection set-up is not lock waiting.
	warm := make([]*pgxpool.Conn, 0, readerConns)
	for range readerConns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return res, err
		}
		warm = append(warm, c)
	}
	for _, c := range warm {
		c.Release()
	}
	holder, err := pgx.Connect(ctx, e.pg.url(db))
	if err != nil {
		return res, err
	}
	defer holder.Close(context.WithoutCancel(ctx))

	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	stopReaders, loopDone := make(chan struct{}), make(chan struct{})
	stopAll := func() {
		// The loop must be gone before Wait: it is the only one that Adds.
		close(stopReaders)
		<-loopDone
		wg.Wait()
	}
	start := time.Now()
	readCtx, cancelReads := context.WithTimeout(ctx, e.cfg.hold+5*time.Minute)
	defer cancelReads()
	go func() {
		// Open loop: query i is due at start + i×interval whether or not earlier ones returned,
		// and its latency counts from when it was due — a stalled table is not allowed to slow
		// the arrival rate down and hide its own stall.
		defer close(loopDone)
		for i := 0; ; i++ {
			due := start.Add(time.Duration(i) * readerInterval)
			select {
			case <-stopReaders:
				return
			case <-time.After(time.Until(due)):
			}
			wg.Add(1)
			go func(id int) {
				defer wg.Done()
				var email string
				err := pool.QueryRow(readCtx, "SELECT email FROM accounts WHERE id = $1", int64(id%10000+1)).Scan(&email)
				lat := time.Since(due)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					res.failed++
					return
				}
				latencies = append(latencies, lat)
			}(i)
		}
	}()

	time.Sleep(time.Until(start.Add(holdAfter)))
	// The forgotten transaction: it read the table once, so it holds ACCESS SHARE until it ends.
	tx, err := holder.Begin(ctx)
	if err != nil {
		cancelReads()
		stopAll()
		return res, err
	}
	if _, err := tx.Exec(ctx, "SELECT count(*) FROM accounts"); err != nil {
		cancelReads()
		stopAll()
		return res, err
	}
	holdStart := time.Now()
	released := make(chan error, 1)
	var releasedAt time.Time // written before the send on released, read after the receive
	go func() {
		time.Sleep(time.Until(holdStart.Add(e.cfg.hold)))
		err := tx.Commit(context.WithoutCancel(ctx))
		releasedAt = time.Now()
		released <- err
	}()

	time.Sleep(time.Until(start.Add(migrateAfter)))
	migStart := time.Now()
	var extra []string
	if tool == toolSchemahook {
		extra = []string{"--lock-timeout", "200ms"}
	}
	p, migErr := e.runTool(ctx, tool, db, full, extra...)
	migEnd := time.Now()
	res.migration = p.wall
	res.waitedFor = holdStart.Add(e.cfg.hold).Sub(migStart)
	res.retries = strings.Count(p.stderr, "lock not available, retrying")
	time.Sleep(drainAfter)
	stopAll()
	if err := <-released; err != nil {
		return res, err
	}
	if res.landed = migEnd.Sub(releasedAt); res.landed < 0 {
		return res, fmt.Errorf("the migration ended %s before the idle transaction did: it did not wait for the lock", -res.landed)
	}
	if migErr != nil {
		return res, migErr
	}
	var note string
	if err := pool.QueryRow(ctx, "SELECT coalesce(max(note), 'ok') FROM accounts").Scan(&note); err != nil {
		return res, fmt.Errorf("the migration did not add accounts.note: %w", err)
	}
	res.readers = len(latencies)
	res.maxLat = percentile(latencies, 100)
	res.p99Lat = percentile(latencies, 99)
	return res, nil
}
