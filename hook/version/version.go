// Package version carries the build's version, stamped by the linker.
package version

// Version is set with -ldflags "-X github.com/schemahook/schemahook/hook/version.Version=...".
var Version = "dev"
