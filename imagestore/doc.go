// SPDX-License-Identifier: BSD-3-Clause

// Package imagestore is the contract between the image gateway, which
// fills the shared image directory, and the runtime, which reads it.
//
// An image store is one directory (udiRoot.conf imagePath; the gateway's
// per-system image directory). Each image is two files:
//
//	<id>.squashfs  the flattened root filesystem
//	<id>.json      its Metadata
//
// where <id> is the lowercase hex sha256 of the image manifest. Both files
// are published atomically: written under a temporary name (a dot file) in
// the same directory, fsync'd, renamed into place, the squashfs first and
// the metadata last, then the directory is fsync'd. A reader therefore
// treats an image as present only when its <id>.json exists, and ignores
// every other name in the directory. See docs/image-store.md.
package imagestore
