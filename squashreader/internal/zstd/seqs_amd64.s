// SPDX-License-Identifier: BSD-3-Clause

//go:build amd64 && !purego

#include "go_asm.h"
#include "textflag.h"

// EXTRA(e, eb, dst): dst = the value of entry e plus its addBits extra
// bits (eb, e's low byte): the top bits of c<<consumed, read as
// (c<<consumed)>>1>>(63-addBits), 0 bits giving 0; consumed += addBits.
#define EXTRA(e, eb, dst) \
	MOVQ    R9, CX; \
	MOVQ    R8, dst; \
	SHLQ    CX, dst; \
	SHRQ    $1, dst; \
	MOVBQZX eb, CX; \
	XORL    $63, CX; \
	SHRQ    CX, dst; \
	MOVQ    e, CX; \
	SHRQ    $const_entryValueShift, CX; \
	ADDL    CX, dst; \
	MOVBQZX eb, CX; \
	ADDQ    CX, R9

// STATE(e): consumed += nbBits of entry e; e = its next plus the nbBits
// bits of c that end consumed bits from the top (AX, R14 scratch).
#define STATE(e) \
	MOVQ    e, CX; \
	SHRQ    $const_entryNbBitsShift, CX; \
	MOVBQZX CX, CX; \
	ADDQ    CX, R9; \
	MOVL    $1, R14; \
	SHLQ    CX, R14; \
	DECQ    R14; \
	MOVQ    R9, CX; \
	NEGQ    CX; \
	MOVQ    R8, AX; \
	SHRQ    CX, AX; \
	ANDQ    R14, AX; \
	SHRQ    $const_entryNextShift, e; \
	MOVWQZX e, e; \
	ADDQ    AX, e

// RELOAD: drop min(consumed/8, pos) bytes and load the window.
#define RELOAD \
	MOVQ    R9, CX; \
	SHRQ    $3, CX; \
	CMPQ    CX, R10; \
	CMOVQGT R10, CX; \
	SUBQ    CX, R10; \
	SHLQ    $3, CX; \
	SUBQ    CX, R9; \
	MOVQ    (SI)(R10*1), R8

