package source

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Dir reads exactly what os.DirFS reads — across buffer-size boundaries, through the symlinks
// a Kubernetes ConfigMap volume is made of — and reports an unreadable file by name.
func TestDirReadsWhatDirFSReads(t *testing.T) {
	root := t.TempDir()
	// A ConfigMap volume: the files live in a timestamped directory that ..data points to,
	// and each visible name is a symlink through ..data.
	data := filepath.Join(root, "..2026_11_23_00_00_00.000000001")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(data), filepath.Join(root, "..data")); err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, 511, 512, 4095, 4096, 4097, 65536, 200_000}
	for i, size := range sizes {
		v := i + 1
		body := []byte(fmt.Sprintf("-- %d bytes\n", size))
		for len(body) < size {
			body = append(body, byte('a'+(len(body)*7+v)%26))
		}
		body = body[:max(size, 0)]
		for dir, content := range map[string][]byte{"up": body, "down": []byte(fmt.Sprintf("DROP TABLE t%d;\n", v))} {
			name := fmt.Sprintf("%06d_size_%d.%s.sql", v, size, dir)
			if err := os.WriteFile(filepath.Join(data, name), content, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(root, name)); err != nil {
				t.Fatal(err)
			}
		}
	}

	want, err := Load(os.DirFS(root), ".")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(Dir(root), ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Migrations()) != len(sizes) || len(want.Migrations()) != len(sizes) {
		t.Fatalf("Dir loaded %d migrations, os.DirFS %d, want %d", len(got.Migrations()), len(want.Migrations()), len(sizes))
	}
	for i, g := range got.Migrations() {
		w := want.Migrations()[i]
		gd, gerr := g.Down()
		wd, werr := w.Down()
		if gerr != nil || werr != nil {
			t.Fatalf("down files: %v, %v", gerr, werr)
		}
		if g.Up != w.Up || g.Checksum != w.Checksum || *gd != *wd {
			t.Errorf("version %d: Dir read %d+%d bytes (sha256 %.12s), os.DirFS %d+%d (sha256 %.12s)",
				g.Version, len(g.Up.SQL), len(gd.SQL), g.Checksum, len(w.Up.SQL), len(wd.SQL), w.Checksum)
		}
		if len(g.Up.SQL) != sizes[i] {
			t.Errorf("version %d: read %d bytes, the file has %d", g.Version, len(g.Up.SQL), sizes[i])
		}
	}

	// A file that cannot be opened (here: the symlink's target is gone) is named in the error.
	broken := "000099_gone.up.sql"
	if err := os.Symlink(filepath.Join("..data", "nowhere.sql"), filepath.Join(root, broken)); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Dir(root), ".")
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), broken) {
		t.Fatalf("broken symlink: got %v, want ErrInvalid naming %s (file does not exist)", err, broken)
	}

	// Names outside the directory are refused as os.DirFS refuses them.
	if _, err := (Dir(root)).(dirFS).open("../" + filepath.Base(root) + "/" + broken); err == nil {
		t.Fatal(`open("../…") succeeded, want an invalid-path error`)
	}
}
