package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/diagram"
)

func (a *app) diagramCommand() *cobra.Command {
	var (
		output, format string
		waitForDB      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "diagram",
		Short: "Print a Mermaid ER diagram of the live schema (tables, columns, keys, relationships)",
		Long: `diagram reads the tables of the database (every schema except the system ones; schemahook's
own tables are left out) and prints a Mermaid erDiagram: columns with their types and PK, FK and
UK markers, and one relationship per foreign key. Cardinality comes from the schema: a NOT NULL
foreign key means exactly one parent (||), a nullable one zero or one (|o); a unique foreign key
means at most one child (o|), otherwise any number (o{).

--format markdown wraps the diagram in a mermaid code block, which GitHub and GitLab render.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "mermaid" && format != "markdown" {
				return usagef("--format %q: use mermaid or markdown", format)
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
			if output == "" || output == "-" {
				_, err = a.stdout.Write(buf.Bytes())
				return err
			}
			if err := os.WriteFile(output, buf.Bytes(), 0o644); err != nil {
				return fmt.Errorf("writing the diagram: %w", err)
			}
			a.log.Info("wrote the schema diagram", "file", output, "tables", len(s.Tables), "relationships", len(s.Relations))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&output, "output", "", "write the diagram to this file instead of stdout")
	f.StringVar(&format, "format", "mermaid", "mermaid, or markdown (the diagram in a mermaid code block)")
	f.DurationVar(&waitForDB, "wait-for-db", 0, "how long to wait for the database to accept connections")
	return cmd
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
