#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes czlib.streams: zlib streams made by C zlib (Python's zlib module),
each as a big-endian uint32 length and the stream, for TestCZlibStreams.

The inputs are made here, deterministically, so that the file can be
remade: pseudo-random text from a small vocabulary, runs, periodic
patterns, random bytes. Run from this directory: python3 gen_czlib.py
"""
import random
import struct
import zlib

rnd = random.Random(1950)
words = [bytes(rnd.choice(b"etaoinshrdlucmfwypvbgkqjxz") for _ in range(rnd.randint(1, 9)))
         for _ in range(500)]


def text(n):
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(words) + rnd.choice([b" ", b" ", b" ", b"\n", b", "])
    return bytes(out[:n])


def periodic(p, n):
    pat = bytes(rnd.randrange(256) for _ in range(p))
    return bytes(rnd.randrange(256) for _ in range(17)) + (pat * (n // p + 1))[:n]


inputs = [
    b"",
    b"a",
    text(100),
    text(8000),
    bytes(70000),
    bytes(rnd.randrange(256) for _ in range(3000)),
    periodic(3, 5000),
    periodic(7, 5000),
    periodic(13, 5000),
    text(5000) + bytes(rnd.randrange(256) for _ in range(1000)) + text(5000),
]

streams = []
for data in inputs:
    for level in range(10):
        streams.append(zlib.compress(data, level))
big = inputs[3] + inputs[9]
for wbits in range(9, 16):
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    streams.append(c.compress(big) + c.flush())
for mem in (1, 9):
    c = zlib.compressobj(6, zlib.DEFLATED, 15, mem)
    streams.append(c.compress(big) + c.flush())
for strategy in (zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE, zlib.Z_FIXED):
    for data in (inputs[2], inputs[3], inputs[6], inputs[9]):
        c = zlib.compressobj(6, zlib.DEFLATED, 15, 8, strategy)
        streams.append(c.compress(data) + c.flush())
# Several flushes make several blocks, some of them empty stored ones.
c = zlib.compressobj(6)
s = b""
for i in range(0, len(inputs[3]), 3000):
    s += c.compress(inputs[3][i:i + 3000]) + c.flush(zlib.Z_FULL_FLUSH if i % 2 else zlib.Z_SYNC_FLUSH)
streams.append(s + c.flush())

with open("czlib.streams", "wb") as f:
    for s in streams:
        f.write(struct.pack(">I", len(s)) + s)
print(len(streams), "streams")
