#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# make demo: pull a real image through the gateway and run it, on this
# machine only (loopback registry, unix-socket gateway, temp directories).
#
#   1. start a registry on 127.0.0.1 holding an image made now from
#      Debian's busybox-static (internal/cmd/demoregistry);
#   2. start bin/shifter-gateway on its embedded defaults, on a unix socket;
#   3. bin/shifterimg pull the image (the gateway converts it to squashfs);
#   4. bin/shifter --image=... cat /etc/os-release inside it;
#   5. start bin/shifterd, the node daemon, warm its node cache with the
#      image, and run two containers at once over its one shared mount.
#
# Everything it starts and creates is removed on exit. Run by `make demo`
# after `make build`; needs root for step 4 (the runtime mounts the image).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
BIN=${BIN:-bin}

if [ -t 1 ]; then bold=$'\033[1m' dim=$'\033[2m' red=$'\033[31m' off=$'\033[0m'; else bold='' dim='' red='' off=''; fi
step=0
say() { step=$((step + 1)); printf '\n%s[%d] %s%s\n' "$bold" "$step" "$*" "$off"; }
note() { printf '    %s%s%s\n' "$dim" "$*" "$off"; }
show() { printf '    %s$ %s%s\n' "$dim" "$*" "$off"; }
fail() { printf '%sdemo: %s%s\n' "$red" "$*" "$off" >&2; exit 1; }

for b in shifter shifterimg shifter-gateway shifterd; do
	[ -x "$BIN/$b" ] || fail "$BIN/$b is missing: run 'make demo' (it builds first) or 'make build'"
done
command -v mksquashfs >/dev/null || fail "mksquashfs is missing: scripts/deps.sh installs squashfs-tools"
[ -x /bin/busybox ] || fail "/bin/busybox is missing: scripts/deps.sh installs busybox-static"

tmp=$(mktemp -d /tmp/shifter-demo.XXXXXX)
chmod 755 "$tmp"
pids=()
cpids=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	# The runtime mounts in its own mount namespace; should anything be
	# left under our directory, unmount it before removing the directory.
	local m
	for m in $(findmnt -rn -o TARGET | grep -F "$tmp/" | sort -r); do umount -l "$m" 2>/dev/null || true; done
	if findmnt -rn -o TARGET | grep -qF "$tmp/"; then
		echo "demo: mounts remain under $tmp; not removing it" >&2
	else
		rm -rf "$tmp"
	fi
	if [ "$rc" -eq 0 ]; then note "stopped shifterd, the gateway and the registry, removed $tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE PID WHAT LOG: wait until FILE exists while PID lives.
