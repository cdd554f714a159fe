package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Goals of P8, from the developer-workflow issue: lint is fast enough for a pre-commit hook.
const (
	goalP8Wall     = 300 * time.Millisecond
	goalP8RSSBytes = 64_000_000
	p8Runs         = 10
)

// p8result is `schemahook lint` on the example schema's migrations (10 small files).
type p8result struct {
	files    int
	cold     proc            // the first run: compiles the SQL parser into the cache
	warm     []time.Duration // the runs after it
	warmPeak int64           // max RSS of the warm runs
}

// lintRuns is P8. The parser's compilation cache goes to a directory of this run, so the first
// run is cold whatever the machine has cached, and the user's own cache is left alone.
func (e *env) lintRuns(ctx context.Context) (p8result, error) {
	dir := filepath.Join(e.root, "migrations")
	var res p8result
	entries, err := os.ReadDir(dir)
	if err != nil {
		return res, err
	}
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".sql") {
			res.files++
		}
	}
	environ := []string{"SCHEMAHOOK_CACHE_DIR=" + filepath.Join(e.work, "lint-cache")}
	args := []string{e.bin.schemahook, "lint", dir}
	if res.cold, err = runProc(ctx, 5*time.Minute, environ, args...); err != nil {
		return res, fmt.Errorf("P8 cold lint: %w", err)
	}
	for range p8Runs {
		p, err := runProc(ctx, time.Minute, environ, args...)
		if err != nil {
			return res, fmt.Errorf("P8 lint: %w", err)
		}
		res.warm = append(res.warm, p.wall)
		res.warmPeak = max(res.warmPeak, p.maxRSS)
	}
	return res, nil
}

func (r *results) p8Goal() verdict {
	w := median(r.p8.warm)
	return verdict{met: w > 0 && w <= goalP8Wall && r.p8.warmPeak <= goalP8RSSBytes,
		note: fmt.Sprintf("(%s, %s)", ms(w), mb(r.p8.warmPeak))}
}

// p8Rows are P8's rows of the results table.
func (r *results) p8Rows() string {
	var b strings.Builder
	row := func(cells ...string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	row("P8", fmt.Sprintf("`lint` of %d small files, warm (compiled parser cached): median wall of %d / peak RSS", r.p8.files, len(r.p8.warm)),
		ms(median(r.p8.warm))+" / "+mb(r.p8.warmPeak), "—", "—", "—",
		fmt.Sprintf("≤ %s and ≤ %s", ms(goalP8Wall), mb(goalP8RSSBytes)), r.p8Goal().String())
	row("P8", "`lint` first run on the machine (compiles the parser): wall / peak RSS",
		secs(r.p8.cold.wall)+" / "+mb(r.p8.cold.maxRSS), "—", "—", "—", "", "")
	return b.String()
}

// p8Table is P8's rows alone under the table's header (bench -p8).
func (r *results) p8Table() string {
	head := "| | figure | schemahook | golang-migrate | goose | psql | goal | result |\n|---|---|---:|---:|---:|---:|---|---|\n"
	return head + r.p8Rows()
}
