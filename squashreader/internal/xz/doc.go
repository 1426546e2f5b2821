// SPDX-License-Identifier: BSD-3-Clause

// Package xz decodes a whole .xz stream from one buffer into another, as
// squashfs "xz" blocks need: mksquashfs compresses each block into its own
// stream (one block, CRC32 check, LZMA2 with the dictionary set to the
// block size, and with -Xbcj one BCJ filter in front), the compressed
// block is in memory and its decompressed size is bounded by the block
// size. The LZMA2 data goes to package lzma2, which decodes straight into
// the output buffer (the buffer is the dictionary: no window, no copy);
// this package reads the container around it and undoes the filters.
//
// # API
//
// Decode(dst, src) decodes the stream into dst[:0], writing at most
// cap(dst) bytes: it is a [codec.Decoder] as a [codec.Func]. Errors wrap
// the shared [codec.ErrCorrupt] (bad or truncated input, with the byte
// offset in src; errors in the LZMA2 data also wrap lzma2's error),
// [codec.ErrUnsupported] (a check type or filter the decoder does not
// know) or [codec.ErrTooLong] (the output would not fit). It is safe for
// concurrent use, and nothing in src makes it panic or touch memory
// outside src and dst[:cap(dst)].
//
// # What it checks
//
// Everything the format (xz-file-format 1.1) defines, as liblzma does:
// the magic bytes, the stream flags and their CRC32, every block header
// (its CRC32, reserved flag bits, zero padding, minimal variable-length
// integers, the filter chain: one to four filters, LZMA2 last and only
// last, property sizes), the compressed and uncompressed sizes a block
// header gives, the block padding and check (none, CRC32, CRC64 or
// SHA-256; the other check types are codec.ErrUnsupported, as in the
// kernel's decoder), the index (record count and each block's unpadded and
// uncompressed size, its padding and CRC32) and the stream footer (its
// CRC32, the index size, the flags, the magic). After the stream only
// stream padding may follow: zero bytes, a multiple of four. A second
// stream is an error (mksquashfs never writes one; xz --single-stream and
// unsquashfs do not read one either).
//
// Filters: delta and the BCJ filters for x86, PowerPC, IA-64, ARM,
// ARM-Thumb, SPARC and ARM64, with their start offset property. RISC-V
// (xz 5.6) is codec.ErrUnsupported. Each filter runs over a block's whole
// output, which gives what a streaming filter gives at the end of a
// stream.
//
// Tests: docs/codecs.md.
package xz
