// SPDX-License-Identifier: BSD-3-Clause

// Package zstd decodes Zstandard data (RFC 8878) from one buffer into
// another, as squashfs "zstd" blocks need: mksquashfs compresses each data
// and metadata block into its own frame, the compressed block is in memory
// and its decompressed size is bounded by the block size. The output
// buffer is the window: there is no circular buffer, no copy out of it
// and no io.Reader in the way. It imports only the standard library and
// builds no tables at package initialisation (the predefined FSE tables
// are built on first use, under a sync.Once; initialisation only makes
// the channel of idle decoders). On amd64 its two sequence loops
// are in assembly (seqs_amd64.s); elsewhere, and with the purego build
// tag, their Go versions run.
//
// # API
//
// Decode(dst, src) decodes the frames in src into dst[:0], writing at most
// cap(dst) bytes, and returns the output: the concatenation of every
// frame's content, skippable frames skipped. It is safe for concurrent
// use; per-call state (Huffman and FSE tables, a 128 KiB literals buffer)
// is kept between calls (up to 16 of them, in a channel: a sync.Pool
// would drop them at each garbage collection), so a steady-state call
// allocates nothing.
//
// Decode is a [codec.Decoder] as a [codec.Func]. Errors wrap the shared
// [codec.ErrCorrupt] (bad or truncated input; they say what and the byte
// offset in src) or [codec.ErrTooLong] (the output would not fit in
// cap(dst): reported as soon as a header says so, a frame content size,
// a raw or RLE block's size, a literals section's size, or when a
// sequence would run past it). Nothing in src can make Decode panic, read
// or write outside src and dst[:cap(dst)], allocate by a size it claims,
// or loop without consuming input or producing output; bytes of dst past
// the returned length may be overwritten (matches and literals are copied
// 16 bytes at a time).
//
// # What it accepts
//
// What C libzstd 1.5.4's ZSTD_decompress accepts, with no dictionary:
//
//   - Frames: the magic number, the frame header descriptor (the reserved
//     bit must be 0, the unused bit is ignored), the window descriptor
//     (window log at most 31), a dictionary ID (any nonzero one is an
//     error: "dictionaries not supported"), the frame content size in all
//     its widths (the output must have exactly that size: more or less is
//     corrupt), and the content checksum (the low 32 bits of XXH64,
//     package-internal) when the descriptor has the flag. Skippable frames
//     (magic 0x184D2A5?) are skipped; frames and skippable frames may
//     follow one another; anything else after a frame, even a few bytes,
//     is an error. Empty input decodes to empty output.
//   - Blocks: raw, RLE and compressed; the reserved type is an error. A
//     compressed block may be 128 KiB and no bigger, as may its literals;
//     raw and RLE blocks and the window are not held to 128 KiB or to the
//     window size (libzstd's one-shot decoder does not check them), nor
//     are offsets held to the window: only to the start of the frame.
//   - Literals: raw, RLE, Huffman-coded with one or four streams (four
//     need at least 6 literals), and treeless (the previous Huffman table
//     of the frame; an error if there is none). Huffman tree descriptions
//     with FSE-compressed or 4-bit weights, codes up to 12 bits (libzstd
//     takes 12; RFC 8878 says 11), at least two and an even number of
//     longest codes, as libzstd checks. Each Huffman stream must be used
//     up exactly.
//   - Sequences: the three tables predefined, RLE (codes within range),
//     FSE-compressed (accuracy logs up to 9, 9 and 8) or repeated (an
//     error before the frame's first sequences section); repeat offsets
//     across the frame's blocks. libzstd 1.5.4 quirks that decide verdicts
//     on corrupt input are followed: the modes byte's reserved bits are
//     ignored; the FSE states move on after the last sequence too and the
//     bit stream need only be used up by then (reading past its end is
//     allowed); bits read past the end are what libzstd's reader gives
//     there (its window shifted modulo 64, two different ways for extra
//     bits and for states), not zeros; a repeat offset that comes to 0
//     (offset 1 minus one) is taken as 1. A block's sequences may produce
//     up to 128 KiB + 32 bytes: what libzstd 1.5.4 allows when the output
//     buffer has room (its literals then sit 32 bytes after the block's
//     128 KiB in the buffer); RFC 8878 says 128 KiB, and libzstd's limit
//     moves with the size of the output buffer when it is tight. This is
//     the one place where a verdict depends on the buffer in libzstd; Decode
//     takes the roomy buffer's.
//
// Known possible differences, none seen in the tests: libzstd reads an FSE
// table description that ends near the end of its input with clamped
// 32-bit loads, which could take a description that runs past the input as
// good; Decode rejects it. libzstd picks a single- or double-symbol Huffman
// decoder by a heuristic; on corrupt streams the two could fail in
// different places, not with different verdicts as far as the tests go.
//
// # Assembly
//
// On amd64 the two sequence loops are assembly translations of the Go
// ones (decodeSeqsGeneric, execSeqs): the decoding loop whole, the
// executing loop's fast path (execFast: offsets of at least
// fastMinOffset, room to overshoot, every check passing), which hands any
// other sequence to the Go loop before touching it. The assembly takes
// struct offsets, table masks, the entry layout and the limits from
// go_asm.h, and Go checks before each call the invariants it relies on
// (checkSeqState, checkExecArgs: a broken one panics with an internal
// error): it reads only the bit stream's window (its position only goes
// down), the tables at masked indexes and the bytes the Go code would,
// and writes only the sequences array and dst[:cap(dst)].
//
// Tests, implementation notes and measured speed: docs/codecs.md.
package zstd