// func decodeSeqsAMD64(d *decoder, st *seqState, seqs *seq, n int)
//
// decodeSeqsGeneric (block.go), step for step, with its state in
// registers:
//
//	R8  c, the bit window         R11 llS, then the literal length entry
//	R9  consumed                   R12 mlS, then the match length entry
//	R10 pos                        R13 ofS, then the offset entry
//	SI  &st.win[0]                 DX  d (the tables)
//	DI  &seqs[i]                   BX  sequences left
//	R15 st (the repeat offsets)    AX, CX, R14 scratch (CX: shift counts)
//
// An entry is value<<32 | next<<16 | nbBits<<8 | addBits. Shifts take
// their count mod 64, as the Go code's &63 does.
TEXT ·decodeSeqsAMD64(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DX
	MOVQ st+8(FP), R15
	MOVQ seqs+16(FP), DI
	MOVQ n+24(FP), BX
	MOVQ seqState_win(R15), SI
	MOVQ seqState_c(R15), R8
	MOVQ seqState_consumed(R15), R9
	MOVQ seqState_pos(R15), R10
	MOVQ seqState_llS(R15), R11
	MOVQ seqState_mlS(R15), R12
	MOVQ seqState_ofS(R15), R13

loop:
	// The entries (the states are below the tables' sizes; the masks
	// keep the loads in the tables whatever they are).
	ANDQ $const_llStateMask, R11
	MOVQ decoder_llTab(DX)(R11*8), R11
	ANDQ $const_mlStateMask, R12
	MOVQ decoder_mlTab(DX)(R12*8), R12
	ANDQ $const_ofStateMask, R13
	MOVQ decoder_ofTab(DX)(R13*8), R13

	// ofv in AX; ml, stored.
	EXTRA(R13, R13B, AX)
	EXTRA(R12, R12B, R14)
	MOVL R14, seq_ml(DI)

	// Reload when the three extra bit counts reach seqReloadBits.
	MOVBLZX R13B, CX
	MOVBLZX R12B, R14
	ADDL R14, CX
	MOVBLZX R11B, R14
	ADDL R14, CX
	CMPL CX, $const_seqReloadBits
	JB   ll
	RELOAD

ll:
	// ll, stored, kept in R14.
	EXTRA(R11, R11B, R14)
	MOVL R14, seq_ll(DI)

	// The offset, into AX.
	CMPB R13B, $1
	JLS  repeat
	SUBL $3, AX
	MOVL seqState_rep+4(R15), CX
	MOVL CX, seqState_rep+8(R15)
	MOVL seqState_rep+0(R15), CX
	MOVL CX, seqState_rep+4(R15)
	MOVL AX, seqState_rep+0(R15)
	JMP  states

repeat:
	// r = ofv + (ll == 0): 1 to 4.
	XORL CX, CX
	TESTL R14, R14
	SETEQ CL
	ADDL CX, AX
	CMPL AX, $1
	JNE  rep2
	MOVL seqState_rep+0(R15), AX
	JMP  states

rep2:
	CMPL AX, $2
	JNE  rep3
	MOVL seqState_rep+4(R15), AX
	MOVL seqState_rep+0(R15), CX
	MOVL CX, seqState_rep+4(R15)
	MOVL AX, seqState_rep+0(R15)
	JMP  states

rep3:
	CMPL AX, $3
	JNE  rep4
	MOVL seqState_rep+8(R15), AX
	MOVL seqState_rep+4(R15), CX
	MOVL CX, seqState_rep+8(R15)
	MOVL seqState_rep+0(R15), CX
	MOVL CX, seqState_rep+4(R15)
	MOVL AX, seqState_rep+0(R15)
	JMP  states

rep4:
	// rep0 - 1, taken as 1 if 0 (as libzstd 1.5.4 does).
	MOVL seqState_rep+0(R15), AX
	DECL AX
	MOVL $1, CX
	CMOVLEQ CX, AX
	MOVL seqState_rep+4(R15), CX
	MOVL CX, seqState_rep+8(R15)
	MOVL seqState_rep+0(R15), CX
	MOVL CX, seqState_rep+4(R15)
	MOVL AX, seqState_rep+0(R15)

states:
	MOVL AX, seq_off(DI)

	// The states move on, and the window is reloaded.
	STATE(R11)
	STATE(R12)
	STATE(R13)
	RELOAD

	ADDQ $seq__size, DI
	DECQ BX
	JNZ  loop

	MOVQ R8, seqState_c(R15)
	MOVQ R9, seqState_consumed(R15)
	MOVQ R10, seqState_pos(R15)
	MOVQ R11, seqState_llS(R15)
	MOVQ R12, seqState_mlS(R15)
	MOVQ R13, seqState_ofS(R15)
	RET

// func execSeqsAMD64(out []byte, outLimit, frameStart int, lits []byte, litLimit, op, lp int, seqs *seq, n int) (k, newOp, newLp int)
//
//	DI  &out[op]                   R9  &out[outLimit]
//	R8  &lits[lp]                  R11 &lits[litLimit]
//	R13 &out[frameStart]           SI  &seqs[i]
//	BX  sequences left             AX, CX, DX  ll, ml, off
//	R10, R14, R15 scratch          X0  16 bytes in flight
TEXT ·execSeqsAMD64(SB), NOSPLIT, $0-128
	MOVQ out_base+0(FP), R12
	MOVQ outLimit+24(FP), R9
	ADDQ R12, R9
	MOVQ frameStart+32(FP), R13
	ADDQ R12, R13
	MOVQ op+72(FP), DI
	ADDQ R12, DI
	MOVQ lits_base+40(FP), R10
	MOVQ litLimit+64(FP), R11
	ADDQ R10, R11
	MOVQ lp+80(FP), R8
	ADDQ R10, R8
	MOVQ seqs+88(FP), SI
	MOVQ n+96(FP), BX

loop:
	MOVL seq_ll(SI), AX
	MOVL seq_ml(SI), CX
	MOVL seq_off(SI), DX

	// Room for the literals and the match: op+ll+ml <= outLimit.
	LEAQ (DI)(AX*1), R14
	LEAQ (R14)(CX*1), R15
	CMPQ R15, R9
	JHI  done
	// lp+ll <= litLimit.
	LEAQ (R8)(AX*1), R15
	CMPQ R15, R11
	JHI  done
	// fastMinOffset <= off <= op+ll-frameStart.
	CMPQ DX, $const_fastMinOffset
	JB   done
	MOVQ R14, R15
	SUBQ R13, R15
	CMPQ DX, R15
	JHI  done

	// Literals, 16 bytes at a time.
	MOVOU (R8), X0
	MOVOU X0, (DI)
	CMPQ  AX, $16
	JHI   longlit

match:
	// The match, 16 bytes at a time: each copy's source, off >=
	// fastMinOffset >= 16 bytes back, was written before it.
	MOVQ  R14, DI
	ADDQ  AX, R8
	MOVQ  DI, R15
	SUBQ  DX, R15
	MOVOU (R15), X0
	MOVOU X0, (DI)
	CMPQ  CX, $16
	JHI   longmatch

next:
	ADDQ CX, DI
	ADDQ $seq__size, SI
	DECQ BX
	JNZ  loop

done:
	MOVQ n+96(FP), AX
	SUBQ BX, AX
	MOVQ AX, k+104(FP)
	SUBQ R12, DI
	MOVQ DI, newOp+112(FP)
	SUBQ lits_base+40(FP), R8
	MOVQ R8, newLp+120(FP)
	RET

longlit:
	MOVQ $16, R10

litloop:
	MOVOU (R8)(R10*1), X0
	MOVOU X0, (DI)(R10*1)
	ADDQ  $16, R10
	CMPQ  R10, AX
	JB    litloop
	JMP   match

longmatch:
	MOVQ $16, R10

matchloop:
	MOVOU (R15)(R10*1), X0
	MOVOU X0, (DI)(R10*1)
	ADDQ  $16, R10
	CMPQ  R10, CX
	JB    matchloop
	JMP   next
