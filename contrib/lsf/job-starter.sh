#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# shifter-go LSF job starter (docs/batch.md): runs the job's command in a
# shifter container. In lsb.applications:
#
#   Begin Application
#   NAME        = ubuntu
#   DESCRIPTION = jobs run in docker:ubuntu:22.04 under shifter
#   ENV_VARS    = "SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04"
#   JOB_STARTER = /usr/local/share/shifter/lsf/job-starter.sh %USRCMD
#   End Application
#
# and users submit with `bsub -app ubuntu ./job.sh`. shifter takes the
# image from SHIFTER_IMAGEREQUEST (or SHIFTER_IMAGETYPE + SHIFTER_IMAGE,
# or a user's `bsub -env "all,SHIFTER_IMAGEREQUEST=..."`), and volumes
# and modules from SHIFTER_VOLUME and SHIFTER_MODULE.
SHIFTER=${SHIFTER_BIN:-/usr/local/bin/shifter}
if [ $# -eq 0 ]; then
	echo "job-starter: no command" >&2
	exit 64
fi
# LSF hands the user's command line over as words of one shell command.
exec "$SHIFTER" /bin/sh -c "$*"
