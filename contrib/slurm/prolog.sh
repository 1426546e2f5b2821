#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# shifter-go node prolog: warm the job's image into shifterd's node cache
# before the job's first container starts on this node (docs/batch.md).
# For sites without the SPANK plugin, and for PBS/Torque and Flux.
#
#   Slurm (slurm.conf):  Prolog=/usr/local/share/shifter/slurm/prolog.sh
#   PBS/Torque:          $PBS_HOME/mom_priv/prologue -> this script (args: JOBID USER GROUP)
#   Flux:                a job-manager prolog (perilog) running this script
#   LSF:                 PRE_EXEC of an application profile (as the user)
#
# The image, first found wins:
#   1. SPANK_SHIFTER_IMAGETYPE=id + SPANK_SHIFTER_IMAGE (the SPANK plugin's
#      pinned id, in the Slurm prolog's environment);
#   2. SHIFTER_IMAGEREQUEST or SHIFTER_IMAGE (a hook that passes the job's
#      variables, e.g. Flux's job environment or PBS's qsub -v);
#   3. Slurm: the job's comment "shifter:[TYPE:]TAG" (sbatch
#      --comment=shifter:docker:ubuntu:22.04), read with scontrol.
# The job's user (SLURM_JOB_UID, FLUX_JOB_USERID, or PBS's second
# argument; or the caller itself when not root, e.g. LSF's PRE_EXEC) runs
# `shifterd warm`, so only an image that user may use is warmed. Nothing happens without an image, a user or shifterd's socket.
# It always exits 0: a cold cache never fails a job.
#
# Batch daemons run their prologs as root with their own environment (not
# the user's), so these settings may come from it:
SHIFTERD=${SHIFTER_SHIFTERD:-/usr/local/bin/shifterd}
SOCKET=${SHIFTER_SHIFTERD_SOCKET:-/run/shifter/shifterd.sock}
CONFIG=${SHIFTER_PROLOG_CONFIG:-}
WARM_TIMEOUT=${SHIFTER_WARM_TIMEOUT:-120}
WARM_MODE=${SHIFTER_WARM:-trace}   # trace (--trace-only), full or off
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

log() { echo "shifter prolog: $*" >&2; }

image=""
if [ "${SPANK_SHIFTER_IMAGETYPE:-}" = id ] && [ -n "${SPANK_SHIFTER_IMAGE:-}" ]; then
	image="id:$SPANK_SHIFTER_IMAGE"
elif [ "${SHIFTER_IMAGETYPE:-}" = id ] && [ -n "${SHIFTER_IMAGE:-}" ]; then
	image="id:$SHIFTER_IMAGE"
elif [ -n "${SHIFTER_IMAGEREQUEST:-}" ]; then
	image=$SHIFTER_IMAGEREQUEST
elif [ -n "${SLURM_JOB_ID:-}" ]; then
	image=$(scontrol -o show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/.* Comment=shifter:\([^ ]*\).*/\1/p')
fi
[ -n "$image" ] || exit 0
[ "$WARM_MODE" != off ] || exit 0

# Strict: an id is 64 hex digits; a tag is letters, digits and ._:/@+-.
if ! printf '%s\n' "$image" | grep -Eqx 'id:[0-9a-f]{64}|(docker:)?[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,255}'; then
	log "ignoring image \"$image\": not [docker:]TAG or id:ID"
	exit 0
fi

self=$(id -u)
if [ "$self" -ne 0 ]; then
	uid=$self # run as the job's user (LSF's PRE_EXEC): warm as that user
else
	uid=${SLURM_JOB_UID:-${FLUX_JOB_USERID:-}}
	if [ -z "$uid" ] && [ -n "${2:-}" ]; then # PBS/Torque: prologue JOBID USER GROUP
		uid=$(id -u -- "$2" 2>/dev/null)
	fi
fi
case "$uid" in
'' | *[!0-9]*) log "no job user: not warming $image"; exit 0 ;;
esac
if [ ! -S "$SOCKET" ]; then
	log "no shifterd socket at $SOCKET: not warming $image"
	exit 0
fi

gid=$(id -g -- "$uid" 2>/dev/null) || gid=$uid
warm() { # warm [--trace-only]: shifterd warm as the job's user, under the timeout
	if [ -n "$CONFIG" ]; then set -- --config "$CONFIG" warm "$@"; else set -- warm "$@"; fi
	if [ "$self" -ne 0 ]; then
		timeout -k 5 "$WARM_TIMEOUT" "$SHIFTERD" "$@" "$image" 2>&1
	else
		timeout -k 5 "$WARM_TIMEOUT" setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$SHIFTERD" "$@" "$image" 2>&1
	fi
}
# --trace-only fails for an image without a start-up trace yet (its first
# start records one): then warm all of it.
if [ "$WARM_MODE" = trace ] && out=$(warm --trace-only); then
	log "$out"
elif out=$(warm); then
	log "$out"
else
	log "shifterd warm $image failed (the job goes on): $out"
fi
exit 0
