//go:build tools

// Package tools pins the module's dependencies before the code that uses them lands.
package tools

import (
	_ "github.com/anchore/go-lzo"
	_ "github.com/cyphar/filepath-securejoin"
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/hanwen/go-fuse/v2/fs"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/pierrec/lz4/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/pflag"
	_ "github.com/ulikunitz/xz"
	_ "golang.org/x/sync/singleflight"
	_ "golang.org/x/sys/unix"
)
