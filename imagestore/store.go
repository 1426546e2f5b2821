// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// FormatSquashfs is the only image format.
const FormatSquashfs = "squashfs"

// MaxMetadataSize bounds a metadata file; a larger one is refused unread.
const MaxMetadataSize = 4 << 20

// Errors returned by this package; test with errors.Is.
var (
	ErrNotFound = errors.New("image not found")
	ErrInvalid  = errors.New("invalid image metadata")
)

// Metadata describes one image; it is the content of <id>.json.
type Metadata struct {
	ID     string `json:"id"`     // hex sha256 of the manifest; the file names
	Format string `json:"format"` // always "squashfs"
	// Tags are the normalized tags (NormalizeTag) that name this image,
	// only those that everyone the ACL admits may see: a private tag of
	// an image shared wider is resolved through the gateway's lookup.
	Tags       []string          `json:"tags"`
	Env        []string          `json:"env"` // image ENV, "K=V"
	Entrypoint []string          `json:"entrypoint"`
	Cmd        []string          `json:"cmd"`
	WorkDir    string            `json:"workdir"`
	User       string            `json:"user"`
	Labels     map[string]string `json:"labels,omitempty"`
	UserACL    []uint32          `json:"userACL"`  // uids allowed; empty with GroupACL empty = public
	GroupACL   []uint32          `json:"groupACL"` // gids allowed
	Created    time.Time         `json:"created"`  // when the gateway published it
	Size       int64             `json:"size"`     // bytes of <id>.squashfs
	SHA256     string            `json:"sha256"`   // hex sha256 of <id>.squashfs
	// ChunksSHA256 is the hex sha256 of <id>.chunks (ChunkList.Digest),
	// set by WriteMetadata when the image has a chunk list: the anchor a
	// node checks a chunk list fetched over HTTP against.
	ChunksSHA256 string `json:"chunksSHA256,omitempty"`
}

// ValidID reports whether id is a 64-character lowercase hex digest.
func ValidID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Validate checks the metadata's invariants.
func (m *Metadata) Validate() error {
	switch {
	case !ValidID(m.ID):
		return fmt.Errorf("%w: id %q is not a sha256 hex digest", ErrInvalid, m.ID)
	case m.Format != FormatSquashfs:
		return fmt.Errorf("%w: image %s: format %q, want %q", ErrInvalid, m.ID, m.Format, FormatSquashfs)
	case m.SHA256 != "" && !ValidID(m.SHA256):
		return fmt.Errorf("%w: image %s: sha256 %q is not a hex digest", ErrInvalid, m.ID, m.SHA256)
	case m.ChunksSHA256 != "" && !ValidID(m.ChunksSHA256):
		return fmt.Errorf("%w: image %s: chunksSHA256 %q is not a hex digest", ErrInvalid, m.ID, m.ChunksSHA256)
	case m.Size < 0:
		return fmt.Errorf("%w: image %s: negative size", ErrInvalid, m.ID)
	}
	for _, e := range m.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") || strings.ContainsRune(e, 0) {
			return fmt.Errorf("%w: image %s: environment entry %q is not NAME=VALUE", ErrInvalid, m.ID, e)
		}
	}
	return nil
}

// Public reports whether the image has no ACL.
func (m *Metadata) Public() bool { return len(m.UserACL) == 0 && len(m.GroupACL) == 0 }

// Allowed reports whether a caller with this uid and these groups (primary
// and supplementary) may use the image: it is public, or uid is in UserACL,
// or a group is in GroupACL. Root (uid 0) is always allowed.
func (m *Metadata) Allowed(uid uint32, gids []uint32) bool {
	if uid == 0 || m.Public() || slices.Contains(m.UserACL, uid) {
		return true
	}
	for _, g := range gids {
		if slices.Contains(m.GroupACL, g) {
			return true
		}
	}
	return false
}

