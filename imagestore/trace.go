// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// A start-up trace, <id>.trace, lists the chunks of <id>.squashfs that
// a container's start read, in the order it first read them. shifterd
// records one the first time it mounts an image on a node and writes it
// here; a later warm-up fetches those chunks first. Its form:
//
//	shifter-trace 1
//	chunk-size 262144
//	12
//	0
//	...
//
// one chunk index per line, each below the image's chunk count, none
// twice. A trace is a hint: a missing, unreadable or invalid one only
// makes warm-ups fetch in file order.

// MaxTraceChunks bounds a trace's length (and so its file, under 8 MiB).
const MaxTraceChunks = 1 << 20

const traceMagic = "shifter-trace 1"

// Trace is a parsed start-up trace.
type Trace struct {
	ChunkSize int64
	Chunks    []int64 // chunk indexes, in first-read order
}

// TracePath is the path of image id's trace in dir.
func TracePath(dir, id string) string { return filepath.Join(dir, id+".trace") }

// ErrInvalidTrace is wrapped by every error of ParseTrace.
var ErrInvalidTrace = errors.New("invalid start-up trace")

// ParseTrace reads a trace of an image of imageSize bytes.
func ParseTrace(r io.Reader, imageSize int64) (*Trace, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidTrace, fmt.Sprintf(format, a...))
	}
	sc := bufio.NewScanner(io.LimitReader(r, 32+MaxTraceChunks*21))
	sc.Buffer(make([]byte, 0, 64), 64)
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	if l, ok := next(); !ok || l != traceMagic {
		return nil, bad("first line is not %q", traceMagic)
	}
	l, ok := next()
	cs, found := cutPrefix(l, "chunk-size ")
	if !ok || !found {
		return nil, bad("line 2: want chunk-size N")
	}
	t := &Trace{}
	if t.ChunkSize, ok = parseDecimal(cs); !ok || t.ChunkSize < 4096 || t.ChunkSize > 64<<20 || t.ChunkSize&(t.ChunkSize-1) != 0 {
		return nil, bad("chunk size %q: want a power of two from 4096 to 64 MiB", cs)
	}
	if imageSize < 0 {
		return nil, bad("image size %d", imageSize)
	}
	count := (imageSize + t.ChunkSize - 1) / t.ChunkSize
	seen := make(map[int64]bool)
	for {
		l, ok := next()
		if !ok {
			break
		}
		n, ok := parseDecimal(l)
		if !ok {
			return nil, bad("line %d: %q is not a chunk index", line, l)
		}
		if n >= count {
			return nil, bad("line %d: chunk %d of an image of %d chunks", line, n, count)
		}
		if seen[n] {
			return nil, bad("line %d: chunk %d listed twice", line, n)
		}
		if len(t.Chunks) == MaxTraceChunks {
			return nil, bad("more than %d chunks", MaxTraceChunks)
		}
		seen[n] = true
		t.Chunks = append(t.Chunks, n)
	}
	if err := sc.Err(); err != nil {
		return nil, bad("line %d: %v", line+1, err)
	}
	return t, nil
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

// Marshal renders the trace in its file form.
func (t *Trace) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nchunk-size %d\n", traceMagic, t.ChunkSize)
	for _, c := range t.Chunks {
		b.WriteString(strconv.FormatInt(c, 10))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// LoadTrace reads image m's trace from dir; ErrNotFound when there is
// none.
func LoadTrace(dir string, m *Metadata) (*Trace, error) {
	if !ValidID(m.ID) {
		return nil, fmt.Errorf("%w: id %q", ErrInvalid, m.ID)
	}
	f, err := os.OpenFile(TracePath(dir, m.ID), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("trace of %s: %w", m.ID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("trace of %s: %w", m.ID, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("trace of %s: %w: not a regular file", m.ID, ErrInvalidTrace)
	}
	t, err := ParseTrace(f, m.Size)
	if err != nil {
		return nil, fmt.Errorf("trace of %s: %w", m.ID, err)
	}
	return t, nil
}

// WriteTrace publishes image m's trace in dir unless it has one: written
// under a temporary name, fsync'd, then linked into place, so that of
// several nodes writing at once the first link wins and nobody sees a
// partial file. It reports whether this call's trace was the one kept.
// The file is readable by everyone only when the image is public.
func WriteTrace(dir string, m *Metadata, t *Trace) (bool, error) {
	if !ValidID(m.ID) {
		return false, fmt.Errorf("%w: id %q", ErrInvalid, m.ID)
	}
	final := TracePath(dir, m.ID)
	if _, err := os.Lstat(final); err == nil {
		return false, nil
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return false, err
	}
	mode := os.FileMode(0o600)
	if m.Public() {
		mode = 0o644
	}
	tmp := filepath.Join(dir, tempPrefix+hex.EncodeToString(r[:])+".trace")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return false, fmt.Errorf("write trace of %s: %w", m.ID, err)
	}
	defer os.Remove(tmp)
	_, werr := f.Write(t.Marshal())
	cherr := f.Chmod(mode) // the umask may have taken bits away
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, cherr, serr, cerr); err != nil {
		return false, fmt.Errorf("write trace of %s: %w", m.ID, err)
	}
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("write trace of %s: %w", m.ID, err)
	}
	return true, syncDir(dir)
}
