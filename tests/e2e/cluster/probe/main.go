// Command probe checks the e2e cluster from inside a pod; the harness's smoke test runs it.
//
//	probe hello        print the identity the container runs as (proves a restricted pod runs)
//	probe postgres     connect to PostgreSQL with the libpq variables (PGHOST, PGPORT, PGUSER,
//	                   PGPASSWORD, PGDATABASE, PGSSLMODE, ...) and print who and how it connected
//
// It exits non-zero on any failure, so a Job built on it completes only if the check passed.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: probe hello|postgres")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "hello":
		host, _ := os.Hostname()
		fmt.Printf("hello from %s: uid=%d gid=%d\n", host, os.Getuid(), os.Getgid())
	case "postgres":
		err = checkPostgres()
	default:
		err = fmt.Errorf("unknown check %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

func checkPostgres() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// An empty connection string makes pgx read the PG* environment variables, like libpq.
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return err
	}
	if cfg.Password == "" {
		return fmt.Errorf("PGPASSWORD is empty: the server only accepts password (SCRAM) logins")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	defer conn.Close(ctx)
	var user, addr string
	var ssl bool
	err = conn.QueryRow(ctx, `SELECT current_user, host(inet_client_addr()),
		coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)`).Scan(&user, &addr, &ssl)
	if err != nil {
		return err
	}
	fmt.Printf("connected to %s:%d as %s from %s (ssl=%t)\n", cfg.Host, cfg.Port, user, addr, ssl)
	return nil
}
