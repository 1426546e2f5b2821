// SPDX-License-Identifier: BSD-3-Clause

// Package squashreader reads squashfs 4.0 images, as mksquashfs writes
// them, from an io.ReaderAt. It knows nothing of FUSE.
//
// It offers an inode-level API (Root, Inode, Lookup, ReadDir with resumable
// cookies, ReadAt, Readlink, Xattrs) for a FUSE server, and an io/fs view
// (Reader itself is fs.FS, fs.StatFS, fs.ReadFileFS and fs.ReadLinkFS;
// Reader.FS adds fs.ReadDirFS, whose ReadDir(name) would clash with the
// inode-level ReadDir).
//
// See the end of this comment for the format notes and the safety rules.
package squashreader
