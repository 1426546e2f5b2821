#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes clz4.cases: LZ4 blocks made by C liblz4 (LZ4_compress_default and
LZ4_compress_HC, through ctypes) and C liblz4's verdict on them and on
corruptions of them, for TestCLZ4.

The file holds a list of blocks, then a list of cases. A block record is:
its length (uint32, big-endian) and bytes. A case record is: the block's
index (uint32), a bit to flip (int32; -1: none), a length to cut the block
to (int32; -1: none), the output capacity (uint32), LZ4_decompress_safe's
result (int32: the output length, -1 for an error, -2 when the output is
undefined: it depends on what the output buffer held before, as a match
of offset 0 copies bytes never written) and the first 8 bytes of the
output's SHA-256.

The inputs are made here deterministically, so the file can be remade:
pseudo-random text, runs, periodic data, random bytes, and the bytes of
a few sizes at the edges of liblz4's parsing limits. Run from this
directory: python3 gen_clz4.py
"""
import ctypes
import hashlib
import random
import struct

lib = ctypes.CDLL("liblz4.so.1")
rnd = random.Random(2026)
words = [bytes(rnd.choice(b"etaoinshrdlucmfwypvbgkqjxz") for _ in range(rnd.randint(1, 9)))
         for _ in range(300)]


def text(n):
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(words) + rnd.choice([b" ", b" ", b"\n", b", "])
    return bytes(out[:n])


def rand(n):
    return bytes(rnd.randrange(256) for _ in range(n))


def periodic(p, n):
    pat = rand(p)
    return (pat * (n // p + 1))[:n]


def compress(data, level):
    cap = lib.LZ4_compressBound(len(data))
    buf = ctypes.create_string_buffer(max(cap, 1))
    if level == 0:
        n = lib.LZ4_compress_default(data, buf, len(data), cap)
    else:
        n = lib.LZ4_compress_HC(data, buf, len(data), cap, level)
    assert n > 0 or len(data) == 0, (len(data), level)
    return buf.raw[:n]


def decompress(block, cap, fill):
    src = ctypes.create_string_buffer(block, max(len(block), 1))
    dst = ctypes.create_string_buffer(fill * (cap + 64), cap + 64)
    n = lib.LZ4_decompress_safe(src, dst, len(block), cap)
    return n, dst.raw[:max(n, 0)]


def verdict(block, cap):
    n1, o1 = decompress(block, cap, b"\x00")
    n2, o2 = decompress(block, cap, b"\xaa")
    if n1 < 0 and n2 < 0:
        return -1, b"\0" * 8
    if n1 != n2 or o1 != o2:
        return -2, b"\0" * 8
    return n1, hashlib.sha256(o1).digest()[:8]


inputs = [b"", b"a", b"abcd" * 3, text(13), text(100), bytes(1000), periodic(3, 5000),
          periodic(100, 70000), text(8192), text(20000), rand(300), rand(5000),
          text(6000) + rand(200) + bytes(30000)]
for n in range(1, 40):
    inputs.append(text(n))

blocks = []
cases = []
for data in inputs:
    for level in (0, 9, 12):
        b = compress(data, level)
        if not b:
            continue
        i = len(blocks)
        blocks.append(b)
        for cap in sorted({len(data), len(data) + 100, 131072, max(len(data) - 1, 0)}):
            cases.append((i, -1, -1, cap) + verdict(b, cap))
# Corruptions: every bit flip of a few small blocks, and every truncation.
small = [i for i, b in enumerate(blocks) if 40 <= len(b) <= 200][:6]
for i in small:
    b = blocks[i]
    for cap in (131072, 3 * len(b)):
        for bit in range(len(b) * 8):
            m = bytearray(b)
            m[bit // 8] ^= 1 << (bit % 8)
            cases.append((i, bit, -1, cap) + verdict(bytes(m), cap))
        for cut in range(len(b)):
            cases.append((i, -1, cut, cap) + verdict(b[:cut], cap))

with open("clz4.cases", "wb") as f:
    f.write(struct.pack(">I", len(blocks)))
    for b in blocks:
        f.write(struct.pack(">I", len(b)) + b)
    f.write(struct.pack(">I", len(cases)))
    for (i, bit, cut, cap, res, h) in cases:
        f.write(struct.pack(">IiiIi", i, bit, cut, cap, res) + h)
print(len(blocks), "blocks,", len(cases), "cases,",
      sum(1 for c in cases if c[4] == -1), "errors,", sum(1 for c in cases if c[4] == -2), "undefined")
