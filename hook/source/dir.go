package source

import (
	"io/fs"
	"os"
)

// Dir is os.DirFS(path) for Open and Load, which read every up file on every update: they
// read its files with the open, read and close system calls alone. os.Open also offers each
// file to the runtime's network poller (four fcntl calls and an epoll_ctl that a regular file
// refuses), which more than doubles the time a no-op update spends reading hundreds of files
// (BenchmarkLoad). Every other use goes through os.DirFS.
func Dir(path string) fs.FS { return dirFS{base: os.DirFS(path), root: path} }

type dirFS struct {
	base fs.FS
	root string
}

func (d dirFS) Open(name string) (fs.File, error) { return d.base.Open(name) }

func (d dirFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(d.base, name) }
