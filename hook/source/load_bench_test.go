package source

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoad measures loading 500 migration pairs from disk: it runs on every update,
// including the no-op one on every deploy and Argo CD sync (P1 in docs/benchmarks.md). Dir is
// what the CLI reads a directory with; os.DirFS is the reference it must beat.
func BenchmarkLoad(b *testing.B) {
	dir := b.TempDir()
	for v := 1; v <= 500; v++ {
		for _, dirn := range []string{"up", "down"} {
			name := filepath.Join(dir, fmt.Sprintf("%06d_step_%d.%s.sql", v, v, dirn))
			if err := os.WriteFile(name, []byte(fmt.Sprintf("CREATE TABLE t%d (id int);\n", v)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, fsys := range []struct {
		name string
		fs   fs.FS
	}{{"Dir", Dir(dir)}, {"os.DirFS", os.DirFS(dir)}} {
		b.Run(fsys.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Load(fsys.fs, "."); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
