// SPDX-License-Identifier: BSD-3-Clause

// Package fusefs serves a squashfs image, read through squashreader, as a
// read-only FUSE file system with go-fuse's raw API.
//
// What a program sees through the mount is what a kernel mount of the same
// image (mount -t squashfs -o loop,ro) shows: types, modes, owners, sizes,
// times (atime and ctime equal mtime, as the kernel's squashfs sets them),
// link counts, the shared inode number of hard links, device numbers,
// symlink targets, directory listings in image order with "." and "..",
// d_type and d_ino, contents, xattrs in image order (trusted.* listed only
// to uid 0, as the kernel lists them only to CAP_SYS_ADMIN), st_blocks
// and st_blksize as the kernel computes them, and the kernel's statfs
// figures (except f_type, which the kernel sets to FUSE's for every FUSE
// mount). Every modifying request fails with EROFS.
//
// The design is stateless: a FUSE node id is derived from the squashfs
// inode reference (the root is node 1, any other inode is its reference
// plus 2), so Lookup keeps no table and Forget has nothing to do. Because
// the image never changes, the kernel is told to cache everything for as
// long as it likes: entry, attribute and negative-entry timeouts are
// effectively infinite, file pages are kept across opens
// (FOPEN_KEEP_CACHE), directory listings are cached (FOPEN_CACHE_DIR), and
// when the kernel offers it, OPEN and OPENDIR are not sent at all (the
// kernel then applies both flags by itself). READDIRPLUS fills the
// attribute cache while listing, and requests are served concurrently.
//
// Known deviations: go-fuse answers a LOOKUP of ".go-fuse-epoll-hack" in
// the root itself (its poll hack), so that name shows a phantom empty file
// there. st_blocks counts a file's bytes less its sparse bytes
// (Inode.Sparse) plus the xattr id entry's size (Reader.XattrSize), and
// the d_ino of ".." is the directory inode's parent field (Inode.Parent),
// exactly as the kernel's squashfs reports them.
//
// FS implements fuse.RawFileSystem; Mount mounts it (Linux only) and
// returns a Server to wait for and unmount. Serve is the whole life of a
// served image (build, mount, report readiness, serve, unmount on request)
// without touching process state; Report, WaitReport, StartDaemon and
// DetachStdio are the protocol of a daemon that reports its mount to the
// command that started it.
package fusefs
