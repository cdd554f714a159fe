package runner

import "github.com/golang-migrate/migrate/v4"

func init() {
	// golang-migrate reads every migration into a fresh bufio.Reader of DefaultBufferSize
	// (100 kB) before handing it to the driver: applying 500 small files allocates and zeroes
	// 50 MB, and the garbage collector runs for it — a quarter of the client's CPU in P2 of
	// docs/benchmarks.md. Migration files are small, and a larger one streams through the
	// buffer unchanged. Set once, before anything runs, because it is a package variable.
	migrate.DefaultBufferSize = 4 << 10
}
