// SPDX-License-Identifier: BSD-3-Clause

// Package slurm holds the end-to-end test of the Slurm SPANK plugin
// (contrib/slurm): it starts munged, slurmctld and slurmd (Debian's
// slurm-wlm) on this host, loads the plugin and submits jobs as nobody.
// Run it alone with `make test-slurm`; it needs root.
package slurm