// HasTag reports whether the image carries the tag (compared normalized).
func (m *Metadata) HasTag(tag string) bool {
	return slices.Contains(m.Tags, NormalizeTag(tag))
}

// NormalizeTag gives the canonical form of a docker image reference as
// stored in Tags: the Docker Hub prefixes "docker.io/", "index.docker.io/"
// and "library/" (for single-name repositories) are dropped and ":latest"
// is added when the reference names neither a tag nor a digest. So
// "ubuntu", "docker.io/library/ubuntu" and "ubuntu:latest" are one tag.
func NormalizeTag(ref string) string {
	ref = strings.TrimSpace(ref)
	for _, p := range []string{"docker.io/", "index.docker.io/", "registry-1.docker.io/"} {
		if strings.HasPrefix(ref, p) {
			ref = strings.TrimPrefix(ref, p)
			ref = strings.TrimPrefix(ref, "library/")
			break
		}
	}
	if strings.HasPrefix(ref, "library/") && strings.Count(ref, "/") == 1 {
		ref = strings.TrimPrefix(ref, "library/")
	}
	if ref == "" || strings.Contains(ref, "@") {
		return ref
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if !strings.Contains(last, ":") {
		ref += ":latest"
	}
	return ref
}

// Paths returns the squashfs and metadata paths of image id in dir.
func Paths(dir, id string) (squashfs, metadata string) {
	return filepath.Join(dir, id+".squashfs"), filepath.Join(dir, id+".json")
}

// Load reads and validates the metadata of image id in dir. It returns an
// error wrapping ErrNotFound when the image is not published there.
func Load(dir, id string) (*Metadata, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("image id %q: %w", id, ErrInvalid)
	}
	_, mp := Paths(dir, id)
	m, err := readMetadata(mp)
	if err != nil {
		return nil, err
	}
	if m.ID != id {
		return nil, fmt.Errorf("%s: %w: holds id %s", mp, ErrInvalid, m.ID)
	}
	return m, nil
}

func readMetadata(path string) (*Metadata, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open image metadata: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxMetadataSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrInvalid, MaxMetadataSize)
	}
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// List returns the metadata of every image published in dir, newest first.
// Files that are not "<id>.json" are ignored; a metadata file that fails to
// parse is skipped and reported in the returned error (joined), so one bad
// file does not hide the others.
func List(dir string) ([]*Metadata, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list image store: %w", err)
	}
	var out []*Metadata
	var errs []error
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !ValidID(id) || !e.Type().IsRegular() {
			continue
		}
		m, err := Load(dir, id)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b *Metadata) int { return b.Created.Compare(a.Created) })
	return out, errors.Join(errs...)
}

// FindTag returns the newest image in dir that carries tag.
func FindTag(dir, tag string) (*Metadata, error) {
	all, err := List(dir)
	for _, m := range all {
		if m.HasTag(tag) {
			return m, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w (%v)", tag, ErrNotFound, err)
	}
	return nil, fmt.Errorf("image %s: %w", tag, ErrNotFound)
}

// tempPrefix starts every temporary file this package creates. Readers
// ignore it (it is not "<id>.json"), and CleanTemp removes stale ones.
const tempPrefix = ".tmp-"

// File modes of an image's files: a public image's are readable by
// everyone; a private image's by their owner (the gateway) only, and the
// setuid runtime opens them as root after checking the caller against
// the ACL. The image directory itself stays 0755: ids are not secret.
const (
	ModePublic  os.FileMode = 0o644
	ModePrivate os.FileMode = 0o600
)

// FileMode gives the mode of the files of an image with metadata m.
func FileMode(m *Metadata) os.FileMode {
	if m.Public() {
		return ModePublic
	}
	return ModePrivate
}

// CreateTemp creates a temporary file in dir, mode 0600, for an image's
// squashfs under construction. Publish it with Publish, or remove it.
func CreateTemp(dir string) (*os.File, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, tempPrefix+hex.EncodeToString(r[:])+".squashfs")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, ModePrivate)
	if err != nil {
		return nil, fmt.Errorf("create temporary image file: %w", err)
	}
	return f, nil
}

