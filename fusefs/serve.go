// SPDX-License-Identifier: BSD-3-Clause

package fusefs

import (
	"errors"
	"log/slog"
	"os"
)

// ServeOptions are the options of Serve. The zero value (or nil) means
// defaults. Serve leaves the process alone: it installs no signal handler,
// tunes no collector and writes no file, so that one process may serve
// several images; the caller passes in what it wants from those.
type ServeOptions struct {
	// FS tunes the file system (see New). Its Logger defaults to Logger.
	FS *Options
	// Mount is how it is mounted (see Mount). Its Logger defaults to
	// Logger.
	Mount *MountOptions
	// Name names the image in errors (shifter-mount: its path).
	Name string
	// Logger receives the server's events: unmounting, unmounted, request
	// counts, and what ends Serve once the mount was ready. Default
	// discards.
	Logger *slog.Logger
	// NotBefore, when not nil, holds the mount until it is closed
	// (shifter-mount: until its signal handlers are in place, so that no
	// signal ends the process between mounting and serving).
	NotBefore <-chan struct{}
	// Ready, when not nil, is called once the mount answers requests,
	// with its mount point: the place to report readiness. An error means
	// nobody will use the mount: Serve detaches it and returns the error
	// at once.
	Ready func(mountpoint string) error
	// Signals, when not nil, is a source of requests: syscall.SIGUSR1 logs
	// the request counts; any other signal unmounts, and a mount still in
	// use is then detached (umount -l) and served until its last file is
	// closed; a signal while detached ends Serve with ErrAbandoned.
	Signals <-chan os.Signal
	// PrefetchMetadata, when above 0, is how many bytes of the image's
	// inode and directory tables are read into the reader's metadata
	// cache once the mount is ready, in the background
	// (squashreader.Reader.PrefetchMetadata): the first lookups then wait
	// for no read and no decompression. Only when the process may run on
	// more than one CPU: on one, the prefetch would hold up the requests
	// it is meant to speed up.
	PrefetchMetadata int64
	// Stats logs the request counts when the mount ends.
	Stats bool
	// Step, when not nil, is called as start-up steps end ("file system
	// built", "mounted (FUSE INIT answered)"), to time them.
	Step func(name string)
}

// ErrAbandoned is returned by Serve when it was asked to stop while its
// detached mount was still in use: the files still open there will fail.
var ErrAbandoned = errors.New("stopped while the detached mount was in use: its open files will fail")
