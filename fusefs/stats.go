// SPDX-License-Identifier: BSD-3-Clause

package fusefs

import "sync/atomic"

// The requests FS counts, by FUSE opcode name.
const (
	opLookup = iota
	opGetattr
	opReadlink
	opOpen
	opRead
	opOpendir
	opReaddir
	opReaddirplus
	opGetxattr
	opListxattr
	opStatfs
	opAccess
	opRelease
	opFlush
	opModify // every request that would modify the image: answered EROFS
	numOps
)

var opNames = [numOps]string{
	opLookup:      "LOOKUP",
	opGetattr:     "GETATTR",
	opReadlink:    "READLINK",
	opOpen:        "OPEN",
	opRead:        "READ",
	opOpendir:     "OPENDIR",
	opReaddir:     "READDIR",
	opReaddirplus: "READDIRPLUS",
	opGetxattr:    "GETXATTR",
	opListxattr:   "LISTXATTR",
	opStatfs:      "STATFS",
	opAccess:      "ACCESS",
	opRelease:     "RELEASE",
	opFlush:       "FLUSH",
	opModify:      "MODIFY(EROFS)",
}

type stats struct {
	n [numOps]atomic.Uint64
}

func (s *stats) add(op int) { s.n[op].Add(1) }

// Stats counts the requests that reached the FS, by FUSE opcode name
// (requests answered by go-fuse itself, like INIT, FORGET and INTERRUPT,
// are not counted). Only non-zero counts are present.
type Stats map[string]uint64

// Total is the sum of all counts.
func (s Stats) Total() uint64 {
	var t uint64
	for _, v := range s {
		t += v
	}
	return t
}

// Stats returns the request counts so far.
func (f *FS) Stats() Stats {
	out := Stats{}
	for i := range f.stats.n {
		if v := f.stats.n[i].Load(); v != 0 {
			out[opNames[i]] = v
		}
	}
	return out
}

// ResetStats sets every count to zero.
func (f *FS) ResetStats() {
	for i := range f.stats.n {
		f.stats.n[i].Store(0)
	}
}
