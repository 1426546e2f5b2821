#!/usr/bin/env bash
# Installs the Debian packages that building, testing and the demo need.
# Quiet and quick when they are already there. Needs root (or sudo).
set -euo pipefail
pkgs=(squashfs-tools squashfuse fuse3 busybox-static docker-registry munge attr
      debootstrap util-linux kmod procps psmisc iproute2 ca-certificates make gcc libc6-dev python3
      xz-utils zstd slurm-wlm libslurm-dev jq xfsprogs e2fsprogs)
# Extra package names on the command line are installed too (make bench
# adds what only the benchmarks need).
pkgs+=("$@")
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "deps: installing ${missing[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# On a booted Debian, fuse3's udev rule makes /dev/fuse mode 0666 so that
# ordinary users can mount FUSE filesystems (shifter's unprivileged mode).
# Containers and chroots without udev leave it 0600: apply the same rule.
if [ -c /dev/fuse ] && [ "$(id -u)" -eq 0 ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
	chmod 0666 /dev/fuse
fi
# docker-registry's Debian package starts a system service on :5000; our
# tests start their own registries on free ports and do not need it.
if command -v go >/dev/null; then
	go mod download
else
	echo "deps: Go 1.26 is needed on PATH (/usr/local/go/bin)" >&2
	exit 1
fi
