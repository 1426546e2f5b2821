// SPDX-License-Identifier: BSD-3-Clause

// Package codec is what squashreader's block decoders share: the Decoder
// interface they implement and the errors their errors wrap.
//
// A decoder decodes one whole compressed block (a squashfs data,
// fragment or metadata block) from one buffer into another: Decode(dst,
// src) decodes src into dst[:0], writing at most cap(dst) bytes, and
// returns the output. Bytes of dst past the returned length may be
// overwritten. It is safe for concurrent use. Its errors wrap exactly one
// of ErrCorrupt, ErrTooLong and ErrUnsupported and say, after the codec's
// name, what is wrong and where in src. Nothing in src can make it
// panic, read or write outside src and dst[:cap(dst)], or loop without
// consuming input.
package codec

import "errors"

var (
	// ErrCorrupt is wrapped by the errors about bad or truncated input.
	ErrCorrupt = errors.New("corrupt input")
	// ErrTooLong is wrapped when the output would not fit in cap(dst).
	// A codec whose reference implementation cannot tell this from
	// corrupt input (lz4) reports ErrCorrupt instead.
	ErrTooLong = errors.New("output longer than the buffer")
	// ErrUnsupported is wrapped by the errors about valid features of a
	// format the decoder does not implement.
	ErrUnsupported = errors.New("unsupported")
)

// Decoder decodes one compressed block, as the package doc says.
type Decoder interface {
	Decode(dst, src []byte) ([]byte, error)
}

// Func is a decoding function used as a Decoder.
type Func func(dst, src []byte) ([]byte, error)

// Decode calls f.
func (f Func) Decode(dst, src []byte) ([]byte, error) { return f(dst, src) }
