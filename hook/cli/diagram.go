package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/diagram"
)

func (a *app) diagramCommand() *cobra.Command {
	var (
		file, output, oldFormat string
		waitForDB               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "diagram",
		Short: "Print a Mermaid ER diagram of the live schema (tables, columns, keys, relationships)",
		Long: `diagram reads the tables of the database (every schema except the system ones; schemahook's
own tables are left out) and prints a Mermaid erDiagram: columns with their types and PK, FK and
UK markers, and one relationship per foreign key. Cardinality comes from the schema: a NOT NULL
foreign key means exactly one parent (||), a nullable one zero or one (|o); a unique foreign key
means at most one child (o|), otherwise any number (o{).

-o markdown wraps the diagram in a mermaid code block, which GitHub and GitLab render. --file
writes it to a file instead of stdout.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := diagramFormat(cmd, a, output, oldFormat, &file)
			if err != nil {
				return err
			}
			if err := nonNegative("wait-for-db", waitForDB); err != nil {
				return err
			}
			cfg, err := dbconn.Config(a.databaseURL)
			if err != nil {
				return err
			}
			s, err := a.readDiagram(cmd.Context(), cfg, waitForDB)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if format == "markdown" {
				buf.WriteString("```mermaid\n")
			}
			if err := s.WriteMermaid(&buf); err != nil {
				return err
			}
			if format == "markdown" {
				buf.WriteString("```\n")
			}
			if file == "" || file == "-" {
				_, err = a.stdout.Write(buf.Bytes())
				return err
			}
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				return fmt.Errorf("writing the diagram: %w", err)
			}
			a.log.Info("wrote the schema diagram", "file", file, "tables", len(s.Tables), "relationships", len(s.Relations))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "write the diagram to this file instead of stdout")
	f.StringVarP(&output, "output", "o", "mermaid", "output format: mermaid, or markdown (the diagram in a mermaid code block)")
	// The format's name before -o/--output meant the format in every command.
	f.StringVar(&oldFormat, "format", "mermaid", "output format (deprecated: use -o/--output)")
	_ = f.MarkDeprecated("format", "use -o/--output")
	waitForDBFlag(f, &waitForDB)
	return cmd
}

// diagramFormat returns the format from -o/--output, or from the deprecated --format. --output
// used to name the file: a value that is no format but looks like a file (it has a dot or a
// slash, as schema.mmd or docs/schema.md) is taken as the file, with a warning, so that scripts
// keep working while they move to --file. Any other value is a mistyped format.
func diagramFormat(cmd *cobra.Command, a *app, output, oldFormat string, file *string) (string, error) {
	known := func(f string) bool { return f == "mermaid" || f == "markdown" }
	format := output
	if !cmd.Flags().Changed("output") {
		format = oldFormat
	}
	if known(format) {
		return format, nil
	}
	if !cmd.Flags().Changed("output") || *file != "" || !strings.ContainsAny(output, "./"+string(filepath.Separator)) {
		return "", usagef("-o %q: use mermaid or markdown", format)
	}
	a.log.Warn(fmt.Sprintf("--output %q as the file is deprecated: use --file %q (-o/--output is the output format, mermaid or markdown, as in every command)", output, output))
	*file = output
	if !known(oldFormat) {
		return "", usagef("--format %q: use mermaid or markdown", oldFormat)
	}
	return oldFormat, nil
}

func (a *app) readDiagram(ctx context.Context, cfg *pgx.ConnConfig, wait time.Duration) (s *diagram.Schema, err error) {
	conn, err := dbconn.Connect(ctx, cfg, wait, a.log)
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, conn.Close(cctx))
	}()
	return diagram.Read(ctx, conn, pgx.Identifier{a.migrationsTable}.Sanitize(), pgx.Identifier{a.historyTable}.Sanitize())
}
