// SPDX-License-Identifier: BSD-3-Clause

// Package proto is the protocol between shifterd and its clients (the
// shifter runtime, `shifterd warm` and `shifterd status`, batch-system
// prologs) over shifterd's unix stream socket.
//
// Every message is one JSON object on one line: a request of at most
// MaxRequest bytes, a response of at most MaxResponse. A client sends one Request; the server answers with Responses:
//
//   - mount: one Response. When it is OK, the message carries, as
//     SCM_RIGHTS ancillary data, one descriptor: the root directory of
//     the image's shared mount, opened O_PATH. The connection then is the
//     reference: the mount is kept while the connection is open, and the
//     client sends nothing more (any further byte is an error and ends the
//     reference). Closing it, or the death of every process that holds it,
//     releases the reference.
//   - warm: zero or more Responses carrying Progress, then a last one
//     with Done set (OK, or an error).
//   - status: one Response carrying Status.
//
// Requests are parsed strictly: unknown fields, a second value on the
// line, an unknown op, fields that the op does not take, an id that is
// not a lowercase hex sha256 are all errors answered with CodeInvalid.
package proto

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shifter-go/shifter/imagestore"
)

// MaxRequest and MaxResponse bound one message, its newline included.
const (
	MaxRequest  = 64 << 10
	MaxResponse = 4 << 20
)

// MaxGroups bounds the groups a root caller may name (NGROUPS_MAX).
const MaxGroups = 65536

// Operations.
const (
	OpMount  = "mount"
	OpWarm   = "warm"
	OpStatus = "status"
)

// Error codes of a failed Response.
const (
	CodeInvalid     = "invalid"     // the request is malformed
	CodeDenied      = "denied"      // the caller may not use the image (or it does not exist)
	CodeUnavailable = "unavailable" // the image could not be mounted or read
	CodeInternal    = "internal"
)

// Request is what a client asks.
type Request struct {
	Op string `json:"op"`
	// ID is the image id (mount, warm).
	ID string `json:"id,omitempty"`
	// UID and GIDs name the user on whose behalf a root caller asks (the
	// setuid runtime, a prolog). They are refused from any other caller,
	// whose identity is its socket peer's.
	UID  *uint32  `json:"uid,omitempty"`
	GIDs []uint32 `json:"gids,omitempty"`
	// TraceOnly (warm) fetches only the chunks of the image's start-up
	// trace; otherwise the traced chunks come first, then the rest.
	TraceOnly bool `json:"traceOnly,omitempty"`
	// PID (mount) names the process the reference is for, for status; it
	// is informational only (the peer's pid is recorded too).
	PID int `json:"pid,omitempty"`
}

// Response is one answer.
type Response struct {
	OK    bool   `json:"ok"`
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`

	// Mount.
	Path   string `json:"path,omitempty"`   // the shared mount on the host
	Source string `json:"source,omitempty"` // its mount source, shifterd:<id>

	// Warm.
	Progress *Progress `json:"progress,omitempty"`
	Done     bool      `json:"done,omitempty"`

	Status *Status `json:"status,omitempty"`
}

// Progress of a warm-up, in chunks.
type Progress struct {
	Done  int64 `json:"done"`  // chunks present, of those asked for
	Total int64 `json:"total"` // chunks asked for
	// FromSource counts the bytes that had to be read from the source.
	FromSource int64 `json:"fromSource"`
}

// Status is what `shifterd status` shows.
type Status struct {
	Mounts []MountStatus `json:"mounts"`
	Cache  *CacheStatus  `json:"cache,omitempty"`
}

// MountStatus is one shared mount.
type MountStatus struct {
	ID      string        `json:"id"`
	Path    string        `json:"path"`
	Since   time.Time     `json:"since"`
	Refs    []HolderState `json:"refs"`
	IdleFor string        `json:"idleFor,omitempty"` // since the last reference went, when there is none
	// Requests counts the FUSE requests the mount has served, by opcode
	// (what the kernel's caches did not answer).
	Requests map[string]uint64 `json:"requests,omitempty"`
}

// HolderState is one reference's holder.
type HolderState struct {
	PID   int       `json:"pid"`
	UID   uint32    `json:"uid"`
	Since time.Time `json:"since"`
}

// CacheStatus is the node cache's figures.
type CacheStatus struct {
	Dir           string `json:"dir"`
	Size          int64  `json:"size"`
	Cap           int64  `json:"cap"`
	Hits          int64  `json:"hits"`
	Misses        int64  `json:"misses"`
	SourceBytes   int64  `json:"sourceBytes"`
	EvictedBytes  int64  `json:"evictedBytes"`
	VerifyFailure int64  `json:"verifyFailures"`
}

// ErrTooLong is returned for a message over its bound.
var ErrTooLong = errors.New("message too long")

// ReadLine reads one message line (without its newline) of at most max
// bytes. io.EOF means the peer closed before any byte; a line cut by EOF
// is io.ErrUnexpectedEOF.
func ReadLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max {
			return nil, ErrTooLong
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// ParseRequest decodes and validates one request line.
func ParseRequest(line []byte) (*Request, error) {
	var q Request
	if err := decodeStrict(line, &q); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	return &q, nil
}

// ParseResponse decodes one response line.
func ParseResponse(line []byte) (*Response, error) {
	var p Response
	if err := decodeStrict(line, &p); err != nil {
		return nil, err
	}
	if !p.OK && p.Error == "" && p.Progress == nil {
		return nil, errors.New("response: neither ok nor an error")
	}
	return &p, nil
}

func decodeStrict(line []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("malformed message: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed message: data after the JSON object")
	}
	return nil
}

// Validate checks a request's fields against its op.
func (q *Request) Validate() error {
	switch q.Op {
	case OpMount, OpWarm:
		if !imagestore.ValidID(q.ID) {
			return fmt.Errorf("%s: image id %q is not a lowercase hex sha256", q.Op, q.ID)
		}
	case OpStatus:
		if q.ID != "" || q.UID != nil || len(q.GIDs) > 0 || q.TraceOnly || q.PID != 0 {
			return errors.New("status takes no arguments")
		}
		return nil
	case "":
		return errors.New("request without op")
	default:
		return fmt.Errorf("unknown op %q", q.Op)
	}
	if q.Op == OpMount && q.TraceOnly {
		return errors.New("mount: traceOnly is for warm")
	}
	if q.Op == OpWarm && q.PID != 0 {
		return errors.New("warm: pid is for mount")
	}
	if q.PID < 0 {
		return fmt.Errorf("pid %d is negative", q.PID)
	}
	if len(q.GIDs) > MaxGroups {
		return fmt.Errorf("%d groups: at most %d", len(q.GIDs), MaxGroups)
	}
	if q.UID == nil && len(q.GIDs) > 0 {
		return errors.New("gids without uid")
	}
	return nil
}

// Marshal encodes a message with its newline; max is MaxRequest or
// MaxResponse.
func Marshal(v any, max int) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b)+1 > max {
		return nil, ErrTooLong
	}
	return append(b, '\n'), nil
}
