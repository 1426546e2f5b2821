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
// Errors wrap codec.ErrCorrupt (bad or truncated input; they say what and the
// byte offset in src) or codec.ErrTooLong (the output would not fit in
// cap(dst): reported as soon as a chunk's header says so). Nothing in src
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
// # Speed
//
// The range decoder's range, code and input position live in locals (the
// hot loop's registers), and the probability arrays are fixed-size and
// padded to powers of two so that masked indices need no bounds checks.
// Literals (with and without the match byte), length and distance-slot
// trees and reverse trees decode their bits without branches: the bit's
// mask selects the new range and code, and the probability update is one
// arithmetic shift, p -= (p - t) >> 5 with t 2017 or 0. They are small
// functions of their own so that their loops keep everything in
// registers; the state machine's decisions stay branches. Input past a
// chunk's packed data reads as zeros, so normalisation does not check for
// the end but the chunk fails at its end if it used more. Matches with a
// distance of at least 8 are copied 8 bytes at a time (a chunk may
// overwrite up to 8 bytes past its end, within cap(dst)), shorter
// distances byte by byte. The probabilities are reset by copying a
// read-only initialised template (only the literal coders lc and lp use).
//
// BenchmarkDecode compares it with therootcompany/xz (a pooled Reader on
// the whole .xz stream, as squashreader used it) and ulikunitz/xz/lzma's
// Reader2 on the full 8 KiB metadata blocks of a mksquashfs -comp xz
// image of $GOROOT/src, on 8 KiB blocks of Go source and on 128 KiB blocks
// of Go source and of /usr/bin executables, compressed by the xz command
// as mksquashfs does (preset 6, the dictionary the block size; also 9e);
// testdata/bench_clzma.py times C liblzma on the same blocks (its doc
// says how), and TestCPUTime (LZMA2_CPUTIME=1) gives figures of thread
// CPU time, steadier on a loaded machine. On the 2-core AMD EPYC
// development VM (shared, so the figures move by 10-20%) it decoded
// 1.5x-1.8x as fast as therootcompany/xz (about 50 MB/s of output on
// metadata blocks, 80 on 128 KiB of Go source, 43 on executables), 2-3x
// as fast as ulikunitz, and 0.8x-1.05x as fast as C liblzma 5.4.1. The
// branch-free bit decoding is what brought it there: Go compiles the
// textbook branches to jumps, which ran a quarter slower. Resetting the
// probabilities takes 0.2 µs (BenchmarkReset), under 0.5% of decoding an
// 8 KiB block.
//
// # Tests
//
// C liblzma's streams (testdata/clzma.streams, made by
// testdata/gen_clzma.py: presets 0-9 and extreme, lc/lp/pb variants,
// dictionary sizes, match finders, uncompressed chunks, several MiB in
// several chunks), ulikunitz's Writer2 streams, hand-made inputs for every
// rule above made with a test encoder (enc_test.go), every truncation and
// bit flip of small streams (verdicts checked against liblzma when
// python3 is there), output limits, concurrent use and FuzzDecode.
package lzma2
