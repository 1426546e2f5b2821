#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# shifter-go node epilog (docs/batch.md): nothing to release.
#
# shifterd's references to an image mount belong to the containers that
# asked for them and are dropped when their processes end, however they
# end; an unused mount is unmounted after udiRoot.conf shifterdIdleUnmount,
# and the node cache keeps the warmed chunks for the next job. This script
# exists so that a site can name it in slurm.conf (Epilog=) or a PBS/Flux
# epilog and add its own clean-up; it always succeeds.
exit 0