// SetModes gives the published files of image m (squashfs, chunk list,
// metadata) the mode its visibility asks for (FileMode), through
// descriptors opened without following symbolic links. A missing file is
// not an error.
func SetModes(dir string, m *Metadata) error {
	sq, mp := Paths(dir, m.ID)
	for _, p := range []string{sq, ChunksPath(dir, m.ID), mp} {
		if err := chmodNoFollow(p, FileMode(m)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("set mode of image %s: %w", m.ID, err)
		}
	}
	return nil
}

// chmodNoFollow sets the mode of the regular file at p (fchmod on a
// descriptor opened with O_NOFOLLOW; a symbolic link is an error).
func chmodNoFollow(p string, mode os.FileMode) error {
	f, err := openNoFollow(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", p)
	}
	if st.Mode().Perm() == mode {
		return nil
	}
	return f.Chmod(mode)
}

// Publish moves a finished squashfs (a file in dir, normally from
// CreateTemp) into place as <id>.squashfs and then writes the metadata,
// without a chunk list (PublishWithChunks).
// It hashes the file to fill m.SHA256 and m.Size, fsyncs the file, renames
// it, writes <id>.json atomically, and fsyncs the directory. If an image
// with this id is already published its squashfs is left untouched (it is
// the same content, and jobs may be using it) and tmpPath is removed. On
// failure the caller removes tmpPath; a squashfs renamed into place is
// removed again when its metadata cannot be written.
func Publish(dir, tmpPath string, m *Metadata) error {
	return PublishWithChunks(dir, tmpPath, m, nil)
}

// PublishWithChunks is Publish that also writes the image's chunk list cl
// (ComputeChunkListFile of tmpPath) as <id>.chunks, mode FileMode(m),
// after the squashfs and before the metadata: a reader that sees
// <id>.json sees the chunk list too. With cl nil no chunk list is
// written (and a stale one left by an incomplete image is removed). If
// the image is already published, its own file is kept and gets a chunk
// list computed from it (chunk size cl.ChunkSize) when it has none
// (EnsureChunkList).
func PublishWithChunks(dir, tmpPath string, m *Metadata, cl *ChunkList) error {
	sq, _ := Paths(dir, m.ID)
	cp := ChunksPath(dir, m.ID)
	if _, err := os.Lstat(sq); err == nil {
		old, lerr := Load(dir, m.ID)
		if lerr == nil {
			m.SHA256, m.Size = old.SHA256, old.Size
		} else if err := hashInto(sq, m); err != nil {
			return err
		}
		os.Remove(tmpPath)
		if cl != nil {
			if _, err := EnsureChunkList(dir, m, cl.ChunkSize); err != nil {
				return fmt.Errorf("publish image %s: %w", m.ID, err)
			}
		}
		return WriteMetadata(dir, m)
	}
	if err := hashInto(tmpPath, m); err != nil {
		return err
	}
	if cl != nil && cl.Size != m.Size {
		return fmt.Errorf("publish image %s: the chunk list describes %d bytes, the file has %d", m.ID, cl.Size, m.Size)
	}
	if err := chmodNoFollow(tmpPath, FileMode(m)); err != nil {
		return fmt.Errorf("publish image %s: %w", m.ID, err)
	}
	if cl == nil {
		if err := os.Remove(cp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("publish image %s: stale chunk list: %w", m.ID, err)
		}
	}
	if err := os.Rename(tmpPath, sq); err != nil {
		return fmt.Errorf("publish image %s: %w", m.ID, err)
	}
	err := syncDir(dir)
	if err == nil && cl != nil {
		err = WriteChunkListMode(dir, m.ID, cl, FileMode(m))
	}
	if err == nil {
		err = WriteMetadata(dir, m)
	}
	if err != nil {
		// Nothing half-published: the squashfs was new (see above), and
		// without its metadata it is no image.
		if cl != nil {
			os.Remove(cp)
		}
		os.Remove(sq)
	}
	return err
}

