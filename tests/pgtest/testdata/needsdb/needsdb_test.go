// Package needsdb is a suite that needs PostgreSQL, run by pgtest's own tests in a subprocess
// to see what a whole test binary does with and without a server.
package needsdb

import (
	"context"
	"testing"

	"github.com/schemahook/schemahook/tests/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNeedsDB(t *testing.T) {
	var one int
	if err := pgtest.New(t).Conn(t).QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %d, %v", one, err)
	}
}
