//go:build !unix

package source

import "io"

func (d dirFS) open(name string) (io.ReadCloser, error) { return d.base.Open(name) }
