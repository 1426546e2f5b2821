// SPDX-License-Identifier: BSD-3-Clause

//go:build !amd64 || purego

package zstd

// decodeSeqs decodes len(seqs) sequences from d.st.
func (d *decoder) decodeSeqs(seqs []seq) {
	d.decodeSeqsGeneric(seqs)
}

// execFast runs none of seqs: execSeqs runs them all.
func execFast(out []byte, op, frameStart int, lits []byte, lp int, seqs []seq) (int, int, int) {
	return 0, op, lp
}