// EnsureChunkList gives published image m a chunk list when it has none
// (an image published before chunk lists) or an unusable one (invalid,
// or of another size than the file): computed from <id>.squashfs in
// chunks of chunkSize and written with the image's mode. It reports
// whether it wrote one. A valid list of another chunk size is kept.
func EnsureChunkList(dir string, m *Metadata, chunkSize int64) (bool, error) {
	if !ValidID(m.ID) {
		return false, fmt.Errorf("image id %q: %w", m.ID, ErrInvalid)
	}
	sq, _ := Paths(dir, m.ID)
	if cl, err := LoadChunkList(dir, m.ID); err == nil {
		if st, err := os.Lstat(sq); err == nil && st.Size() == cl.Size {
			return false, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrChunkList) {
		return false, err
	}
	cl, err := ComputeChunkListFile(sq, chunkSize)
	if err != nil {
		return false, err
	}
	if err := WriteChunkListMode(dir, m.ID, cl, FileMode(m)); err != nil {
		return false, err
	}
	return true, nil
}

// hashInto fsyncs the file at path and records its size and sha256 in m.
func hashInto(path string, m *Metadata) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("hash image %s: %w", m.ID, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync image %s: %w", m.ID, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("hash image %s: %w", m.ID, err)
	}
	m.Size, m.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	return nil
}

// WriteMetadata writes <id>.json atomically (temporary file, fsync,
// rename, directory fsync). The squashfs must already be in place; its
// mode (and its chunk list's) follows the metadata's visibility (FileMode), set before the new
// metadata is in place, and so does the new metadata file's from its
// creation.
func WriteMetadata(dir string, m *Metadata) error {
	if m.Format == "" {
		m.Format = FormatSquashfs
	}
	// The chunk list, written before the metadata, is pinned by it.
	m.ChunksSHA256 = ""
	if ValidID(m.ID) {
		if cl, err := LoadChunkList(dir, m.ID); err == nil {
			m.ChunksSHA256 = cl.Digest()
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write metadata of %s: %w", m.ID, err)
		}
	}
	if err := m.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return err
	}
	sq, mp := Paths(dir, m.ID)
	for _, p := range []string{sq, ChunksPath(dir, m.ID)} {
		if err := chmodNoFollow(p, FileMode(m)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write metadata of %s: %w", m.ID, err)
		}
	}
	tmp := filepath.Join(dir, tempPrefix+hex.EncodeToString(r[:])+".json")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, ModePrivate)
	if err != nil {
		return fmt.Errorf("write metadata of %s: %w", m.ID, err)
	}
	cherr := f.Chmod(FileMode(m)) // exact, whatever the umask
	_, werr := f.Write(append(b, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(cherr, werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write metadata of %s: %w", m.ID, err)
	}
	if err := os.Rename(tmp, mp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write metadata of %s: %w", m.ID, err)
	}
	return syncDir(dir)
}

// Remove unpublishes image id: the metadata first (so no reader finds a
// record without its file), then the chunk list and the start-up trace,
// then the squashfs. Jobs that already opened the squashfs keep reading
// it.
func Remove(dir, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("image id %q: %w", id, ErrInvalid)
	}
	sq, mp := Paths(dir, id)
	for _, p := range []string{mp, ChunksPath(dir, id), TracePath(dir, id), sq} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove image %s: %w", id, err)
		}
	}
	return syncDir(dir)
}

// CleanTemp removes temporary files in dir last modified before cutoff
// (left by a gateway that died while publishing). It returns the names
// removed.
func CleanTemp(dir string, cutoff time.Time) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("clean image store: %w", err)
	}
	var removed []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || info.ModTime().After(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
