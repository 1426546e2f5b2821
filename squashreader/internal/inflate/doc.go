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
// Errors wrap the shared [codec.ErrCorrupt] (bad or truncated input, with
// the byte offset in src) or [codec.ErrTooLong] (the output would not fit
// in cap(dst)); Zlib is a [codec.Decoder] as a [codec.Func]. Nothing in src
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
// Tests, implementation notes and measured speed: docs/codecs.md.
package inflate
