// Package migrations holds the example schema that the schemahook binary embeds by default.
// Users bring their own directory with --migrations (or SCHEMAHOOK_MIGRATIONS).
package migrations

import "embed"

// FS holds the *.sql files of this directory.
//
//go:embed *.sql
var FS embed.FS
