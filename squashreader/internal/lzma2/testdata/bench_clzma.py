#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Times C liblzma on the blocks BenchmarkDecode uses, to compare with it:

    d=$(mktemp -d)
    LZMA2_BENCH_DUMP=$d go test -run XXX -bench 'Decode/.*/lzma2' ./squashreader/internal/lzma2/
    python3 squashreader/internal/lzma2/testdata/bench_clzma.py $d/*.blocks

For each file it prints MB/s of output, the best of several rounds of
decoding every block once, two ways: lzma_raw_buffer_decode on the raw
LZMA2 data (what Decode does) and lzma_stream_buffer_decode on the whole
.xz stream (what unsquashfs and the kernel-less readers do: container,
CRC32 and all), both called through ctypes on the system's liblzma.so.5
into a preallocated buffer of the block size. The CPU-time figures (the
thread's, as TestCPUTime measures) are steadier on a loaded machine. Both set up a decoder per
call, as a buffer-to-buffer decoder must (liblzma allocates its
dictionary, the block size here, and its probabilities each time).
"""
import ctypes
import ctypes.util
import struct
import sys
import time

lib = ctypes.CDLL(ctypes.util.find_library("lzma") or "liblzma.so.5")
lib.lzma_version_string.restype = ctypes.c_char_p
version = lib.lzma_version_string().decode()

LZMA_FILTER_LZMA2 = 0x21
LZMA_VLI_UNKNOWN = (1 << 64) - 1


class Filter(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("options", ctypes.c_void_p)]


class OptionsLZMA(ctypes.Structure):  # lzma_options_lzma (5.x layout)
    _fields_ = [("dict_size", ctypes.c_uint32), ("preset_dict", ctypes.c_void_p),
                ("preset_dict_size", ctypes.c_uint32), ("lc", ctypes.c_uint32),
                ("lp", ctypes.c_uint32), ("pb", ctypes.c_uint32), ("mode", ctypes.c_int),
                ("nice_len", ctypes.c_uint32), ("mf", ctypes.c_int), ("depth", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32 * 8), ("reserved_ptr", ctypes.c_void_p * 2)]


def read_blocks(path):
    data = open(path, "rb").read()
    blocks, i = [], 0
    while i < len(data):
        dict_size, raw_len, n = struct.unpack(">III", data[i:i + 12])
        raw = data[i + 12:i + 12 + n]
        i += 12 + n
        m = struct.unpack(">I", data[i:i + 4])[0]
        xz = data[i + 4:i + 4 + m]
        i += 4 + m
        blocks.append((dict_size, raw_len, raw, xz))
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


for path in sys.argv[1:]:
    blocks = read_blocks(path)
    total = sum(b[1] for b in blocks)
    cap = max(b[1] for b in blocks)
    out = ctypes.create_string_buffer(cap)
    in_pos, out_pos = ctypes.c_size_t(), ctypes.c_size_t()
    memlimit = ctypes.c_uint64(LZMA_VLI_UNKNOWN)
    raw_calls = []
    for dict_size, raw_len, raw, xz in blocks:
        opts = OptionsLZMA(dict_size=dict_size)
        filters = (Filter * 2)(Filter(LZMA_FILTER_LZMA2, ctypes.cast(ctypes.pointer(opts), ctypes.c_void_p)),
                               Filter(LZMA_VLI_UNKNOWN, None))
        raw_calls.append((opts, filters, raw, len(raw), xz, len(xz), raw_len))

    def raw_decode():
        for opts, filters, raw, n, xz, m, raw_len in raw_calls:
            in_pos.value = out_pos.value = 0
            ret = lib.lzma_raw_buffer_decode(filters, None, raw, ctypes.byref(in_pos), n,
                                             out, ctypes.byref(out_pos), cap)
            if ret != 0 or out_pos.value != raw_len:
                raise SystemExit(f"lzma_raw_buffer_decode: {ret}, {out_pos.value} bytes")

    def stream_decode():
        for opts, filters, raw, n, xz, m, raw_len in raw_calls:
            in_pos.value = out_pos.value = 0
            ret = lib.lzma_stream_buffer_decode(ctypes.byref(memlimit), 0, None, xz, ctypes.byref(in_pos), m,
                                                out, ctypes.byref(out_pos), cap)
            if ret != 0 or out_pos.value != raw_len:
                raise SystemExit(f"lzma_stream_buffer_decode: {ret}, {out_pos.value} bytes")

    raw_decode()
    stream_decode()
    r, rc = best_of(10, raw_decode)
    s, sc = best_of(10, stream_decode)
    print(f"{path}: {len(blocks)} blocks, {total} bytes, liblzma {version}: "
          f"raw LZMA2 {total / r / 1e6:.2f} MB/s ({total / rc / 1e6:.2f} MB/s of CPU time), "
          f".xz stream {total / s / 1e6:.2f} MB/s ({total / sc / 1e6:.2f} MB/s of CPU time)")
