// SPDX-License-Identifier: BSD-3-Clause

// Package client talks to shifterd over its unix socket (see package
// proto). It is what the setuid runtime links: the standard library,
// x/sys and the protocol's types only.
package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/shifterd/proto"
)

// Error is shifterd's refusal or failure.
type Error struct {
	Code string // proto.Code*
	Msg  string
}

func (e *Error) Error() string { return "shifterd: " + e.Msg }

// Caller names the user a root caller asks for.
type Caller struct {
	UID  uint32
	GIDs []uint32
}

// Ref is a reference to an image's shared mount: the mount stays while
// the reference's connection is open in any process.
type Ref struct {
	// Root is the mount's root directory, opened O_PATH.
	Root   *os.File
	Path   string // the mount on the host (in a directory only root can search)
	Source string // its mount source, shifterd:<id>
	conn   *net.UnixConn
}

// Close releases the reference (in this process: a copy of the
// connection held elsewhere keeps it) and closes Root.
func (r *Ref) Close() error {
	r.Root.Close()
	return r.conn.Close()
}

// File returns a duplicate of the reference's connection, for a process
// that must hold the reference as long as it lives (exec.Cmd.ExtraFiles).
func (r *Ref) File() (*os.File, error) { return r.conn.File() }

func dial(ctx context.Context, socket string) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("shifterd: %w", err)
	}
	return c.(*net.UnixConn), nil
}

// send writes q; until the returned stop is called, ctx's end or
// deadline interrupts reads and writes on c.
func send(ctx context.Context, c *net.UnixConn, q *proto.Request) (stop func() bool, err error) {
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	stop = context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	b, err := proto.Marshal(q, proto.MaxRequest)
	if err == nil {
		_, err = c.Write(b)
	}
	if err != nil {
		err = fmt.Errorf("shifterd: %w", err)
	}
	return stop, err
}

func request(caller *Caller, q *proto.Request) *proto.Request {
	if caller != nil {
		uid := caller.UID
		q.UID, q.GIDs = &uid, caller.GIDs
	}
	return q
}

func asError(p *proto.Response) error {
	if p.OK {
		return nil
	}
	return &Error{Code: p.Code, Msg: p.Error}
}

// Mount asks for a reference to image id's shared mount. pid names the
// process the reference is for (informational; 0 for the caller).
func Mount(ctx context.Context, socket, id string, caller *Caller, pid int) (*Ref, error) {
	c, err := dial(ctx, socket)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	stop, err := send(ctx, c, request(caller, &proto.Request{Op: proto.OpMount, ID: id, PID: pid}))
	defer stop()
	if err != nil {
		return nil, err
	}
	// The first message carries the descriptor; read it with its
	// ancillary data (one fd's worth), then the rest of the line.
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("shifterd: %w", err)
	}
	var root *os.File
	if oobn > 0 {
		root, err = rootFrom(oob[:oobn])
		if err != nil {
			return nil, err
		}
	}
	br := bufio.NewReader(c)
	line := buf[:n]
	if n == 0 || buf[n-1] != '\n' {
		rest, err := proto.ReadLine(br, proto.MaxResponse-n)
		if err != nil {
			closeFile(root)
			return nil, fmt.Errorf("shifterd: reading answer: %w", err)
		}
		line = append(line, rest...)
	} else {
		line = line[:n-1]
	}
	p, err := proto.ParseResponse(line)
	if err != nil {
		closeFile(root)
		return nil, fmt.Errorf("shifterd: %w", err)
	}
	if err := asError(p); err != nil {
		closeFile(root)
		return nil, err
	}
	if root == nil {
		return nil, errors.New("shifterd: answer without the mount's descriptor")
	}
	stop()
	c.SetDeadline(time.Time{})
	ok = true
	return &Ref{Root: root, Path: p.Path, Source: p.Source, conn: c}, nil
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// rootFrom takes the one descriptor of an SCM_RIGHTS message, closing
// any other.
func rootFrom(oob []byte) (*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("shifterd: control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err == nil {
			fds = append(fds, got...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("shifterd: %d descriptors in the answer, want 1", len(fds))
	}
	unix.CloseOnExec(fds[0])
	return os.NewFile(uintptr(fds[0]), "shifterd-mount"), nil
}

// Warm asks shifterd to fill the node cache with image id, reporting
// progress as it goes; it returns when the warm-up is done.
func Warm(ctx context.Context, socket, id string, traceOnly bool, caller *Caller, progress func(proto.Progress)) error {
	c, err := dial(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	stop, err := send(ctx, c, request(caller, &proto.Request{Op: proto.OpWarm, ID: id, TraceOnly: traceOnly}))
	defer stop()
	if err != nil {
		return err
	}
	br := bufio.NewReader(c)
	for {
		line, err := proto.ReadLine(br, proto.MaxResponse)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("shifterd: reading answer: %w", err)
		}
		p, err := proto.ParseResponse(line)
		if err != nil {
			return fmt.Errorf("shifterd: %w", err)
		}
		if p.Progress != nil && progress != nil {
			progress(*p.Progress)
		}
		if p.Done || !p.OK {
			return asError(p)
		}
	}
}

// Status asks for shifterd's mounts and cache figures.
func Status(ctx context.Context, socket string) (*proto.Status, error) {
	c, err := dial(ctx, socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop, err := send(ctx, c, &proto.Request{Op: proto.OpStatus})
	defer stop()
	if err != nil {
		return nil, err
	}
	line, err := proto.ReadLine(bufio.NewReader(c), proto.MaxResponse)
	if err != nil {
		return nil, fmt.Errorf("shifterd: reading answer: %w", err)
	}
	p, err := proto.ParseResponse(line)
	if err != nil {
		return nil, fmt.Errorf("shifterd: %w", err)
	}
	if err := asError(p); err != nil {
		return nil, err
	}
	if p.Status == nil {
		return nil, errors.New("shifterd: status answer without status")
	}
	return p.Status, nil
}
