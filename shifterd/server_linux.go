// SPDX-License-Identifier: BSD-3-Clause

package shifterd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/shifterd/proto"
)

// Server answers requests on shifterd's socket.
type Server struct {
	Manager  *Manager
	Backend  Backend
	ImageDir string // the image store (udiRoot.conf imagePath)
	Log      *slog.Logger
	// MaxRefsPerUID bounds the references one non-root user holds at
	// once (each is an open connection); 0 means 4096.
	MaxRefsPerUID int
	// RequestTimeout bounds reading a request; 0 means 10 s.
	RequestTimeout time.Duration

	mu     sync.Mutex
	perUID map[uint32]int
	wg     sync.WaitGroup
}

// peer is a connection's caller.
type peer struct {
	pid  int
	uid  uint32 // the identity the request acts for
	gids []uint32
	root bool // the socket peer is root
}

// Serve accepts connections until l is closed or ctx is done, then waits
// for the requests in progress (references are released as their
// connections close: the caller closes the Manager to end them).
func (s *Server) Serve(ctx context.Context, l *net.UnixListener) error {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
				s.Log.Warn("accept", "err", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.handle(ctx, c)
		}()
	}
}

// Wait waits for every connection handler to return.
func (s *Server) Wait() { s.wg.Wait() }

func (s *Server) handle(ctx context.Context, c *net.UnixConn) {
	p, err := peerOf(c)
	if err != nil {
		s.Log.Warn("peer credentials", "err", err)
		return
	}
	timeout := s.RequestTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReaderSize(c, 4096)
	line, err := proto.ReadLine(br, proto.MaxRequest)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.reply(c, fail(proto.CodeInvalid, fmt.Errorf("reading request: %w", err)), nil)
		}
		return
	}
	q, err := proto.ParseRequest(line)
	if err != nil {
		s.reply(c, fail(proto.CodeInvalid, err), nil)
		s.Log.Info("bad request", "pid", p.pid, "uid", p.uid, "err", err)
		return
	}
	if q.UID != nil {
		if !p.root {
			s.reply(c, fail(proto.CodeDenied, errors.New("only root may ask on behalf of another user")), nil)
			return
		}
		p.uid, p.gids = *q.UID, q.GIDs
	}
	c.SetReadDeadline(time.Time{})
	log := s.Log.With("op", q.Op, "pid", p.pid, "uid", p.uid)
	switch q.Op {
	case proto.OpMount:
		s.mount(ctx, c, br, q, p, log)
	case proto.OpWarm:
		s.warm(ctx, c, br, q, p, log)
	case proto.OpStatus:
		s.status(c, p)
	}
}

func fail(code string, err error) *proto.Response {
	return &proto.Response{Code: code, Error: err.Error()}
}

