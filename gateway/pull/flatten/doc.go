// SPDX-License-Identifier: BSD-3-Clause

// Package flatten merges the tar layers of a container image into one tar
// stream, the image's root filesystem, without extracting anything to
// disk.
//
// It works in two passes over the layers. Index reads every layer's
// headers, oldest first, into an in-memory tree (headers only, never file
// contents): whiteouts (.wh.NAME) and opaque markers (.wh..wh..opq)
// remove lower entries, files replace directories and vice versa, hard
// links are resolved to the file, symlink or fifo they name at that point
// (also across layers; a link to a symlink links to the symlink, as
// link(2) does). Then WriteTo emits directories, symlinks and fifos from the
// tree, and re-reads the layers to stream the content of each surviving
// regular file exactly once, followed by its other hard-linked names. A
// hard link whose original name was later deleted still works: the
// surviving name carries the content.
//
// Layer contents are untrusted. Names are sanitized ("./" and "/"
// prefixes stripped; entries with "..", NUL or over-long names dropped);
// hard link targets are resolved inside the image only; device nodes are
// dropped; trusted.* and *.overlay.* xattrs are stripped (the runtime
// uses the image as an overlayfs lower layer, whose metadata they would
// forge); entry counts, header bytes and the flattened size are bounded.
package flatten
