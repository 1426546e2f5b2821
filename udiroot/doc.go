// SPDX-License-Identifier: BSD-3-Clause

// Package udiroot reads udiRoot.conf, the site configuration shared by
// the runtime (shifter) and the image tools (shifterimg).
//
// The format is Shifter's: one "key=value" per line, lines whose first
// non-blank character is '#' are comments, a value ending in '\' continues
// on the next line (joined with one space). An unknown key is an error
// naming the file and line. Every key and its default is documented in
// docs/udiRoot.conf.md.
//
// When the runtime runs setuid root it reads the file with OpenTrusted,
// which refuses a file (or any ancestor directory) that is a symlink, not
// owned by root, or writable by group or others.
package udiroot
