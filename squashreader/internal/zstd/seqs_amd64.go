// SPDX-License-Identifier: BSD-3-Clause

//go:build amd64 && !purego

package zstd

// genericSeqs makes decodeSeqs use the Go loop (tests compare the two).
var genericSeqs = false

// decodeSeqs decodes len(seqs) sequences from d.st: decodeSeqsGeneric,
// translated to assembly.
func (d *decoder) decodeSeqs(seqs []seq) {
	if genericSeqs {
		d.decodeSeqsGeneric(seqs)
		return
	}
	if len(seqs) > 0 {
		decodeSeqsAMD64(d, &d.st, &seqs[0], len(seqs))
	}
}

// decodeSeqsAMD64 is decodeSeqsGeneric for n > 0 sequences from st into
// seqs[:n], with d's tables. It reads only st.win[st.pos:st.pos+8] as
// st.pos goes down (st.pos <= len(st.win)-8 holds throughout), the
// tables at masked indexes, and writes only seqs[:n] and st.
//
//go:noescape
func decodeSeqsAMD64(d *decoder, st *seqState, seqs *seq, n int)

// execFast executes seqs from the first for as long as each sequence
// passes execSeqs' checks, has an offset of at least 16, and leaves room
// to copy 16 bytes at a time past its literals (in lits' capacity) and
// past its match (32 bytes, in out's): execSeqs' fast path, in assembly.
// It returns how many it executed and op and lp after them.
func execFast(out []byte, op, frameStart int, lits []byte, lp int, seqs []seq) (int, int, int) {
	outLimit := min(len(out), cap(out)-32)
	litLimit := min(len(lits), cap(lits)-16)
	if genericSeqs || op >= outLimit || lp > litLimit || len(seqs) == 0 {
		return 0, op, lp
	}
	return execSeqsAMD64(out[:cap(out)], outLimit, frameStart, lits[:cap(lits)], litLimit, op, lp, &seqs[0], len(seqs))
}

// execSeqsAMD64 executes seqs[:n] while out[op:] and lits[lp:] have room
// (op+ll+ml <= outLimit <= cap(out)-32, lp+ll <= litLimit <=
// cap(lits)-16), and 16 <= off <= op+ll-frameStart. It stops at the first
// sequence that fails these, before touching it, and returns how many it
// executed and the new op and lp.
//
//go:noescape
func execSeqsAMD64(out []byte, outLimit, frameStart int, lits []byte, litLimit, op, lp int, seqs *seq, n int) (k, newOp, newLp int)
