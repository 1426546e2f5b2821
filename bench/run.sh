#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# `make bench` runs this after building bin/. It runs, in order:
#   mount   bench/cmd/mountbench: kernel vs squashfuse_ll vs shifter-mount (issue 2)
#   reader  go test -bench in bench/: squashreader vs unsquashfs -d into tmpfs (issue 2)
#   start   bench/cmd/startbench: container start-up (issue 3)
#   startup issue 15's start-up run, unpinned then pinned to CPU 0: startbench (floor, shifter
#           loop and fuse, ch-run, as an ordinary user, zstd image) and mountbench (rootfs image,
#           cold = fresh mount then page cache dropped)
#   pull    bench/cmd/pullbench: gateway pull + convert (issue 4)
#   cache   bench/cmd/cachebench: the node cache, no cache / cold / warm, file / HTTP / slow source (issue 11)
# and leaves markdown/JSON/text results in bench/results/.
#
# Environment:
#   BENCH_QUICK=1        small and quick versions (1 repetition, small files, gzip only)
#   BENCH_ONLY=a,b       run only these parts (mount, reader, start, startup, pull, cache)
#   BENCH_MOUNT_ARGS     extra mountbench options, e.g. "--pin --comp gzip --reps 3"
#   BENCH_READER_COUNT   go test -count for the reader benchmark (default 5; 1 when quick)
#   BENCH_START_ARGS     extra startbench options
#   BENCH_STARTUP_START_ARGS, BENCH_STARTUP_MOUNT_ARGS
#                        extra startbench / mountbench options of the startup part
#   BENCH_PULL_ARGS      extra pullbench options
#   BENCH_CACHE_ARGS     extra cachebench options, e.g. "--reps 5 --chunk-sizes 64K,256K,1M"
# Needs root (mounts, chroot, drop_caches); see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

only=${BENCH_ONLY:-mount,reader,start,startup,pull,cache}
want() { [[ ",$only," == *",$1,"* ]]; }
quick=()
count=${BENCH_READER_COUNT:-5}
startup_reps=(--reps 30) # issue 15's table: 30 runs of each
if [ "${BENCH_QUICK:-}" = 1 ]; then
	quick=(--quick)
	count=${BENCH_READER_COUNT:-1}
	startup_reps=()
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "bench: needs root (mounts, chroot, drop_caches)" >&2
	exit 1
fi
mkdir -p bench/results bench/cache/bin
go build -o bench/cache/bin/ ./bench/cmd/...
stamp=$(date -u +%Y%m%d-%H%M%S)
status=0

if want mount; then
	echo "== mount benchmark (bench/cmd/mountbench)"
	# shellcheck disable=SC2086
	bench/cache/bin/mountbench "${quick[@]}" ${BENCH_MOUNT_ARGS:-} || status=1
fi
if want reader; then
	echo "== reader benchmark (go test -bench ./bench)"
	# The images are mountbench's (built here when missing).
	# shellcheck disable=SC2086
	imgs=$(bench/cache/bin/mountbench "${quick[@]}" ${BENCH_MOUNT_ARGS:-} --prepare) || status=1
	BENCH_IMAGES="$imgs" go test -run '^$' -bench ReadImage -benchtime 1x -count "$count" -timeout 0 ./bench |
		tee "bench/results/reader-$stamp.txt" || status=1
fi
if want start; then
	if [ -x bench/cache/bin/startbench ]; then
		echo "== start-up benchmark (bench/cmd/startbench)"
		# shellcheck disable=SC2086
		bench/cache/bin/startbench "${quick[@]}" ${BENCH_START_ARGS:-} || status=1
	fi
fi
if want startup; then
	echo "== start-up, issue 15 (startbench and mountbench, unpinned then pinned to CPU 0)"
	for pin in "" --pin; do
		# shellcheck disable=SC2086
		bench/cache/bin/startbench "${quick[@]}" "${startup_reps[@]}" --comp zstd \
			--methods floor,shifter-loop,shifter-fuse,ch-run --tests true,py \
			$pin ${BENCH_STARTUP_START_ARGS:-} || status=1
	done
	for pin in "" --pin; do
		# shellcheck disable=SC2086
		bench/cache/bin/mountbench "${quick[@]}" --comp zstd --rootfs-only \
			--tests find,stat,tar,py --drop-after-mount \
			$pin ${BENCH_STARTUP_MOUNT_ARGS:-} || status=1
	done
fi
if want pull; then
	if [ -x bench/cache/bin/pullbench ]; then
		echo "== pull benchmark (bench/cmd/pullbench)"
		# shellcheck disable=SC2086
		bench/cache/bin/pullbench "${quick[@]}" ${BENCH_PULL_ARGS:-} || status=1
	fi
fi
if want cache; then
	echo "== node cache benchmark (bench/cmd/cachebench)"
	# shellcheck disable=SC2086
	bench/cache/bin/cachebench "${quick[@]}" ${BENCH_CACHE_ARGS:-} || status=1
fi
exit $status
