// SPDX-License-Identifier: BSD-3-Clause

// Package lzma2 decodes raw LZMA2 data, the payload of an xz block whose
// filter chain ends in LZMA2 (filter ID 0x21), from one buffer into
// another, as squashfs "xz" blocks need: the compressed block is in
// memory and its decompressed size is bounded by the block size, so the
// output buffer is the dictionary. There is no circular buffer, no copy
// out of it and no io.Reader in the way. The .xz container (stream and
// block headers, BCJ filters, checks, index) is the caller's business.
//
// # API
//
// Decode(dst, src, dictSize) decodes LZMA2 data into dst[:0], writing at
// most cap(dst) bytes, up to and including the end marker (control byte
// 0x00), and returns the output and the number of bytes of src used.
// DictSize decodes the LZMA2 filter's 1-byte property into dictSize. Both
// are safe for concurrent use; per-call state (about 40 KiB of
// probabilities) comes from a sync.Pool.
//
// Errors wrap the shared [codec.ErrCorrupt] (bad or truncated input; they
// say what and the byte offset in src) or [codec.ErrTooLong] (the output
// would not fit in cap(dst): reported as soon as a chunk's header says
// so). Nothing in src
// can make Decode panic, read or write outside src and dst[:cap(dst)], or
// loop without producing output; bytes of dst past the returned length may
// be overwritten.
//
// # Acceptance rules
//
// They are liblzma's (5.4), and the tests check Decode's verdict against
// C liblzma's on hand-made inputs and on every bit flip of small streams:
//
//   - Control bytes: 0x00 ends the data; 0x01 is an uncompressed chunk
//     with a dictionary reset, 0x02 one without; 0x03-0x7F are errors;
//     0x80-0xFF are LZMA chunks, bits 5-6 the reset (0: none, 1: state,
//     2: state and new properties, 3: those and the dictionary).
//   - The first chunk must reset the dictionary (0x01 or 0xE0-0xFF). After
//     any dictionary reset, the first LZMA chunk must carry properties
//     (0xC0-0xFF): so an LZMA chunk that follows a 0x01 chunk needs them
//     too. The properties byte must be below 225 with lc+lp <= 4.
//   - An LZMA chunk's range decoder starts afresh: 5 bytes, the first 0. It
//     must use exactly the chunk's packed size and produce exactly its
//     unpacked size, ending with code 0 (after a last normalisation) as
//     liblzma requires when the size is known; a match may not run past
//     the chunk's end. The end-of-payload marker (distance 0xFFFFFFFF) is
//     an error anywhere, even right after a chunk's data (liblzma does not
//     allow it in LZMA2).
//   - A distance must not reach before the last dictionary reset, nor
//     beyond the dictionary size as liblzma's LZ decoder sets it: dictSize
//     raised to 4 KiB and rounded up to a multiple of 16 (no difference
//     for the sizes the property byte can give).
//   - Bytes after the end marker are not looked at.
//
// ulikunitz/xz/lzma's Reader2 (v0.5.x) is more lenient: it takes lc+lp >
// 4, does not hold an LZMA chunk to its packed size, and does not require
// the final code 0 (an end-of-payload marker right after a chunk's data
// passes). Where it decodes and Decode does too, the outputs agree
// (FuzzDecode). Its Writer2 with a small dictionary and incompressible
// data writes uncompressed chunks whose header says more than they hold;
// its own Reader2 and liblzma reject them as Decode does.
//
// Tests, implementation notes and measured speed: docs/codecs.md.
package lzma2
