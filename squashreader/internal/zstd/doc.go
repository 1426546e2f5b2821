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
// Errors wrap codec.ErrCorrupt (bad or truncated input; they say what and the
// byte offset in src) or codec.ErrTooLong (the output would not fit in
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
//     codec.ErrCorrupt), and the content checksum (the low 32 bits of XXH64,
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
// # Tests
//
// testdata/gen_czstd.py (C libzstd through ctypes) wrote
// testdata/czstd.streams: 165 streams (levels -5 to 22, with and without
// checksums and content sizes, windows from 1 KiB, long-distance matching,
// raw literals, small blocks, every strategy, several frames, skippable
// frames), decoded and checked by SHA-256, and with one byte less of
// cap(dst) for codec.ErrTooLong; libzstd's verdict (and output hash) on every
// truncation and every single-bit flip of 10 small streams (11034
// inputs, TestCZstdVerdicts: no disagreement); and 102 hand-made inputs at
// the edges of every rule above with libzstd's verdicts (TestCrafted),
// with the 128 KiB limits in TestBigCrafted (their verdicts checked by the
// script). TestCLI decodes 100 streams of the zstd command: ELF
// executables from /usr/bin and text from /usr/share, sizes from 0 to
// 1 MiB around the block size, levels 1 to 19, --ultra -22, --fast,
// small windows, --long, -T2, random (raw blocks) and zeros (RLE
// blocks), several frames. TestSquashfs decodes every frame of mksquashfs
// -comp zstd images (block sizes 4 KiB and 128 KiB, levels 1 and 22,
// metadata blocks too) and compares with klauspost/compress/zstd. Tests
// that need the zstd command or mksquashfs skip without them, and fail
// under CI=true. TestAllocs checks for no allocations, TestConcurrent for
// races (go test -race). FuzzDecode checks the invariants and compares
// with klauspost/compress/zstd where it decodes a frame to its content
// size. On amd64, TestAsmMatchesGeneric decodes every stream of the
// corpus (with output buffers that end at, just before and just after
// its output), every truncation and bit flip of the verdict streams
// (13,642 decodes), with the assembly loops and with the Go ones: same
// output, same errors; FuzzAsm does the same on arbitrary input (10
// minutes, 2.9 million inputs, then FuzzDecode 5 minutes, 1.8 million,
// with the assembly in: no failure); make test also runs the package
// with -tags purego. Under it (go test -run='^$' -fuzz=FuzzDecode -fuzztime=11m,
// 2 workers) the code ran 11 minutes (18.5 million inputs), and again
// 10.5 minutes (14.6 million) after the last change to the table
// building, with no failure. The whole package's tests take about 5
// seconds.
//
// # Speed
//
// The bit readers keep their 64-bit window, bit count and position in
// locals in the hot loops. A block's sequences are decoded 64 at a time
// into an array, then executed: two loops, each with its state in
// registers (one loop that did both kept about 25 values live and
// spilled a dozen of them every sequence). Decoding cannot fail (past
// the end the stream reads zeros, and the end check catches it), so the
// batches change only speed. The three tables are fixed-size arrays of
// one-word entries indexed with masks (no bounds checks); the window
// reload in the decoding loop has no branch. Executing copies literals
// and matches 16 bytes at a time (the first 16 unconditionally, as
// libzstd does) where dst's capacity leaves room, matches at offsets
// under 8 a multiple of the offset a byte at a time, then 8 at a time.
// On amd64 both loops are assembly translations of the Go ones
// (decodeSeqsGeneric, execSeqs): the decoding loop whole, the executing
// loop's fast path (execFast: offsets of 16 or more, room to overshoot,
// every check passing), which hands any other sequence to the Go loop
// before touching it. The assembly reads only the bit stream's window
// (its position only goes down), the tables at masked indexes and the
// bytes the Go code would, and writes only the sequences array and
// dst[:cap(dst)]. The four Huffman streams decode together, four
// symbols each between reloads, from one table of 2^log 16-bit entries
// (symbol and length).
//
// BenchmarkDecode compares it with klauspost/compress/zstd's DecodeAll
// (WithDecoderConcurrency(1)): 3 MiB of 128 KiB blocks of /usr/bin
// executables and of /usr/share text, each compressed by the zstd command
// at level 15 (mksquashfs's default) without a checksum, and the full
// 8 KiB metadata blocks of a mksquashfs -comp zstd image of a tree with
// $GOROOT/src's names. testdata/bench_czstd.py times C libzstd on the
// same blocks (through ctypes: about a microsecond a call, which matters
// only for the metadata blocks). On the 2-core AMD EPYC development VM
// (shared: single runs move by 20%), medians of 7 runs of MB/s of output:
//
//	                      Decode  klauspost  ratio  libzstd 1.5.4 (DCtx / one-shot)
//	128 KiB executables      352        291   1.21        625 / 615
//	128 KiB text             622        471   1.32        901 / 723
//	8 KiB metadata           432        418   1.03        594 / 286
//
// made by
//
//	d=$(mktemp -d)
//	ZSTD_BENCH_DUMP=$d go test -run XXX -bench Decode -benchtime 1s -count 7 ./squashreader/internal/zstd/
//	python3 squashreader/internal/zstd/testdata/bench_czstd.py $d/*.blocks   # 3 runs, median
//
// (Before the sequence loops were split and translated to assembly the
// ratios to klauspost were 0.79, 0.68 and 0.77.) The decoding loop is
// about two fifths of the time: it is bound by its chain of dependent
// steps, table entry, bit count, state, next entry; executing the
// sequences is a sixth, the four Huffman streams a tenth to a sixth,
// the FSE and Huffman tables, built for nearly every block of these
// streams, about a tenth.
package zstd
