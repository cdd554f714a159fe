package lint

import (
	"os"
	"path/filepath"
	"testing"
)

// The compiled parser is kept on disk so the next process skips the compilation (seconds and
// a quarter of a gigabyte); `make bench` (P8) measures the warm run.
func TestParserCacheWritesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	t.Setenv(CacheDirEnv, dir)
	p, err := loadPGQuery()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.parseJSON("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	var files int
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Fatalf("no compiled parser cached under %s", dir)
	}
}

// A cache directory that cannot be created (read-only root file system in a pod) costs time,
// never the lint run.
func TestParserCacheUnwritableFallsBack(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(CacheDirEnv, filepath.Join(file, "cache"))
	p, err := loadPGQuery()
	if err != nil {
		t.Fatalf("parser with an unwritable cache dir: %v", err)
	}
	if _, err := p.parseJSON("SELEC 1"); err == nil {
		t.Fatal("syntax error not reported")
	}
}
