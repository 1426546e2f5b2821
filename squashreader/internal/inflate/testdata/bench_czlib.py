#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Times C zlib (Python's zlib module) on the blocks BenchmarkZlib uses,
to compare with it:

    d=$(mktemp -d)
    INFLATE_BENCH_DUMP=$d go test -run XXX -bench 'Zlib/.*/inflate' ./squashreader/internal/inflate/
    python3 squashreader/internal/inflate/testdata/bench_czlib.py $d/*.blocks

Prints MB/s of output for each file, the best of several rounds of
decompressing every block once (zlib.decompress with the block size as
the output buffer size, as a whole-buffer decoder would do).
"""
import struct
import sys
import time
import zlib

for path in sys.argv[1:]:
    data = open(path, "rb").read()
    blocks = []
    i = 0
    while i < len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        blocks.append(data[i + 4:i + 4 + n])
        i += 4 + n
    total = sum(len(zlib.decompress(b)) for b in blocks)
    best = None
    for _ in range(15):
        t0 = time.perf_counter()
        for b in blocks:
            zlib.decompress(b, 15, 128 << 10)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    print(f"{path}: {len(blocks)} blocks, {total} bytes, C zlib {zlib.ZLIB_RUNTIME_VERSION}: {total / best / 1e6:.2f} MB/s")
