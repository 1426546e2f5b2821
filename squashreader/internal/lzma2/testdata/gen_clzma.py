#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes clzma.streams: raw LZMA2 data made by C liblzma (Python's lzma
module, FORMAT_RAW with one FILTER_LZMA2), for TestCLZMAStreams.

Each record is: a 1-byte name length and the name, the dictionary size
(big-endian uint32), the length of the original data (uint32), its
SHA-256, the length of the LZMA2 data (uint32) and the data. The test
checks the decoded output's length and SHA-256, so the originals (some
of them megabytes) need not be stored.

The inputs are made here, deterministically, so that the file can be
remade: pseudo-random text from a small vocabulary, runs, periodic
patterns, random bytes (which liblzma stores in uncompressed chunks) and
mixtures. Run from this directory: python3 gen_clzma.py
"""
import hashlib
import lzma
import random
import struct

rnd = random.Random(2026)
words = [bytes(rnd.choice(b"etaoinshrdlucmfwypvbgkqjxz") for _ in range(rnd.randint(1, 9)))
         for _ in range(500)]


def text(n):
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(words) + rnd.choice([b" ", b" ", b" ", b"\n", b", "])
    return bytes(out[:n])


def rand(n):
    return bytes(rnd.randrange(256) for _ in range(n))


def periodic(p, n):
    pat = rand(p)
    return rand(17) + (pat * (n // p + 1))[:n]


def edited(base, n):
    """base repeated to n bytes with a random byte changed every ~1 KiB:
    long matches at long distances, many chunks, a small stream."""
    out = bytearray((base * (n // len(base) + 1))[:n])
    for i in range(0, n, 1000):
        out[i + rnd.randrange(1000) if i + 1000 < n else i] = rnd.randrange(256)
    return bytes(out)


tx = text(8000)
inputs = {
    "empty": b"",
    "one": b"a",
    "zeros": bytes(70000),
    "text100": text(100),
    "text8k": text(8192),
    "text": tx,
    "random": rand(3000),
    "period3": periodic(3, 5000),
    "period7": periodic(7, 5000),
    "period13": periodic(13, 5000),
    "mixs": text(2000) + rand(1000) + tx[:2000] + text(1000) + rand(300) + tx[:3000],
    "binary": bytes(rnd.choice([0, 0, 0, 1, 0xff, 0x48, 0x89, 0xe8]) for _ in range(8000)),
}
big = edited(tx, 5 << 20)  # > 2 MiB: several LZMA chunks, and dictionary-far matches

records = []


def add(name, data, **opts):
    f = {"id": lzma.FILTER_LZMA2}
    f.update(opts)
    c = lzma.compress(data, format=lzma.FORMAT_RAW, filters=[f])
    dict_size = lzma._decode_filter_properties(lzma.FILTER_LZMA2, lzma._encode_filter_properties(f))["dict_size"]
    # the decoder must agree
    assert lzma.decompress(c, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "dict_size": dict_size}]) == data
    records.append((name, dict_size, data, c))


# Uncompressed chunks between LZMA ones, at a few presets only (the
# random parts make the file big).
mix = text(5000) + rand(70000) + text(5000) + tx[:3000] + rand(2000) + tx
for name, data in (("random70k", rand(70000)), ("mix", mix)):
    for preset in (0, 6):
        add(f"{name}/p{preset & 0xff}", data, preset=preset)
for name, data in inputs.items():
    for preset in range(10):
        add(f"{name}/p{preset}", data, preset=preset)
    add(f"{name}/p6e", data, preset=6 | lzma.PRESET_EXTREME)
    add(f"{name}/p9e", data, preset=9 | lzma.PRESET_EXTREME)
for name in ("text", "mixs", "binary", "period13"):
    data = inputs[name]
    for lc, lp, pb in ((0, 0, 0), (0, 4, 4), (4, 0, 0), (1, 3, 1), (2, 2, 3), (3, 1, 4), (0, 2, 2), (3, 0, 2)):
        add(f"{name}/lc{lc}lp{lp}pb{pb}", data, preset=6, lc=lc, lp=lp, pb=pb)
    for dict_size in (4096, 6144, 8192, 12288, 65536, 1 << 20):
        add(f"{name}/dict{dict_size}", data, preset=6, dict_size=dict_size)
    for mf in (lzma.MF_HC3, lzma.MF_HC4, lzma.MF_BT2, lzma.MF_BT3, lzma.MF_BT4):
        add(f"{name}/mf{mf}fast", data, preset=6, mf=mf, mode=lzma.MODE_FAST, nice_len=273)
        add(f"{name}/mf{mf}normal", data, preset=6, mf=mf, mode=lzma.MODE_NORMAL, nice_len=8)
for preset in (0, 6, 9 | lzma.PRESET_EXTREME):
    add(f"big/p{preset & 0xff}", big, preset=preset)
add("big/dict64k", big, preset=6, dict_size=65536)
add("big/lc0lp4pb4", big, preset=6, lc=0, lp=4, pb=4)

with open("clzma.streams", "wb") as f:
    for name, dict_size, data, c in records:
        n = name.encode()
        f.write(struct.pack(">B", len(n)) + n + struct.pack(">II", dict_size, len(data)) +
                hashlib.sha256(data).digest() + struct.pack(">I", len(c)) + c)
print(len(records), "streams,", sum(len(r[3]) for r in records), "bytes, liblzma", lzma.__name__)
