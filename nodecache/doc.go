// SPDX-License-Identifier: BSD-3-Clause

// Package nodecache is the node-local block cache between the squashfs
// reader and an image's source (a file on the shared filesystem, or an
// HTTP server with Range requests).
//
// A Cache is one badger database on node disk, shared by every image a
// process serves, capped in size with least-recently-used eviction. An
// Image is an io.ReaderAt over one image file: it reads the file in
// fixed-size chunks, the chunk size of the image's chunk list
// (imagestore.ChunkList, <id>.chunks), keyed by image id, chunk size and
// index. Every chunk is checked against its sha256 in the chunk list
// before it is served or stored, whether it comes from the cache or from
// the source, so a corrupt cache, a torn write or a tampering mirror can
// make a read fail but never change its bytes. Concurrent reads of one
// missing chunk fetch it once.
//
// The cache directory holds secrets (private images): Open makes it 0700
// and locks it against a second process. docs/ARCHITECTURE.md, "nodecache",
// gives the design and the measured figures.
package nodecache