func (s *Server) reply(c *net.UnixConn, r *proto.Response, fd *os.File) error {
	b, err := proto.Marshal(r, proto.MaxResponse)
	if err != nil {
		b, _ = proto.Marshal(fail(proto.CodeInternal, err), proto.MaxResponse)
		fd = nil
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	defer c.SetWriteDeadline(time.Time{})
	if fd == nil {
		_, err = c.Write(b)
		return err
	}
	n, _, err := c.WriteMsgUnix(b, unix.UnixRights(int(fd.Fd())), nil)
	if err == nil && n < len(b) {
		_, err = c.Write(b[n:])
	}
	return err
}

// image loads id's metadata and checks that p may use it. A missing
// image and a refused one get the same answer, so that private images
// are not revealed.
func (s *Server) image(id string, p peer) (*imagestore.Metadata, *proto.Response) {
	m, err := imagestore.LoadOrShifterMeta(s.ImageDir, id)
	if err == nil && (p.uid == 0 || m.Allowed(p.uid, p.gids)) {
		return m, nil
	}
	if err != nil && !errors.Is(err, imagestore.ErrNotFound) && !errors.Is(err, fs.ErrNotExist) {
		s.Log.Warn("image metadata", "image", id, "err", err)
	}
	return nil, fail(proto.CodeDenied, fmt.Errorf("image %s: not found or access denied", id))
}

func (s *Server) mount(ctx context.Context, c *net.UnixConn, br *bufio.Reader, q *proto.Request, p peer, log *slog.Logger) {
	img, bad := s.image(q.ID, p)
	if bad != nil {
		s.reply(c, bad, nil)
		log.Info("mount refused", "image", q.ID)
		return
	}
	if !s.take(p) {
		s.reply(c, fail(proto.CodeDenied, fmt.Errorf("uid %d holds too many references", p.uid)), nil)
		return
	}
	defer s.give(p)
	pid := p.pid
	if p.root && q.PID > 0 {
		pid = q.PID
	}
	ref, err := s.Manager.Acquire(ctx, img, Holder{PID: pid, UID: p.uid})
	if err != nil {
		s.reply(c, fail(proto.CodeUnavailable, err), nil)
		return
	}
	defer ref.Release()
	root, err := os.OpenFile(ref.Path(), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		s.reply(c, fail(proto.CodeUnavailable, fmt.Errorf("image %s: opening its mount: %w", q.ID, err)), nil)
		return
	}
	err = s.reply(c, &proto.Response{OK: true, Path: ref.Path(), Source: MountSource(q.ID)}, root)
	root.Close()
	if err != nil {
		log.Info("mount reply", "image", q.ID, "err", err)
		return
	}
	log.Debug("reference taken", "image", q.ID, "holder", pid)
	// The connection is the reference: wait for it to close. Anything
	// the client sends ends it too.
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var b [1]byte
	if n, err := br.Read(b[:]); n > 0 {
		log.Info("data on a reference connection: released", "image", q.ID)
	} else if !errors.Is(err, io.EOF) && ctx.Err() == nil {
		log.Debug("reference connection", "image", q.ID, "err", err)
	}
	log.Debug("reference released", "image", q.ID, "holder", pid)
}

func (s *Server) take(p peer) bool {
	if p.root && p.uid == 0 {
		return true
	}
	max := s.MaxRefsPerUID
	if max <= 0 {
		max = 4096
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUID == nil {
		s.perUID = map[uint32]int{}
	}
	if s.perUID[p.uid] >= max {
		return false
	}
	s.perUID[p.uid]++
	return true
}

func (s *Server) give(p peer) {
	if p.root && p.uid == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUID[p.uid]--; s.perUID[p.uid] <= 0 {
		delete(s.perUID, p.uid)
	}
}

func (s *Server) warm(ctx context.Context, c *net.UnixConn, br *bufio.Reader, q *proto.Request, p peer, log *slog.Logger) {
	img, bad := s.image(q.ID, p)
	if bad != nil {
		s.reply(c, bad, nil)
		return
	}
	// A client that goes away cancels its warm-up.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		var b [1]byte
		br.Read(b[:])
		cancel()
	}()
	start := time.Now()
	var mu sync.Mutex // the backend may report from several goroutines
	var last time.Time
	err := s.Backend.Warm(ctx, img, q.TraceOnly, func(pr proto.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(last) >= 200*time.Millisecond || pr.Done == pr.Total {
			last = now
			s.reply(c, &proto.Response{OK: true, Progress: &pr}, nil)
		}
	})
	mu.Lock() // no report after the last one
	defer mu.Unlock()
	if err != nil {
		log.Warn("warm-up failed", "image", q.ID, "err", err)
		s.reply(c, &proto.Response{Done: true, Code: proto.CodeUnavailable, Error: err.Error()}, nil)
		return
	}
	log.Info("warmed", "image", q.ID, "traceOnly", q.TraceOnly, "took", time.Since(start).Round(time.Millisecond))
	s.reply(c, &proto.Response{OK: true, Done: true}, nil)
}

func (s *Server) status(c *net.UnixConn, p peer) {
	var filter func(*imagestore.Metadata) bool
	var show func(Holder) bool
	if p.uid != 0 {
		filter = func(m *imagestore.Metadata) bool { return m.Allowed(p.uid, p.gids) }
		show = func(h Holder) bool { return h.UID == p.uid }
	}
	st := &proto.Status{Mounts: s.Manager.Status(filter, show), Cache: s.Backend.CacheStatus()}
	if st.Mounts == nil {
		st.Mounts = []proto.MountStatus{}
	}
	s.reply(c, &proto.Response{OK: true, Status: st}, nil)
}

// MountSource is the mount source of image id's shared mount, which
// findmnt and /proc/self/mountinfo show.
func MountSource(id string) string { return "shifterd:" + id }

// peerOf reads the socket peer's pid, uid and groups (SO_PEERCRED,
// SO_PEERGROUPS), as they were when it connected.
func peerOf(c *net.UnixConn) (peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var cred *unix.Ucred
	var groups []uint32
	var gerr error
	cerr := rc.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err == nil {
			groups, gerr = peerGroups(int(fd))
		}
	})
	if cerr != nil {
		return peer{}, cerr
	}
	if err != nil {
		return peer{}, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	if gerr != nil {
		return peer{}, fmt.Errorf("SO_PEERGROUPS: %w", gerr)
	}
	return peer{pid: int(cred.Pid), uid: cred.Uid, gids: append([]uint32{cred.Gid}, groups...), root: cred.Uid == 0}, nil
}

// peerGroups reads SO_PEERGROUPS, growing the buffer when the kernel
// says it is too small.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case e == 0:
			return buf[:n/4], nil
		case e == unix.ERANGE && int(n/4) > len(buf) && n/4 <= proto.MaxGroups:
			buf = make([]uint32, n/4)
		default:
			return nil, e
		}
	}
}
