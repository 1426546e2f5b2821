// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shifter-go/shifter/imagestore"
)

// Transfer publishes images into one system's image directory.
type Transfer interface {
	// CreateTemp makes the file a build writes into.
	CreateTemp() (*os.File, error)
	// Publish moves a finished squashfs into place with its chunk list
	// cl (computed from tmpPath; nil: none) and its metadata (squashfs
	// first, chunk list next, metadata last). It fills m.Size and
	// m.SHA256.
	Publish(ctx context.Context, tmpPath string, m *imagestore.Metadata, cl *imagestore.ChunkList) error
	// EnsureChunks gives a published image without a chunk list (one
	// published before chunk lists) one, in chunks of chunkSize, and
	// reports whether it wrote one.
	EnsureChunks(ctx context.Context, m *imagestore.Metadata, chunkSize int64) (bool, error)
	// WriteMetadata rewrites <id>.json of a published image, and gives
	// both files the mode of its visibility (imagestore.FileMode).
	WriteMetadata(ctx context.Context, m *imagestore.Metadata) error
	// SetModes gives a published image's files the mode of its
	// visibility.
	SetModes(ctx context.Context, m *imagestore.Metadata) error
	// Load returns the metadata of a fully published image, or an error
	// wrapping imagestore.ErrNotFound.
	Load(ctx context.Context, id string) (*imagestore.Metadata, error)
	// Remove unpublishes an image (metadata first, then the chunk list
	// and the nodes' start-up trace, then the squashfs).
	Remove(ctx context.Context, id string) error
	// CleanTemp removes temporary files left by a dead gateway.
	CleanTemp(ctx context.Context) error
	// Published lists the ids with a squashfs, metadata, chunk list or
	// trace file and the newest modification time of their files.
	Published(ctx context.Context) (map[string]time.Time, error)
}

// localTransfer: the image directory is mounted on the gateway host.
type localTransfer struct{ dir string }

func (l localTransfer) CreateTemp() (*os.File, error) { return imagestore.CreateTemp(l.dir) }

func (l localTransfer) Publish(_ context.Context, tmp string, m *imagestore.Metadata, cl *imagestore.ChunkList) error {
	return imagestore.PublishWithChunks(l.dir, tmp, m, cl)
}

func (l localTransfer) EnsureChunks(_ context.Context, m *imagestore.Metadata, chunkSize int64) (bool, error) {
	return imagestore.EnsureChunkList(l.dir, m, chunkSize)
}

func (l localTransfer) WriteMetadata(_ context.Context, m *imagestore.Metadata) error {
	return imagestore.WriteMetadata(l.dir, m)
}

func (l localTransfer) SetModes(_ context.Context, m *imagestore.Metadata) error {
	return imagestore.SetModes(l.dir, m)
}

func (l localTransfer) Load(_ context.Context, id string) (*imagestore.Metadata, error) {
	m, err := imagestore.Load(l.dir, id)
	if err != nil {
		return nil, err
	}
	sq, _ := imagestore.Paths(l.dir, id)
	st, err := os.Stat(sq)
	if err != nil {
		return nil, fmt.Errorf("image %s: squashfs: %w", id, imagestore.ErrNotFound)
	}
	if m.Size != 0 && st.Size() != m.Size {
		return nil, fmt.Errorf("image %s: squashfs is %d bytes, metadata says %d: %w", id, st.Size(), m.Size, imagestore.ErrNotFound)
	}
	return m, nil
}

func (l localTransfer) Remove(_ context.Context, id string) error {
	return imagestore.Remove(l.dir, id)
}

func (l localTransfer) CleanTemp(context.Context) error {
	_, err := imagestore.CleanTemp(l.dir, time.Now())
	return err
}

func (l localTransfer) Published(context.Context) (map[string]time.Time, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("list image directory: %w", err)
	}
	out := map[string]time.Time{}
	for _, e := range ents {
		base, ok := imageFileID(e.Name())
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if t, seen := out[base]; !seen || info.ModTime().After(t) {
			out[base] = info.ModTime()
		}
	}
	return out, nil
}

