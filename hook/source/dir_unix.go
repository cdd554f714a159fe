//go:build unix

package source

import (
	"io"
	"io/fs"
	"syscall"
)

// open opens name for reading without os.File: see Dir.
func (d dirFS) open(name string) (io.ReadCloser, error) {
	if d.root == "" || !fs.ValidPath(name) {
		return d.base.Open(name) // os.DirFS's error
	}
	for {
		fd, err := syscall.Open(d.root+"/"+name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return rawFile{fd: fd, name: name}, nil
	}
}

// rawFile is an open file descriptor read with read(2).
type rawFile struct {
	fd   int
	name string
}

func (f rawFile) Read(b []byte) (int, error) {
	for {
		n, err := syscall.Read(f.fd, b)
		switch {
		case err == syscall.EINTR:
			continue // a signal (the runtime preempts with SIGURG) on a slow file system
		case err != nil:
			return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f rawFile) Close() error { return syscall.Close(f.fd) }
