// Package migrations holds the example schema: `make demo`, charts/example-app and the tests use
// it. The schemahook binary does not import it: it carries no migrations, and users bring their
// own directory with --migrations (or SCHEMAHOOK_MIGRATIONS).
package migrations

import "embed"

// FS holds the *.sql files of this directory, for the tests.
//
//go:embed *.sql
var FS embed.FS
