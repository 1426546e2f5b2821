#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Times C libzstd on the blocks BenchmarkDecode uses, to compare with it:

    d=$(mktemp -d)
    ZSTD_BENCH_DUMP=$d go test -run XXX -bench 'Decode/.*/zstd' -benchtime 1x ./squashreader/internal/zstd/
    python3 squashreader/internal/zstd/testdata/bench_czstd.py $d/*.blocks

For each file it prints MB/s of output, the best of several rounds of
decoding every block once, two ways through ctypes on the system's
libzstd.so.1, into a preallocated buffer of the block size:
ZSTD_decompressDCtx with one context for all blocks (what a server that
keeps a context would do; the fair comparison with Decode, which keeps its
tables in a pool) and ZSTD_decompress (a context allocated per call). The
CPU-time figures (the thread's) are steadier on a loaded machine. The
ctypes call costs about a microsecond a block, which matters only for the
8 KiB metadata blocks.
"""
import ctypes
import struct
import sys
import time

lib = ctypes.CDLL("libzstd.so.1")
lib.ZSTD_versionString.restype = ctypes.c_char_p
lib.ZSTD_createDCtx.restype = ctypes.c_void_p
lib.ZSTD_decompressDCtx.restype = ctypes.c_size_t
lib.ZSTD_decompressDCtx.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
lib.ZSTD_decompress.restype = ctypes.c_size_t
lib.ZSTD_decompress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
version = lib.ZSTD_versionString().decode()


def read_blocks(path):
    data = open(path, "rb").read()
    blocks, i = [], 0
    while i < len(data):
        raw_len, n = struct.unpack("<II", data[i:i + 8])
        blocks.append((raw_len, data[i + 8:i + 8 + n]))
        i += 8 + n
    return blocks


def best_of(rounds, fn):
    """The best wall time and the best thread CPU time of rounds calls."""
    wall = cpu = None
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        dt, dc = time.perf_counter() - t0, time.thread_time() - c0
        wall = dt if wall is None else min(wall, dt)
        cpu = dc if cpu is None else min(cpu, dc)
    return wall, cpu


dctx = lib.ZSTD_createDCtx()
for path in sys.argv[1:]:
    blocks = read_blocks(path)
    total = sum(b[0] for b in blocks)
    cap = max(b[0] for b in blocks)
    out = ctypes.create_string_buffer(cap)

    def with_ctx():
        for raw_len, z in blocks:
            if lib.ZSTD_decompressDCtx(dctx, out, cap, z, len(z)) != raw_len:
                raise SystemExit("ZSTD_decompressDCtx failed")

    def one_shot():
        for raw_len, z in blocks:
            if lib.ZSTD_decompress(out, cap, z, len(z)) != raw_len:
                raise SystemExit("ZSTD_decompress failed")

    with_ctx()
    a, ac = best_of(20, with_ctx)
    b, bc = best_of(20, one_shot)
    print(f"{path}: {len(blocks)} blocks, {total} bytes, libzstd {version}: "
          f"ZSTD_decompressDCtx {total / a / 1e6:.0f} MB/s ({total / ac / 1e6:.0f} MB/s of CPU time), "
          f"ZSTD_decompress {total / b / 1e6:.0f} MB/s ({total / bc / 1e6:.0f} MB/s of CPU time)")
