// SPDX-License-Identifier: BSD-3-Clause

// Package launcher is the front end of the shifter runtime: it parses
// Shifter's command line and environment, reads udiRoot.conf, finds the
// image in the image store (or through the gateway), checks the image's
// ACL against the caller, works out the command, working directory and
// environment by Shifter's rules, and fills a mountns.Spec, which
// mountns.Run turns into a container. cmd/shifter is a thin main around
// Main.
//
// Setup failures end with one line on stderr and a distinct exit status
// (the sysexits.h codes, see the Exit constants); otherwise the status is
// the command's.
package launcher