// sshTransfer builds in a local spool directory and copies to a remote
// host with scp, then renames there with ssh (Shifter's "remote" mode).
type sshTransfer struct {
	spool string // local staging directory
	dir   string // image directory on the remote host
	cfg   SSH
}

func (s *sshTransfer) target() string {
	if s.cfg.User != "" {
		return s.cfg.User + "@" + s.cfg.Host
	}
	return s.cfg.Host
}

func shellQuote(p string) string { return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'" }

// run runs a shell command on the remote host.
func (s *sshTransfer) run(ctx context.Context, script string) ([]byte, error) {
	cmdName := s.cfg.SSHCommand
	if cmdName == "" {
		cmdName = "ssh"
	}
	var args []string
	if s.cfg.Key != "" {
		args = append(args, "-i", s.cfg.Key)
	}
	args = append(args, s.cfg.SSHOptions...)
	args = append(args, "--", s.target(), script)
	cmd := exec.CommandContext(ctx, cmdName, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("ssh %s: %w: %s", s.cfg.Host, err, firstLine(stderr.String()))
	}
	return out.Bytes(), nil
}

func (s *sshTransfer) copy(ctx context.Context, local, remote string) error {
	cmdName := s.cfg.SCPCommand
	if cmdName == "" {
		cmdName = "scp"
	}
	var args []string
	if s.cfg.Key != "" {
		args = append(args, "-i", s.cfg.Key)
	}
	args = append(args, s.cfg.SCPOptions...)
	args = append(args, "--", local, s.target()+":"+remote)
	cmd := exec.CommandContext(ctx, cmdName, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scp to %s: %w: %s", s.cfg.Host, err, firstLine(stderr.String()))
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// put copies a local file to a temporary remote name in the image
// directory and renames it to final there, with mode. scp creates the
// remote file with the local file's mode (the spool's files have their
// final mode already), so a private image is never readable by others
// on the remote host, even before the chmod.
func (s *sshTransfer) put(ctx context.Context, local, final string, mode os.FileMode) error {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, ".tmp-"+hex.EncodeToString(r[:])+filepath.Ext(final))
	if err := s.copy(ctx, local, tmp); err != nil {
		// scp may have left part of the file.
		s.run(context.WithoutCancel(ctx), "rm -f "+shellQuote(tmp))
		return err
	}
	_, err := s.run(ctx, fmt.Sprintf("chmod %04o %s && sync %s && mv -f %s %s", mode.Perm(), shellQuote(tmp), shellQuote(tmp),
		shellQuote(tmp), shellQuote(filepath.Join(s.dir, final))))
	if err != nil {
		s.run(context.WithoutCancel(ctx), "rm -f "+shellQuote(tmp))
	}
	return err
}

func (s *sshTransfer) CreateTemp() (*os.File, error) { return imagestore.CreateTemp(s.spool) }

func (s *sshTransfer) Publish(ctx context.Context, tmp string, m *imagestore.Metadata, cl *imagestore.ChunkList) error {
	// Stage the files in the spool with the image store's own code, then
	// copy the squashfs, the chunk list, and the metadata last.
	sq, mp := imagestore.Paths(s.spool, m.ID)
	cp := imagestore.ChunksPath(s.spool, m.ID)
	for _, p := range []string{sq, cp, mp} {
		os.Remove(p)
		defer os.Remove(p)
	}
	if err := imagestore.PublishWithChunks(s.spool, tmp, m, cl); err != nil {
		return err
	}
	files := []string{sq, mp}
	if cl != nil {
		files = []string{sq, cp, mp}
	}
	for _, p := range files {
		if err := s.put(ctx, p, filepath.Base(p), imagestore.FileMode(m)); err != nil {
			return fmt.Errorf("publish image %s: %w", m.ID, err)
		}
	}
	return nil
}

// EnsureChunks hashes a remote image that has no chunk list on the
// remote host (GNU split runs sha256sum on each chunk), so that the
// image is not copied back, and copies the list there.
func (s *sshTransfer) EnsureChunks(ctx context.Context, m *imagestore.Metadata, chunkSize int64) (bool, error) {
	if !imagestore.ValidID(m.ID) {
		return false, fmt.Errorf("image id %q: %w", m.ID, imagestore.ErrInvalid)
	}
	sq, _ := imagestore.Paths(s.dir, m.ID)
	out, err := s.run(ctx, fmt.Sprintf(`c=%s; f=%s; if [ -e "$c" ] || [ -L "$c" ]; then echo present; exit 0; fi; `+
		`[ -f "$f" ] && [ ! -L "$f" ] || { echo "no regular file $f" >&2; exit 3; }; `+
		`stat -c %%s -- "$f" && split -b %d --filter=sha256sum -- "$f"`,
		shellQuote(imagestore.ChunksPath(s.dir, m.ID)), shellQuote(sq), chunkSize))
	if err != nil {
		return false, fmt.Errorf("chunk list of %s: %w", m.ID, err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if lines[0] == "present" {
		return false, nil
	}
	cl, err := parseRemoteSums(lines, chunkSize)
	if err != nil {
		return false, fmt.Errorf("chunk list of %s on %s: %w", m.ID, s.cfg.Host, err)
	}
	cp := imagestore.ChunksPath(s.spool, m.ID)
	defer os.Remove(cp)
	if err := imagestore.WriteChunkListMode(s.spool, m.ID, cl, imagestore.FileMode(m)); err != nil {
		return false, err
	}
	if err := s.put(ctx, cp, m.ID+".chunks", imagestore.FileMode(m)); err != nil {
		return false, fmt.Errorf("chunk list of %s: %w", m.ID, err)
	}
	return true, nil
}

// parseRemoteSums builds a chunk list from the file size and the
// "HEX  -" lines of sha256sum, one per chunk.
func parseRemoteSums(lines []string, chunkSize int64) (*imagestore.ChunkList, error) {
	size, err := strconv.ParseInt(strings.TrimSpace(lines[0]), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("file size %q: %w", lines[0], err)
	}
	cl := &imagestore.ChunkList{ChunkSize: chunkSize, Size: size}
	for _, l := range lines[1:] {
		h, ok := strings.CutSuffix(l, "  -")
		var sum [32]byte
		if n, err := hex.Decode(sum[:], []byte(h)); !ok || err != nil || n != len(sum) {
			return nil, fmt.Errorf("sha256sum line %q", l)
		}
		cl.Sums = append(cl.Sums, sum)
	}
	if err := cl.Validate(); err != nil {
		return nil, err
	}
	return cl, nil
}

func (s *sshTransfer) WriteMetadata(ctx context.Context, m *imagestore.Metadata) error {
	_, mp := imagestore.Paths(s.spool, m.ID)
	defer os.Remove(mp)
	if err := imagestore.WriteMetadata(s.spool, m); err != nil {
		return err
	}
	if err := s.SetModes(ctx, m); err != nil {
		return fmt.Errorf("write metadata of %s: %w", m.ID, err)
	}
	if err := s.put(ctx, mp, m.ID+".json", imagestore.FileMode(m)); err != nil {
		return fmt.Errorf("write metadata of %s: %w", m.ID, err)
	}
	return nil
}

// SetModes changes the remote files' modes where they differ (find
// -type f: never through a symbolic link).
func (s *sshTransfer) SetModes(ctx context.Context, m *imagestore.Metadata) error {
	if !imagestore.ValidID(m.ID) {
		return fmt.Errorf("image id %q: %w", m.ID, imagestore.ErrInvalid)
	}
	mode := fmt.Sprintf("%04o", imagestore.FileMode(m).Perm())
	_, err := s.run(ctx, fmt.Sprintf(`find %s -maxdepth 1 -type f \( -name %s -o -name %s -o -name %s \) ! -perm %s -exec chmod %s {} +`,
		shellQuote(s.dir), shellQuote(m.ID+".squashfs"), shellQuote(m.ID+".chunks"), shellQuote(m.ID+".json"), mode, mode))
	return err
}

func (s *sshTransfer) Load(ctx context.Context, id string) (*imagestore.Metadata, error) {
	if !imagestore.ValidID(id) {
		return nil, fmt.Errorf("image id %q: %w", id, imagestore.ErrInvalid)
	}
	sq, mp := imagestore.Paths(s.dir, id)
	out, err := s.run(ctx, fmt.Sprintf("test -f %s && test -f %s && cat %s", shellQuote(sq), shellQuote(mp), shellQuote(mp)))
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 {
			return nil, fmt.Errorf("image %s on %s: %w", id, s.cfg.Host, imagestore.ErrNotFound)
		}
		return nil, err
	}
	var m imagestore.Metadata
	if err := json.Unmarshal(out, &m); err != nil || m.ID != id {
		return nil, fmt.Errorf("image %s on %s: %w", id, s.cfg.Host, imagestore.ErrInvalid)
	}
	return &m, m.Validate()
}

func (s *sshTransfer) Remove(ctx context.Context, id string) error {
	if !imagestore.ValidID(id) {
		return fmt.Errorf("image id %q: %w", id, imagestore.ErrInvalid)
	}
	sq, mp := imagestore.Paths(s.dir, id)
	_, err := s.run(ctx, fmt.Sprintf("rm -f %s && rm -f %s %s && rm -f %s", shellQuote(mp),
		shellQuote(imagestore.ChunksPath(s.dir, id)), shellQuote(imagestore.TracePath(s.dir, id)), shellQuote(sq)))
	return err
}

func (s *sshTransfer) CleanTemp(ctx context.Context) error {
	if err := os.RemoveAll(s.spool); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clean spool: %w", err)
	}
	if err := os.MkdirAll(s.spool, 0o700); err != nil {
		return fmt.Errorf("clean spool: %w", err)
	}
	_, err := s.run(ctx, fmt.Sprintf("find %s -maxdepth 1 -name '.tmp-*' -type f -delete", shellQuote(s.dir)))
	return err
}

// Published lists the remote image files with GNU find (the remote host
// is Linux).
func (s *sshTransfer) Published(ctx context.Context) (map[string]time.Time, error) {
	out, err := s.run(ctx, fmt.Sprintf(`find %s -maxdepth 1 -type f \( -name '*.squashfs' -o -name '*.json' -o -name '*.chunks' -o -name '*.trace' \) -printf '%%T@ %%f\n'`, shellQuote(s.dir)))
	if err != nil {
		return nil, fmt.Errorf("list remote image directory: %w", err)
	}
	files := map[string]time.Time{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		ts, name, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		base, ok := imageFileID(name)
		secs, err := strconv.ParseFloat(ts, 64)
		if !ok || err != nil {
			continue
		}
		mt := time.Unix(0, int64(secs*1e9))
		if t, seen := files[base]; !seen || mt.After(t) {
			files[base] = mt
		}
	}
	return files, nil
}

// imageFileID returns the image id of a file name of the image store:
// <id>.squashfs, <id>.json, <id>.chunks or <id>.trace.
func imageFileID(name string) (string, bool) {
	for _, ext := range []string{".squashfs", ".json", ".chunks", ".trace"} {
		if id, ok := strings.CutSuffix(name, ext); ok && imagestore.ValidID(id) {
			return id, true
		}
	}
	return "", false
}

func newTransfer(name string, sys *System, workDir string) Transfer {
	if sys.Transfer == TransferSSH {
		return &sshTransfer{spool: filepath.Join(workDir, "spool", name), dir: sys.ImageDir, cfg: *sys.SSH}
	}
	return localTransfer{dir: sys.ImageDir}
}
