// SPDX-License-Identifier: BSD-3-Clause

// Package inflate decodes whole zlib (RFC 1950) and raw deflate (RFC 1951)
// streams from one buffer into another, as squashfs "gzip" blocks need:
// the compressed block is in memory and its decompressed size is bounded
// by the block size, so there is no streaming state, no window copy and
// no io.Reader in the way.
//
// # API
//
// Zlib(dst, src) decodes a zlib stream into dst[:0], writing at most
// cap(dst) bytes, and checks the header and the adler32 trailer.
// Deflate(dst, src) decodes raw deflate data and also returns how many
// bytes of src it used. Both are safe for concurrent use.
//
// Errors wrap codec.ErrCorrupt (bad or truncated input, with the byte offset in
// src) or codec.ErrTooLong (the output would not fit in cap(dst)). Nothing in src
// can make them panic, read or write outside src and dst[:cap(dst)], or
// loop without consuming input; bytes of dst past the returned length may
// be overwritten.
//
// # Acceptance rules
//
// They follow zlib's inflate (and agree with compress/flate wherever a
// stream can decode at all):
//
//   - zlib header: CM must be 8, CINFO at most 7, FCHECK must check, and a
//     preset dictionary (FDICT) is rejected: squashfs never uses one. The
//     window size in CINFO is not enforced on distances (zlib does not
//     either, unless built with INFLATE_STRICT).
//   - Bytes after the adler32 trailer are ignored, as zlib's uncompress and
//     compress/zlib do; mksquashfs never writes any.
//   - Huffman codes: over-subscribed code sets are rejected. The code
//     length code must be complete. The literal/length and distance codes
//     must be complete, except that a code with a single symbol of length
//     one is accepted (its other one-bit code is invalid when met); the
//     distance code may also be empty (a block of only literals), and any
//     distance symbol met then is an error. The literal/length code must
//     have an end-of-block code. At most 286 literal/length and 30
//     distance codes; literal/length symbols 286-287 and distance symbols
//     30-31 (reachable with the fixed code) are errors when decoded.
//   - A distance that reaches before the start of the output is an error
//     (there is no preset dictionary).
//
// # Speed
//
// The decoder keeps a 64-bit bit buffer refilled with one unaligned 8-byte
// load, decodes with an 11-bit literal/length and an 8-bit distance table
// plus subtables (entries pack the symbol or base, the extra bit count and
// the code length), and runs a fast loop (decodeFast) with no per-symbol
// end checks while at least 16 bytes of input and 276 of output room
// remain, up to three literals per refill, the next entry looked up before
// a match is copied; matches are copied eight bytes at a time (a byte
// pattern for distance 1, a multiple of the period for distances 2-7). A
// careful slow loop finishes each buffer's tail, padding the input with
// zeros and failing once more bits were used than the input holds. The
// adler32 adds 16 bytes a step with SWAR multiplies.
//
// BenchmarkZlib compares it with klauspost/compress/zlib (used as
// squashreader did, a pooled reader) and compress/zlib on 128 KiB blocks
// of Go source, /usr/bin executables and a half-random mix, compressed at
// level 9 as mksquashfs does; testdata/bench_czlib.py times C zlib on the
// same blocks (its doc says how). On the 2-core AMD EPYC development VM
// it decoded about 2x as fast as klauspost (1.75x-2.3x by kind) and
// 1.2x-1.5x as fast as C zlib 1.2.13.
//
// # Tests
//
// Differential against compress/zlib and klauspost at every level, C zlib
// streams (testdata/czlib.streams, made by testdata/gen_czlib.py: window
// bits, memLevel, strategies, flushes), the gzip command's raw deflate and
// the blocks of mksquashfs -comp gzip images; hand-made streams for every
// acceptance rule above (checked against C zlib when python3 is there);
// every truncation and bit flip of small streams; FuzzZlib.
package inflate
