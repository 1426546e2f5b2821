#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes czstd.streams: zstd frames made by C libzstd (the system's
libzstd.so.1 through ctypes), for TestCZstdStreams and TestCZstdVerdicts.

Two kinds of record, each starting with a kind byte and a name (a 1-byte
length and the bytes); integers are little-endian uint32:

  'S' a valid stream: the length of the original data, its SHA-256, the
      length of the stream and the stream. The test checks the decoded
      output's length and SHA-256, so the originals need not be stored.
  'C' a hand-made input (the rules of RFC 8878 and their edges) and
      libzstd's verdict on it, as one verdict of a 'V' record.
  'V' a small stream and libzstd's verdict on each of its corruptions:
      the length of the stream and the stream, then for each truncation
      (to 0 .. len-1 bytes) and then each single-bit flip (bit i of byte
      i/8, i from 0 to 8*len-1) one byte, 0 if ZSTD_decompress failed and
      1 if it succeeded, then the output's length and the first 8 bytes of
      its SHA-256. Decoding is into a buffer of verdictCap bytes (1 MiB).

The inputs are made here, deterministically, so that the file can be
remade: pseudo-random text from a small vocabulary, runs, periodic
patterns, random bytes (stored in raw blocks) and mixtures. Skippable
frames and concatenations are put together here. Run from this directory:
python3 gen_czstd.py
"""
import ctypes
import hashlib
import random
import struct

lib = ctypes.CDLL("libzstd.so.1")
lib.ZSTD_versionString.restype = ctypes.c_char_p
lib.ZSTD_compressBound.restype = ctypes.c_size_t
lib.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
lib.ZSTD_createCCtx.restype = ctypes.c_void_p
lib.ZSTD_freeCCtx.argtypes = [ctypes.c_void_p]
lib.ZSTD_CCtx_setParameter.restype = ctypes.c_size_t
lib.ZSTD_CCtx_setParameter.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
lib.ZSTD_compress2.restype = ctypes.c_size_t
lib.ZSTD_compress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
lib.ZSTD_decompress.restype = ctypes.c_size_t
lib.ZSTD_decompress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
lib.ZSTD_isError.restype = ctypes.c_uint
lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
lib.ZSTD_getErrorName.restype = ctypes.c_char_p
lib.ZSTD_getErrorName.argtypes = [ctypes.c_size_t]

# ZSTD_cParameter values (zstd.h; the experimental ones by number).
LEVEL, WINDOWLOG, STRATEGY, MINMATCH, LDM = 100, 101, 107, 105, 160
CONTENTSIZE, CHECKSUM = 200, 201
LITCOMP, TARGETCBLOCK = 1002, 1003  # ZSTD_c_literalCompressionMode, ZSTD_c_targetCBlockSize

verdictCap = 1 << 20


def compress(data, **p):
    """ZSTD_compress2 with the given parameters (names as above, lower case)."""
    names = {"level": LEVEL, "wlog": WINDOWLOG, "strategy": STRATEGY, "minmatch": MINMATCH,
             "ldm": LDM, "fcs": CONTENTSIZE, "check": CHECKSUM, "litcomp": LITCOMP,
             "block": TARGETCBLOCK}
    c = lib.ZSTD_createCCtx()
    try:
        for k, v in p.items():
            r = lib.ZSTD_CCtx_setParameter(c, names[k], v)
            if lib.ZSTD_isError(r):
                raise RuntimeError("%s=%d: %s" % (k, v, lib.ZSTD_getErrorName(r).decode()))
        bound = lib.ZSTD_compressBound(len(data))
        out = ctypes.create_string_buffer(bound)
        n = lib.ZSTD_compress2(c, out, bound, data, len(data))
        if lib.ZSTD_isError(n):
            raise RuntimeError(lib.ZSTD_getErrorName(n).decode())
        return out.raw[:n]
    finally:
        lib.ZSTD_freeCCtx(c)


def decompress(src, cap=verdictCap):
    out = ctypes.create_string_buffer(max(cap, 1))
    n = lib.ZSTD_decompress(out, cap, src, len(src))
    if lib.ZSTD_isError(n):
        return None
    return out.raw[:n]


rnd = random.Random(8878)
vocab = [bytes(rnd.choice(b"etaoinshrdlucmfwypvbgkqjxz") for _ in range(rnd.randint(1, 9)))
         for _ in range(60)]


def text(n):
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(vocab) + rnd.choice([b" ", b" ", b" ", b"\n", b", "])
    return bytes(out[:n])


def rand(n):
    return bytes(rnd.randrange(256) for _ in range(n))


def periodic(p, n):
    pat = rand(p)
    return (pat * (n // p + 1))[:n]


def skippable(n, nibble=0):
    return struct.pack("<II", 0x184D2A50 | nibble, n) + rand(n)


records = []


def stream(name, data, z):
    got = decompress(z, max(len(data), 1))
    assert got == data, name
    records.append(b"S" + bytes([len(name)]) + name.encode() + struct.pack("<I", len(data)) +
                   hashlib.sha256(data).digest() + struct.pack("<I", len(z)) + z)


def verdicts(name, z):
    rec = bytearray(b"V" + bytes([len(name)]) + name.encode() + struct.pack("<I", len(z)) + z)
    muts = [z[:i] for i in range(len(z))]
    for i in range(8 * len(z)):
        b = bytearray(z)
        b[i // 8] ^= 1 << (i % 8)
        muts.append(bytes(b))
    for m in muts:
        out = decompress(m)
        if out is None:
            rec.append(0)
        else:
            rec.append(1)
            rec += struct.pack("<I", len(out)) + hashlib.sha256(out).digest()[:8]
    records.append(bytes(rec))


tx32 = text(16 << 10)
for lvl in list(range(1, 20)) + [22]:
    stream("text16k-l%d" % lvl, tx32, compress(tx32, level=lvl))
for lvl in (-5, -1):
    stream("text16k-l%d" % lvl, tx32, compress(tx32, level=lvl))

inputs = {
    "empty": b"",
    "one": b"a",
    "hello": b"hello, hello, hello world\n",
    "text100": text(100),
    "text3000": text(3000),
    "zeros200k": bytes(200 << 10),
    "runs": b"".join(bytes([rnd.randrange(256)]) * rnd.randint(1, 3000) for _ in range(200)),
    "random5000": rand(5000),
    "periodic": periodic(37, 200 << 10),
    "mixed": text(8000) + rand(1000) + bytes(5000) + periodic(5, 9000) + text(8000),
}
for name, data in inputs.items():
    for lvl in (1, 3, 19):
        for check in (0, 1):
            for fcs in (0, 1):
                stream("%s-l%d-c%d-f%d" % (name, lvl, check, fcs), data,
                       compress(data, level=lvl, check=check, fcs=fcs))

tx = text(64 << 10)
stream("text64k-l1-w10", tx, compress(tx, level=1, wlog=10))
stream("text64k-l9-w17", tx, compress(tx, level=9, wlog=17, check=1))
stream("text64k-l19-w20-nofcs", tx, compress(tx, level=19, wlog=20, fcs=0))
stream("text64k-l22", tx, compress(tx, level=22))
stream("text64k-ldm", tx, compress(tx, level=5, ldm=1, wlog=19))
mixed = inputs["mixed"]
stream("mixed-rawlits", mixed, compress(mixed, level=3, litcomp=2))
stream("mixed-blocks1k", mixed, compress(mixed, level=7, block=1340, check=1))
stream("mixed-blocks1k-l19", mixed, compress(mixed, level=19, block=1340))
for s in range(1, 10):
    stream("text3000-strategy%d" % s, inputs["text3000"], compress(inputs["text3000"], level=3, strategy=s))
stream("text3000-minmatch7", inputs["text3000"], compress(inputs["text3000"], level=5, minmatch=7))

a, b, c = text(1000), rand(300), bytes(4000)
za, zb, zc = compress(a, level=3, check=1), compress(b, level=1, fcs=0), compress(c, level=19)
stream("frames3", a + b + c, za + zb + zc)
stream("skippable-only", b"", skippable(40, 7))
stream("skippable-empty", b"", skippable(0))
stream("frames-skippable", a + c, skippable(10, 15) + za + skippable(0, 3) + zc + skippable(5))
stream("frames-empty", a, compress(b"", level=1) + za + compress(b"", level=3, fcs=0))

verdicts("hello-c", compress(inputs["hello"], level=1, check=1))
verdicts("text100-l19", compress(inputs["text100"], level=19))
verdicts("text300-l3-nofcs", compress(text(300), level=3, fcs=0))
verdicts("text600-blocks", compress(text(600), level=5, block=200, check=1))
verdicts("runs-l1", compress(b"a" * 50 + b"b" * 300 + b"abc" * 40, level=1))
verdicts("rle-block", compress(bytes(1000), level=3))
verdicts("raw-block", compress(rand(60), level=3, fcs=0))
verdicts("frames-skip", skippable(3) + compress(b"xyz" * 20, level=1) + compress(text(80), level=3, check=1))
verdicts("periodic-l9", compress(periodic(7, 500) + text(100), level=9))
verdicts("text400-l22", compress(text(400), level=22, check=1))


# Hand-made inputs.
def frame(blocks, fcs=None, fcs_bytes=None, single=False, wd=0x48, check=None, did=b"", fhd_extra=0):
    """A frame: blocks (already encoded), a frame content size (fcs_bytes
    forces the field's width), single segment or window descriptor wd,
    the checksum of check if given, a dictionary ID field."""
    fcs_field = b""
    flag = 0
    if fcs is not None:
        n = fcs_bytes or (1 if single and fcs < 256 else 2 if 256 <= fcs < 65792 else 4 if fcs < 1 << 32 else 8)
        flag = {1: 0, 2: 1, 4: 2, 8: 3}[n]
        v = fcs - 256 if n == 2 else fcs
        fcs_field = v.to_bytes(n, "little")
    fhd = flag << 6 | (0x20 if single else 0) | (4 if check is not None else 0) | {0: 0, 1: 1, 2: 2, 4: 3}[len(did)] | fhd_extra
    out = struct.pack("<I", 0xFD2FB528) + bytes([fhd]) + (b"" if single else bytes([wd])) + did + fcs_field
    out += b"".join(blocks)
    if check is not None:
        lib.ZSTD_XXH64 if False else None
        out += struct.pack("<I", xxh64(check) & 0xFFFFFFFF)
    return out


def xxh64(b, seed=0):
    P1, P2, P3, P4, P5 = 11400714785074694791, 14029467366897019727, 1609587929392839161, 9650029242287828579, 2870177450012600261
    M = (1 << 64) - 1
    rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & M
    rnd_ = lambda acc, v: (rotl((acc + v * P2) & M, 31) * P1) & M
    n, i = len(b), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = rnd_(v[k], int.from_bytes(b[i + 8 * k:i + 8 * k + 8], "little"))
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for k in range(4):
            h = ((h ^ rnd_(0, v[k])) * P1 + P4) & M
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ rnd_(0, int.from_bytes(b[i:i + 8], "little")), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (int.from_bytes(b[i:i + 4], "little") * P1 & M), 23) * P2 + P3) & M
        i += 4
    while i < n:
        h = (rotl(h ^ (b[i] * P5 & M), 11) * P1) & M
        i += 1
    h ^= h >> 33
    h = h * P2 & M
    h ^= h >> 29
    h = h * P3 & M
    h ^= h >> 32
    return h


def blk(btype, content, last=True, size=None):
    if size is None:
        size = len(content) if btype != 1 else 0
    return struct.pack("<I", (size << 3) | (btype << 1) | int(last))[:3] + content


def raw(data, last=True):
    return blk(0, data, last)


def rle(byte, n, last=True):
    return blk(1, bytes([byte]), last, size=n)


def lit_raw(data):
    n = len(data)
    if n < 32:
        return bytes([n << 3]) + data
    if n < 4096:
        return struct.pack("<H", (n << 4) | 4) + data
    return struct.pack("<I", (n << 4) | 12)[:3] + data


def code_of(v, base, bits):
    for c in range(len(base) - 1, -1, -1):
        if base[c] <= v:
            assert v - base[c] < 1 << bits[c], v
            return c, v - base[c], bits[c]


LLB = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
LLX = [0] * 16 + [1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
MLB = list(range(3, 35)) + [35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051, 4099, 8195, 16387, 32771, 65539]
MLX = [0] * 32 + [1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]


def seqs_rle(seqs, modes=0x54, rle_syms=None):
    """A sequences section in RLE mode: seqs are (ll, offset value, ml)
    sharing their codes (offset value: 1-3 repeat, else offset+3)."""
    llc = [code_of(s[0], LLB, LLX) for s in seqs]
    mlc = [code_of(s[2], MLB, MLX) for s in seqs]
    ofc = [(s[1].bit_length() - 1, s[1] - (1 << (s[1].bit_length() - 1)), s[1].bit_length() - 1) for s in seqs]
    assert rle_syms or len({c[0] for c in llc}) == len({c[0] for c in mlc}) == len({c[0] for c in ofc}) == 1
    n = len(seqs)
    out = bytes([n]) if n < 128 else bytes([(n >> 8) + 128, n & 255]) if n < 0x7F00 else bytes([255]) + struct.pack("<H", n - 0x7F00)
    syms = rle_syms or bytes([llc[0][0], ofc[0][0], mlc[0][0]])
    out += bytes([modes]) + syms
    fields = []
    for i in range(n):
        fields += [ofc[i][1:], mlc[i][1:], llc[i][1:]]
    acc, nb = 0, 0
    for v, b in reversed(fields):
        acc |= v << nb
        nb += b
    acc |= 1 << nb
    nb += 1
    return out + acc.to_bytes((nb + 7) // 8, "little")


def crafted(name, src, expect=None):
    """Records src and libzstd's verdict; or, with expect (the verdict
    TestBigCrafted states for it, too big to store), checks that."""
    out = decompress(src)
    if expect is not None:
        assert (out is not None) == expect, (name, expect)
        print("%-50s %s" % (name, "decodes" if expect else "fails"))
        return
    rec = bytearray(b"C" + bytes([len(name)]) + name.encode() + struct.pack("<I", len(src)) + src)
    if out is None:
        rec.append(0)
    else:
        rec.append(1)
        rec += struct.pack("<I", len(out)) + hashlib.sha256(out).digest()[:8]
    records.append(bytes(rec))


hello = b"hello, world"
crafted("empty input", b"")
for n in range(1, 9):
    crafted("%d bytes of a frame" % n, frame([raw(hello)], fcs=12)[:n])
crafted("raw block", frame([raw(hello)]))
crafted("raw block, fcs", frame([raw(hello)], fcs=12))
crafted("raw block, fcs 2-byte field", frame([raw(b"x" * 300)], fcs=300))
crafted("raw block, fcs 8-byte field", frame([raw(hello)], fcs=12, fcs_bytes=8))
crafted("raw block, fcs 4-byte field", frame([raw(hello)], fcs=12, fcs_bytes=4))
crafted("raw block, single segment", frame([raw(hello)], fcs=12, single=True))
crafted("single segment, fcs 0, empty raw block", frame([raw(b"")], fcs=0, single=True))
crafted("fcs one less", frame([raw(hello)], fcs=11, fcs_bytes=4))
crafted("fcs one more", frame([raw(hello)], fcs=13, fcs_bytes=4))
crafted("fcs huge", frame([raw(hello)], fcs=1 << 40))
crafted("checksum", frame([raw(hello)], check=hello))
crafted("checksum wrong", frame([raw(hello)], check=b"other"))
crafted("checksum truncated", frame([raw(hello)], check=hello)[:-1])
crafted("reserved fhd bit", frame([raw(hello)], fhd_extra=8))
crafted("unused fhd bit", frame([raw(hello)], fhd_extra=16))
crafted("dictionary id 1 byte", frame([raw(hello)], did=b"\x07"))
crafted("dictionary id 0, 1 byte", frame([raw(hello)], did=b"\x00"))
crafted("dictionary id 0, 4 bytes", frame([raw(hello)], did=b"\x00" * 4))
crafted("dictionary id 4 bytes", frame([raw(hello)], did=b"\x00\x00\x00\x80"))
for e in (0, 17, 21, 22, 31):
    for m in (0, 7):
        crafted("window exponent %d mantissa %d" % (e, m), frame([raw(hello)], wd=e << 3 | m))
crafted("raw block of 128 KiB + 1", frame([raw(bytes(131073))], wd=0x50), expect=True)
crafted("raw block 2000 bytes, window 1 KiB", frame([raw(rand(2000))], wd=0))
crafted("rle block 200000 bytes", frame([rle(7, 200000)], wd=0x50))
crafted("rle block 2000 bytes, window 1 KiB", frame([rle(7, 2000)], wd=0))
crafted("rle block, truncated", frame([rle(7, 20)])[:-1])
crafted("reserved block type", frame([blk(3, b"abc")]))
crafted("no last block", frame([raw(hello, last=False)]))
crafted("two blocks", frame([raw(hello, last=False), rle(0x41, 5), raw(b"never")]))
crafted("raw block truncated", frame([raw(hello)])[:-1])
crafted("empty compressed block", frame([blk(2, b"")]))
crafted("compressed block of 1 byte", frame([blk(2, b"\x00")]))
crafted("raw literals, no sequences", frame([blk(2, lit_raw(hello) + b"\x00")]))
crafted("raw literals, no sequences, extra byte", frame([blk(2, lit_raw(hello) + b"\x00\x00")]))
crafted("raw literals, missing sequences section", frame([blk(2, lit_raw(hello))]))
crafted("raw literals truncated", frame([blk(2, lit_raw(hello)[:-1])]))
crafted("rle literals", frame([blk(2, bytes([5 << 3 | 1]) + b"z\x00")]))
crafted("rle literals, 2-byte header", frame([blk(2, struct.pack("<H", 3000 << 4 | 5) + b"z\x00")]))
crafted("rle literals, 3-byte header", frame([blk(2, struct.pack("<I", 70000 << 4 | 13)[:3] + b"z\x00")], wd=0x50))
crafted("rle literals, 3-byte header, 1 byte", frame([blk(2, struct.pack("<I", 1 << 4 | 13)[:3] + b"z\x00")]))
crafted("rle literals over 128 KiB", frame([blk(2, struct.pack("<I", 140000 << 4 | 13)[:3] + b"z\x00")], wd=0x50))
crafted("rle literals over the window", frame([blk(2, struct.pack("<I", 3000 << 4 | 5)[:2] + b"z\x00")], wd=0))
crafted("raw literals over the window", frame([blk(2, lit_raw(rand(2000)) + b"\x00")], wd=0))
crafted("compressed block of 128 KiB", frame([blk(2, lit_raw(bytes(131068)) + b"\x00")], wd=0x50), expect=True)
crafted("compressed block of 128 KiB - 1", frame([blk(2, lit_raw(bytes(131067)) + b"\x00")], wd=0x50), expect=True)
crafted("raw literals of 128 KiB + 1", frame([blk(2, lit_raw(bytes(131073)) + b"\x00")], wd=0x50), expect=False)
# libzstd 1.5.4 lets a compressed block decode to 128 KiB + 32 bytes when
# the output buffer has room (its literals then sit 32 bytes after the
# block's 128 KiB in it, and they are the limit).
for n in (131078, 131104, 131105, 200000):
    crafted("sequences of %d bytes" % n, frame([raw(b"a", last=False), blk(2, lit_raw(b"") + seqs_rle([(0, 1 + 3, n // 2), (0, 1 + 3, n - n // 2)]))], wd=0x50), expect=n <= 131104)
crafted("treeless literals first", frame([blk(2, struct.pack("<I", 10 << 4 | 3 | 5 << 14)[:3] + b"\x01\x02\x03\x04\x05\x00")]))
crafted("compressed literals, 4-byte block", frame([blk(2, struct.pack("<I", 1 << 4 | 2 | 1 << 14)[:3] + b"\x00")]))
ab = b"ab"
crafted("sequence", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)]))]))
crafted("sequence, fcs", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)]))], fcs=22))
crafted("sequence, offset 1 overlap", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 1 + 3, 30)]))]))
crafted("sequence, offset past the start", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 3 + 3, 20)]))]))
crafted("sequence, too many literals", frame([blk(2, lit_raw(ab) + seqs_rle([(3, 2 + 3, 20)]))]))
crafted("sequences, repeat offsets", frame([blk(2, lit_raw(b"abcdefgh") + seqs_rle([(4, 1, 5), (4, 1, 5)]))]))
crafted("sequences, repeat offset 1 at the start", frame([blk(2, lit_raw(b"abcdefgh") + seqs_rle([(4, 1, 5)]))]))
crafted("sequences, repeat offsets, ll 0", frame([raw(b"abcdefgh", last=False), blk(2, lit_raw(b"") + seqs_rle([(0, 1, 5), (0, 1, 5)]))]))
crafted("sequences, repeat offset 3 (0), ll 0", frame([raw(b"abcdefgh", last=False), blk(2, lit_raw(b"") + seqs_rle([(0, 3, 5)]))]))
crafted("sequences, repeat offsets, ll 0, code 1", frame([raw(b"abcdefghijklmnop", last=False), blk(2, lit_raw(b"") + seqs_rle([(0, 2, 5), (0, 3, 5), (0, 2, 5)]))]))
crafted("sequences over 128 KiB", frame([raw(b"a", last=False), blk(2, lit_raw(b"") + seqs_rle([(0, 1 + 3, 100000), (0, 1 + 3, 100000)]))], wd=0x50))
crafted("sequence over the window", frame([blk(2, lit_raw(b"a") + seqs_rle([(1, 1 + 3, 3000)]))], wd=0))
crafted("offset over the window", frame([raw(rand(1500), last=False), blk(2, lit_raw(b"a") + seqs_rle([(1, 1400 + 3, 30)]))], wd=0))
crafted("offset into the previous frame", frame([raw(rand(100))]) + frame([blk(2, lit_raw(b"a") + seqs_rle([(1, 50 + 3, 30)]))]))
crafted("repeat mode first", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)], modes=0xFC))]))
crafted("repeat mode after a block", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)]), last=False), blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)], modes=0xFC, rle_syms=b""))]))
crafted("repeat mode in the next frame", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)]))]) + frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)], modes=0xFC, rle_syms=b""))]))
crafted("reserved mode bits", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)], modes=0x57))]))
crafted("rle ll code 36", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)], rle_syms=bytes([36, 2, 17])))]))
crafted("rle of code 31", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)], rle_syms=bytes([2, 31, 17])))]))
crafted("rle of code 32", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)], rle_syms=bytes([2, 32, 17])))]))
crafted("rle ml code 53", frame([blk(2, lit_raw(ab) + seqs_rle([(2, 2 + 3, 20)], rle_syms=bytes([2, 2, 53])))]))
crafted("predefined modes, no bits", frame([blk(2, lit_raw(ab) + b"\x01\x00\x01")]))
crafted("frame, 3 trailing bytes", frame([raw(hello)]) + b"abc")
crafted("frame, 4 trailing bytes", frame([raw(hello)]) + b"abcd")
crafted("frame, 5 trailing bytes", frame([raw(hello)]) + b"abcde")
crafted("frame, trailing zeros", frame([raw(hello)]) + bytes(8))
crafted("skippable, 7 bytes", skippable(0)[:7])
crafted("skippable size past the end", skippable(10)[:-1])
crafted("skippable size 0xFFFFFFF8", struct.pack("<II", 0x184D2A5F, 0xFFFFFFF8))
crafted("skippable, 3 trailing bytes", skippable(2) + b"abc")
crafted("frames and skippable", skippable(1) + frame([raw(hello)]) + skippable(0, 9) + frame([rle(1, 9)], fcs=9))


def huf_lits(weights, n, stream, streams4=False):
    """A Huffman-compressed literals section of n literals with 4-bit
    weights and the given stream(s) (already encoded)."""
    tree = bytes([127 + len(weights)]) + bytes(
        (weights[i] << 4) | (weights[i + 1] if i + 1 < len(weights) else 0) for i in range(0, len(weights), 2))
    body = tree + stream
    v = 2 | (1 << 2 if streams4 else 0) | n << 4 | len(body) << 14
    return struct.pack("<I", v)[:3] + body


# Symbol 0 has weight w (a 1-bit code), symbols 1.. weights w-1 down to 1,
# one more weight 1 implied: the longest code is w bits. Eight symbols 0.
for w in (11, 12, 13):
    crafted("huffman %d-bit codes" % w, frame([blk(2, huf_lits(list(range(w, 0, -1)), 8, b"\xff\x01") + b"\x00")]))
crafted("huffman stream not used up", frame([blk(2, huf_lits(list(range(11, 0, -1)), 7, b"\xff\x01") + b"\x00")]))
crafted("huffman stream overrun", frame([blk(2, huf_lits(list(range(11, 0, -1)), 9, b"\xff\x01") + b"\x00")]))
crafted("huffman 4 streams, 5 literals", frame([blk(2, huf_lits(list(range(11, 0, -1)), 5, b"\x02\x00\x02\x00\x01\x00\x03\x03\x03\x03", True) + b"\x00")]))
crafted("huffman 4 streams, 6 literals", frame([blk(2, huf_lits(list(range(11, 0, -1)), 6, b"\x01\x00\x01\x00\x01\x00\x07\x07\x07\x07", True) + b"\x00")]))
crafted("huffman odd number of longest codes", frame([blk(2, huf_lits([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 1], 8, b"\xff\x01") + b"\x00")]))
crafted("huffman then treeless", frame([blk(2, huf_lits(list(range(11, 0, -1)), 8, b"\xff\x01") + b"\x00", last=False),
                                         blk(2, struct.pack("<I", 3 | 8 << 4 | 2 << 14)[:3] + b"\xff\x01\x00")]))

with open("czstd.streams", "wb") as f:
    for r in records:
        f.write(r)
print("libzstd", lib.ZSTD_versionString().decode(), len(records), "records")
