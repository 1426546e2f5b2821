#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A/B warm-mount timer for two (or more) shifter-mount builds.

Usage (root): N=300 python3 bench/ab-mount.py IMAGE BIN_A BIN_B [BIN_C...]

Each round mounts IMAGE with every binary in turn (the order reversed every
other round, so no build always goes first), times from the command's start
until stat shows the mounted file system, and unmounts. It prints each
build's median and quartiles. The figures include Python's fork/exec, the
same for every build: compare builds with each other, not with mountbench.
"""
import os
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    img, bins = sys.argv[1], sys.argv[2:]
    n = int(os.environ.get("N", "100"))
    mnt = "/tmp/ab-mount"
    os.makedirs(mnt, exist_ok=True)
    parent = os.stat(os.path.dirname(mnt)).st_dev
    res = {b: [] for b in bins}
    for i in range(n):
        for b in bins if i % 2 == 0 else bins[::-1]:
            start = time.perf_counter()
            subprocess.run([b, img, mnt], check=True)
            while os.stat(mnt).st_dev == parent:
                pass
            res[b].append(time.perf_counter() - start)
            subprocess.run(["umount", mnt], check=True)
            time.sleep(0.01)
    for b in bins:
        d = sorted(res[b])
        q = lambda f: d[int(len(d) * f)] * 1e3
        print(f"{b:40s} median {q(0.5):.3f} ms  p25 {q(0.25):.3f}  p75 {q(0.75):.3f}  (n={len(d)})")


if __name__ == "__main__":
    main()