wait_for() {
	local i
	for i in $(seq 1 300); do
		[ -e "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || { cat "$4" >&2; fail "$3 exited"; }
		sleep 0.1
	done
	cat "$4" >&2
	fail "$3 did not start within 30 s"
}

say "Starting a container registry on 127.0.0.1 with an image built from Debian's busybox-static"
note "go build ./internal/cmd/demoregistry (go-containerregistry's registry, in memory)"
go build -o "$tmp/demoregistry" ./internal/cmd/demoregistry
"$tmp/demoregistry" --listen 127.0.0.1:0 --ready-file "$tmp/registry.addr" >"$tmp/registry.log" 2>&1 &
pids+=($!)
wait_for "$tmp/registry.addr" "$!" "the registry" "$tmp/registry.log"
registry=$(cat "$tmp/registry.addr")
image="$registry/demo/busybox:latest"
note "$(cat "$tmp/registry.log")"
note "the image: /bin/busybox, a link per applet, /etc/os-release; nothing downloaded"

say "Starting the image gateway on a unix socket (embedded defaults; plain HTTP allowed to $registry only)"
gw=(--listen "unix:$tmp/gw.sock" --image-dir "$tmp/images" --data-dir "$tmp/gateway" --system demo --insecure-registry "$registry")
show "$BIN/shifter-gateway ${gw[*]}"
"$BIN/shifter-gateway" "${gw[@]}" >"$tmp/gateway.log" 2>&1 &
pids+=($!)
wait_for "$tmp/gw.sock" "$!" "shifter-gateway" "$tmp/gateway.log"
note "listening on unix:$tmp/gw.sock (callers identified by SO_PEERCRED)"

img=("$BIN/shifterimg" --gateway "unix:$tmp/gw.sock" --system demo)
say "Pulling the image: the gateway fetches it, flattens the layers and makes one squashfs file"
show "shifterimg --gateway unix:$tmp/gw.sock --system demo pull $image"
"${img[@]}" pull "$image" || fail "shifterimg pull failed; gateway log: $(tail -n 5 "$tmp/gateway.log")"

say "Listing and looking up the image"
show "shifterimg ... images"
"${img[@]}" images | sed 's/^/    /'
show "shifterimg ... lookup $image"
id=$("${img[@]}" lookup "$image" | tail -n 1)
note "$id"
note "the image store ($tmp/images):"
ls -l "$tmp/images" | sed 's/^/      /'

say "Running a command in the image with the runtime"
mkdir -p "$tmp/udiMount"
cat >"$tmp/udiRoot.conf" <<EOF
# written by scripts/demo.sh
system=demo
imagePath=$tmp/images
udiMount=$tmp/udiMount
imageGateway=unix:$tmp/gw.sock
# the node daemon (started in step 6) and its node cache
shifterdSocket=$tmp/shifterd.sock
shifterdIdleUnmount=10s
nodeCacheDir=$tmp/nodecache
nodeCacheSize=256M
EOF
note "a udiRoot.conf for this demo, given to shifter with SHIFTER_CONFIG:"
sed 's/^/      /' "$tmp/udiRoot.conf"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	sudo=(sudo env "SHIFTER_CONFIG=$tmp/udiRoot.conf")
	note "not root: running shifter through sudo (an installed shifter is setuid root and reads /etc/shifter/udiRoot.conf)"
fi
show "SHIFTER_CONFIG=$tmp/udiRoot.conf shifter --image=docker:$image cat /etc/os-release"
set +e
SHIFTER_CONFIG="$tmp/udiRoot.conf" "${sudo[@]}" "$BIN/shifter" --image="docker:$image" cat /etc/os-release 2>"$tmp/shifter.err" | sed 's/^/    | /'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
	sed 's/^/    /' "$tmp/shifter.err" >&2
	fail "shifter exited with status $rc"
fi

if [ "$(id -u)" -eq 0 ]; then
	say "Starting shifterd, the node daemon: one shared, read-only mount per image, through a node cache"
	show "shifterd --config $tmp/udiRoot.conf serve --mount-dir $tmp/shifterd-mnt"
	"$BIN/shifterd" --config "$tmp/udiRoot.conf" serve --mount-dir "$tmp/shifterd-mnt" >"$tmp/shifterd.log" 2>&1 &
	pids+=($!)
	wait_for "$tmp/shifterd.sock" "$!" "shifterd" "$tmp/shifterd.log"
	note "listening on $tmp/shifterd.sock; node cache in $tmp/nodecache"

	say "Warming the node cache with the image (what a batch prolog or cron does before jobs)"
	show "shifterd --config ... warm docker:$image"
	"$BIN/shifterd" --config "$tmp/udiRoot.conf" warm "docker:$image" | sed 's/^/    /'

	say "Running two containers of the image at once: both use shifterd's one mount"
	show "shifter -v --image=docker:$image sh -c 'head -n 1 /etc/os-release; sleep 2'   (twice, in parallel)"
	for n in 1 2; do
		SHIFTER_CONFIG="$tmp/udiRoot.conf" "$BIN/shifter" -v --image="docker:$image" sh -c 'head -n 1 /etc/os-release; sleep 2' \
			>"$tmp/c$n.out" 2>"$tmp/c$n.err" &
		cpids+=($!)
	done
	sleep 1
	show "shifterd --config ... status"
	"$BIN/shifterd" --config "$tmp/udiRoot.conf" status | sed 's/^/    /'
	show "findmnt -t fuse.shifterd"
	findmnt -t fuse.shifterd -o SOURCE,TARGET,OPTIONS | sed 's/^/    /'
	for p in "${cpids[@]}"; do wait "$p" || fail "a container failed: $(cat "$tmp"/c*.err)"; done
	for n in 1 2; do
		sed 's/^/    | /' "$tmp/c$n.out"
		grep -o "image mount: shifterd's shared mount" "$tmp/c$n.err" | sed 's/^/    shifter -v: /'
	done
else
	note "not root: skipping shifterd (it runs as root, one per node)"
fi

say "Done"
note "registry on $registry -> shifter-gateway pulled $image as image $id"
note "-> bin/shifter ran cat /etc/os-release inside it (the lines marked '|' above)"
if [ "$(id -u)" -eq 0 ]; then
	note "-> shifterd warmed its node cache and served two containers from one mount"
fi
