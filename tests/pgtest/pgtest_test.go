package pgtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The local-binaries provider works on its own (CI may supply SCHEMAHOOK_TEST_DATABASE_URL,
// so the shared server would not exercise it): it starts with password authentication,
// refuses a wrong password, and survives a stop/start with its data.
func TestLocalServer(t *testing.T) {
	if _, err := serverBin(); err != nil {
		Unavailable(t, fmt.Sprintf("needs PostgreSQL server binaries (apt-get install postgresql): %v", err))
	}
	l, err := StartLocal()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Destroy(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, l.AdminURL())
	if err != nil {
		t.Fatalf("connecting with the password: %v", err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE survives (id int)"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	cfg, _ := pgx.ParseConfig(l.AdminURL())
	cfg.Password = "wrong"
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		c.Close(ctx)
		t.Fatal("a wrong password was accepted: the server must use password authentication")
	}
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.Connect(ctx, l.AdminURL()); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	c, err = pgx.Connect(ctx, l.AdminURL())
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	defer c.Close(ctx)
	var ok bool
	if err := c.QueryRow(ctx, "SELECT to_regclass('survives') IS NOT NULL").Scan(&ok); err != nil || !ok {
		t.Fatalf("data lost across restart: %v", err)
	}
}
