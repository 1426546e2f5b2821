// SPDX-License-Identifier: BSD-3-Clause

//go:build amd64 && !purego

package zstd

import (
	"fmt"
	"unsafe"
)

// genericSeqs makes decodeSeqs use the Go loop (tests compare the two).
var genericSeqs = false

// What seqs_amd64.s takes from go_asm.h: the offsets of decoder's tables
// and of seqState's and seq's fields, seq's size, the state masks
// (llStateMask...), the entry layout (entryNbBitsShift...),
// seqReloadBits and the fast path's limits below. What it cannot take
// from there is checked here when the package compiles: an index out of
// range below is a compile error.
var (
	// The values the assembly was translated with (a change here is a
	// change of behaviour, not only of the assembly).
	_ = [1]struct{}{}[seqReloadBits-31]
	_ = [1]struct{}{}[llStateMask-511]
	_ = [1]struct{}{}[mlStateMask-511]
	_ = [1]struct{}{}[ofStateMask-255]
	// A seqEntry is 8 bytes: the loads scale the state by 8.
	_ = [1]struct{}{}[unsafe.Sizeof(seqEntry(0))-8]
	// The repeat offsets are 4 bytes apart (seqState_rep+4, +8).
	_ = [1]struct{}{}[unsafe.Sizeof(seqState{}.rep[0])-4]
	// seq's fields are 32-bit loads and stores.
	_ = [1]struct{}{}[unsafe.Sizeof(seq{}.ll)-4]
	_ = [1]struct{}{}[unsafe.Sizeof(seq{}.ml)-4]
	_ = [1]struct{}{}[unsafe.Sizeof(seq{}.off)-4]
	// Each copy in execSeqsAMD64 moves 16 bytes (MOVOU): a match
	// source at least that far back was written before it, and the
	// copies past a sequence's end stay in the slack (a negative array
	// length is a compile error).
	_ = [fastMinOffset - 16]struct{}{}
	_ = [fastLitSlack - 16]struct{}{}
	_ = [fastOutSlack - 16]struct{}{}
)

// decodeSeqs decodes len(seqs) sequences from d.st: decodeSeqsGeneric,
// translated to assembly.
func (d *decoder) decodeSeqs(seqs []seq) {
	if genericSeqs {
		d.decodeSeqsGeneric(seqs)
		return
	}
	if len(seqs) > 0 {
		checkSeqState(&d.st)
		decodeSeqsAMD64(d, &d.st, &seqs[0], len(seqs))
	}
}

// checkSeqState panics unless the window invariant decodeSeqsAMD64
// relies on holds: 0 <= st.pos <= len(st.win)-8. The assembly loads 8
// bytes at win[pos] and only ever lowers pos, so this is the bound of
// every load it makes from win.
func checkSeqState(st *seqState) {
	if st.pos < 0 || st.pos > len(st.win)-8 {
		panic(fmt.Sprintf("zstd: internal error: sequences window position %d in a window of %d bytes", st.pos, len(st.win)))
	}
}

// decodeSeqsAMD64 is decodeSeqsGeneric for n > 0 sequences from st into
// seqs[:n], with d's tables. It reads only st.win[st.pos:st.pos+8] as
// st.pos goes down (checkSeqState), the tables at masked indexes, and
// writes only seqs[:n] and st.
//
//go:noescape
func decodeSeqsAMD64(d *decoder, st *seqState, seqs *seq, n int)

// The fast path's limits: a match offset of at least fastMinOffset, room
// for fastLitSlack bytes past the literals in lits' capacity and for
// fastOutSlack past the match in out's.
const (
	fastMinOffset = 16
	fastLitSlack  = 16
	fastOutSlack  = 32
)

// execFast executes seqs from the first for as long as each sequence
// passes execSeqs' checks, has an offset of at least fastMinOffset, and
// leaves room to copy 16 bytes at a time past its literals (in lits'
// capacity) and past its match (in out's): execSeqs' fast path, in
// assembly. It returns how many it executed and op and lp after them.
func execFast(out []byte, op, frameStart int, lits []byte, lp int, seqs []seq) (int, int, int) {
	outLimit := min(len(out), cap(out)-fastOutSlack)
	litLimit := min(len(lits), cap(lits)-fastLitSlack)
	if genericSeqs || op >= outLimit || lp > litLimit || len(seqs) == 0 {
		return 0, op, lp
	}
	checkExecArgs(op, frameStart, lp)
	return execSeqsAMD64(out[:cap(out)], outLimit, frameStart, lits[:cap(lits)], litLimit, op, lp, &seqs[0], len(seqs))
}

// checkExecArgs panics unless 0 <= frameStart <= op and 0 <= lp: with
// op < outLimit <= cap(out)-fastOutSlack and lp <= litLimit <=
// cap(lits)-fastLitSlack, which execFast makes sure of, these are what
// keep execSeqsAMD64's loads and stores in out[:cap(out)] and
// lits[:cap(lits)] (it checks each sequence against the limits and
// frameStart itself).
func checkExecArgs(op, frameStart, lp int) {
	if frameStart < 0 || frameStart > op || lp < 0 {
		panic(fmt.Sprintf("zstd: internal error: executing sequences at output %d, frame start %d, literal %d", op, frameStart, lp))
	}
}

// execSeqsAMD64 executes seqs[:n] while out[op:] and lits[lp:] have room
// (op+ll+ml <= outLimit <= cap(out)-fastOutSlack, lp+ll <= litLimit <=
// cap(lits)-fastLitSlack), and fastMinOffset <= off <=
// op+ll-frameStart. It stops at the first sequence that fails these,
// before touching it, and returns how many it executed and the new op
// and lp.
//
//go:noescape
func execSeqsAMD64(out []byte, outLimit, frameStart int, lits []byte, litLimit, op, lp int, seqs *seq, n int) (k, newOp, newLp int)
