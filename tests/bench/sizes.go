package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// sizes is P4.
type sizes struct {
	image     int64  // bytes of the OCI image archive; -1 when it could not be built
	imageHow  string // how it was built, or why not
	binaries  map[string]int64
	imageFile string
}

// sizes builds the hook image the way the project does — scripts/image.sh, else `make image`
// — into the work dir, and stats the binaries built for this run. A missing image build is
// reported, not fatal: the other figures stand on their own.
func (e *env) sizes(ctx context.Context) sizes {
	s := sizes{image: -1, binaries: map[string]int64{}}
	for tool, path := range map[string]string{toolSchemahook: e.bin.schemahook, toolMigrate: e.bin.migrate, toolGoose: e.bin.goose} {
		if fi, err := os.Stat(path); err == nil {
			s.binaries[tool] = fi.Size()
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	switch script := filepath.Join(e.root, "scripts", "image.sh"); {
	case fileExists(script):
		s.imageFile = filepath.Join(e.work, "schemahook-image.tar")
		s.imageHow = "scripts/image.sh"
		cmd = exec.CommandContext(ctx, script, s.imageFile)
	case exec.CommandContext(ctx, "make", "-C", e.root, "-n", "image").Run() == nil:
		s.imageFile = filepath.Join(e.root, "bin", "schemahook-image.tar")
		s.imageHow = "make image"
		cmd = exec.CommandContext(ctx, "make", "-C", e.root, "image")
	default:
		s.imageHow = "n/a: neither scripts/image.sh nor a `make image` target exists yet"
		return s
	}
	cmd.Dir = e.root
	if out, err := cmd.CombinedOutput(); err != nil {
		s.imageHow = "n/a: " + s.imageHow + " failed: " + lastLine(string(out))
		logf("  image build failed: %v\n%s", err, tail(string(out)))
		return s
	}
	if fi, err := os.Stat(s.imageFile); err == nil {
		s.image = fi.Size()
	} else {
		s.imageHow = "n/a: " + s.imageHow + " wrote no " + filepath.Base(s.imageFile)
	}
	return s
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// lastLine is where a script's error usually is.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}
