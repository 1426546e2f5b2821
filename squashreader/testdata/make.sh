#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Makes the small committed fixtures (*.sqfs) with mksquashfs 4.5 from a
# tiny tree: files around a 4 KiB block, a fragment tail, a sparse block, a
# hard link, symlinks, a fifo, a device and ownership (pseudo files, so no
# root is needed), user xattrs (shared value out of line) when the
# filesystem takes them, and a directory of a few entries.
# Usage: sh make.sh   (run in squashreader/testdata)
set -eu
cd "$(dirname "$0")"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
chmod 755 "$src"
mkdir -p "$src/dir/sub" "$src/empty"
printf 'hello, squashfs\n' > "$src/hello"
head -c 9000 /dev/zero | tr '\0' 'a' > "$src/dir/aaaa"
printf 'tail' >> "$src/dir/aaaa"
dd if=/dev/zero of="$src/sparse" bs=4096 seek=2 count=0 2>/dev/null
printf 'end' >> "$src/sparse"
ln "$src/hello" "$src/dir/hardlink"
ln -s ../hello "$src/dir/link"
ln -s /absolute/target "$src/abs"
mkfifo "$src/fifo"
for i in 1 2 3 4 5 6 7 8; do printf '%s' "$i" > "$src/dir/sub/f$i"; done
if setfattr -n user.a -v shared-value-shared-value "$src/hello" 2>/dev/null; then
	setfattr -n user.b -v shared-value-shared-value "$src/dir/aaaa"
	setfattr -n user.c -v 1 "$src/dir"
fi
pseudo="-p 'dev c 644 7 8 4000 70000' -p 'hello m 644 70000 70001'"
mk() {
	out=$1
	shift
	eval mksquashfs '"$src"' '"$out"' -noappend -quiet -no-progress -b 4K \
		-all-time 1700000000 -mkfs-time 1700000000 "$pseudo" '"$@"'
}
mk gzip.sqfs -comp gzip
mk xz.sqfs -comp xz -Xbcj x86
mk lzo.sqfs -comp lzo
mk lz4.sqfs -comp lz4 -Xhc
mk zstd.sqfs -comp zstd
mk uncompressed.sqfs -noI -noD -noF -noX
mk nofrag.sqfs -comp gzip -no-fragments -no-xattrs
# A 1 GiB file of sparse blocks in a tiny image, inodes stored as is
# (crafted/: not a fixture; TestReadFileClaimedSize patches it).
big=$(mktemp -d)
trap 'rm -rf "$src" "$big"' EXIT
truncate -s 1G "$big/huge"
mksquashfs "$big" crafted/bigsparse.sqfs -noappend -quiet -no-progress -b 1M -noI \
	-no-xattrs -all-time 1700000000 -mkfs-time 1700000000
ls -l ./*.sqfs
