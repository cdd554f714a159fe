package source

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoad measures loading 500 migration pairs from disk: it runs on every update,
// including the no-op one on every deploy and Argo CD sync (P1 in docs/benchmarks.md).
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
	fsys := os.DirFS(dir)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Load(fsys, "."); err != nil {
			b.Fatal(err)
		}
	}
}
