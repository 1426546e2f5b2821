#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes czstd.streams: zstd frames made by C libzstd (the system's
libzstd.so.1 through ctypes), for TestCZstdStreams and TestCZstdVerdicts.

Two kinds of record, each starting with a kind byte and a name (a 1-byte
length and the bytes); integers are little-endian uint32:

  'S' a valid stream: the length of the original data, its SHA-256, the
      length of the stream and the stream. The test checks the decoded
      output's length and SHA-256, so the originals need not be stored.
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

with open("czstd.streams", "wb") as f:
    for r in records:
        f.write(r)
print("libzstd", lib.ZSTD_versionString().decode(), len(records), "records")
