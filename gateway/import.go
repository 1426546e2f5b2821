// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/gateway/pull"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/squashreader"
)

// itypeCustom is the type of imported images (Shifter's custom:).
const itypeCustom = "custom"

// maxImportPath bounds the path of an imported file (PATH_MAX).
const maxImportPath = 4096

// ParseCustomTag is api.ParseCustomTag (shared with the runtime).
func ParseCustomTag(raw string) (string, error) { return api.ParseCustomTag(raw) }

// isAdmin reports whether id administers the system.
func (g *Gateway) isAdmin(system string, id *Identity) bool {
	if id == nil || !id.Authenticated {
		return false
	}
	for _, a := range g.cfg.Systems[system].Admins {
		if (id.User != "" && a == id.User) || a == strconv.FormatUint(uint64(id.UID), 10) {
			return true
		}
	}
	return false
}

// handleImport queues the import of a squashfs file (POST
// /api/doimport/{system}/custom/{tag}/, Shifter's doimport) and returns
// its record.
func (g *Gateway) handleImport(c *call) (any, error) {
	if c.itype != itypeCustom {
		return nil, herr(http.StatusBadRequest, "bad request", "image type %q: imported images are of type %q", c.itype, itypeCustom)
	}
	if ok, why := mayImport(g.cfg.ImportUsers, c.id); !ok {
		return nil, herr(http.StatusForbidden, "forbidden", "%s", why)
	}
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		return nil, herr(http.StatusBadRequest, "bad request", "read request body: %v", err)
	}
	req, err := parseImportRequest(body)
	if err != nil {
		return nil, herr(http.StatusBadRequest, "bad request", "%v", err)
	}
	uids, gids, err := parseRequestACL(req.AllowedUIDs, req.AllowedGIDs)
	if err != nil {
		return nil, err
	}
	return g.submitImport(c.sys, c.tag, c.id, req.FilePath, uids, gids)
}

// parseImportRequest parses and checks a doimport body.
func parseImportRequest(body []byte) (*api.ImportRequest, error) {
	var req api.ImportRequest
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, errors.New(`request body: want {"filepath": "/path/image.squashfs", "format": "squashfs"}`)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("request body: trailing data after the JSON object")
	}
	switch {
	case req.FilePath == "":
		return nil, errors.New("filepath: required (the absolute path of the image file on the gateway host)")
	case len(req.FilePath) > maxImportPath || strings.ContainsRune(req.FilePath, 0):
		return nil, errors.New("filepath: too long or holds a NUL")
	case !filepath.IsAbs(req.FilePath):
		return nil, fmt.Errorf("filepath %q: must be an absolute path", req.FilePath)
	case req.Format == "":
		return nil, fmt.Errorf("format: required (%q)", imagestore.FormatSquashfs)
	case req.Format != imagestore.FormatSquashfs:
		return nil, fmt.Errorf("format %q: only %q images can be imported", req.Format, imagestore.FormatSquashfs)
	}
	return &req, nil
}

// submitImport records an import job and queues it. A custom tag
// belongs to whoever imported it, publicly or privately: another user
// (but an administrator of the system) can import it neither publicly
// nor privately, so nobody's import shadows anybody's tag in lookups.
// An import of the tag already in progress (any scope) is answered with
// its record when it is the same user's of the same file and scope, else
// refused (409). Submissions are serialized (importMu): the checks span
// keys that concurrent submissions would create.
func (g *Gateway) submitImport(sys, tag string, id *Identity, path string, uids, gids []uint32) (any, error) {
	g.importMu.Lock()
	defer g.importMu.Unlock()
	requested := len(uids)+len(gids) > 0
	if requested && !slices.Contains(uids, id.UID) {
		uids = append([]uint32{id.UID}, uids...)
	}
	scope := ""
	if requested {
		scope = scopeOf(id.UID)
	}
	admin := g.isAdmin(sys, id)
	now := g.now()
	j := &jobRecord{System: sys, Itype: itypeCustom, Tag: tag, Scope: scope}
	var out api.Image
	var queue bool
	err := g.db.update(func(t tx) error {
		queue = false
		// Every scope of the tag: its jobs, then its bindings.
		jobs, err := t.jobs(append(key(pfxJob, sys, itypeCustom, tag), 0))
		if err != nil {
			return err
		}
		for _, cur := range jobs {
			if terminal(cur.Status) {
				continue
			}
			if string(cur.key()) == string(j.key()) && cur.UID == id.UID && cur.FilePath == path {
				out = jobView(cur, nil)
				return nil
			}
			return herr(http.StatusConflict, "in progress", "custom:%s is being imported right now; try again when it is done", tag)
		}
		if !admin {
			binds, err := t.tagBindings(sys, itypeCustom, tag)
			if err != nil {
				return err
			}
			for _, b := range binds {
				if b.Importer != scopeOf(id.UID) {
					return herr(http.StatusForbidden, "forbidden", "custom:%s was imported by another user; only they or an administrator of %s may replace it", tag, sys)
				}
			}
		}
		n, err := t.nextSeq()
		if err != nil {
			return err
		}
		*j = jobRecord{System: sys, Itype: itypeCustom, Tag: tag, Scope: scope, UID: id.UID, GID: id.GID, User: id.User,
			Groups: slices.Clone(id.Groups), UserACL: uids, GroupACL: gids, Requested: requested,
			FilePath: path, Format: imagestore.FormatSquashfs,
			Status: api.StatePending, Message: "import requested; waiting for a worker", Created: now, Updated: now, Seq: n}
		if err := t.put(j.key(), j); err != nil {
			return err
		}
		queue = true
		return nil
	})
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			return nil, err
		}
		return nil, fmt.Errorf("record import: %w", err)
	}
	if !queue {
		g.m.requests.WithLabelValues(sys, "joined").Inc()
		return out, nil
	}
	g.m.requests.WithLabelValues(sys, "queued").Inc()
	g.log.Info("import queued", "system", sys, "tag", tag, "uid", id.UID, "path", path, "private", scope != "")
	g.enqueue(string(j.key()), sys, j.Seq, nil)
	return jobView(j, nil), nil
}

// importer is the Importer of the binding a job makes: the requester's
// scope for an import, "" for a pull.
func (j *jobRecord) importer() string {
	if j.Itype != itypeCustom {
		return ""
	}
	return scopeOf(j.UID)
}

// importedFile is an import's copy of the user's file, in the image
// store's temporary space, hashed and checked.
type importedFile struct {
	tmp  string // removed once published (or by cleanup)
	id   string // hex sha256 of the copy
	size int64
	cl   *imagestore.ChunkList
	used bool // handed to Publish
}

// errImportChanged: the copy changed between its hash and its
// publication.
var errImportChanged = errors.New("the copy of the image changed before it was published")

// prepareImport copies the user's file, opened with the user's rights
// (openAsUser), into the store's temporary space while hashing the bytes
// copied, and checks the copy: a squashfs image that squashreader reads
// entirely (superblock, tables, every directory). The original is never
// read again, so a file changed meanwhile gives a consistent copy or an
// invalid image, never a hash of other bytes than those published.
func (g *Gateway) prepareImport(ctx context.Context, j *jobRecord, tr Transfer, log *slog.Logger) (*importedFile, error) {
	src, err := openAsUser(j.FilePath, j.UID, j.GID, j.Groups)
	if err != nil {
		return nil, fmt.Errorf("open the image file with the requester's rights: %w", err)
	}
	defer src.Close()
	st, err := fstat(src)
	if err != nil {
		return nil, err
	}
	if st.Size > g.cfg.MaxImageSize {
		return nil, fmt.Errorf("image file %s: %d bytes, more than max_image_size (%d)", j.FilePath, st.Size, g.cfg.MaxImageSize)
	}
	// A quick look at the original spares copying what is plainly no
	// squashfs (up to max_image_size of it); the copy is checked fully.
	if err := quickSquashfsCheck(src, st.Size); err != nil {
		return nil, fmt.Errorf("%s is not a usable squashfs image: %w", j.FilePath, err)
	}
	g.retryLeftovers()
	f, err := tr.CreateTemp()
	if err != nil {
		return nil, err
	}
	imp := &importedFile{tmp: f.Name()}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			g.removeTemp(imp.tmp)
		}
	}()
	h := sha256.New()
	last := time.Time{}
	cw := &pull.CountWriter{W: io.MultiWriter(f, h), Fn: func(n int64) {
		if now := g.now(); now.Sub(last) >= 250*time.Millisecond {
			last = now
			j.Done, j.Total = n, st.Size
			if err := g.saveJob(j); err != nil {
				log.Error("record import progress", "err", err)
			}
		}
	}}
	n, err := io.Copy(cw, io.LimitReader(ctxReader{ctx, src}, g.cfg.MaxImageSize+1))
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", j.FilePath, err)
	}
	if n > g.cfg.MaxImageSize {
		return nil, fmt.Errorf("image file %s: more than max_image_size (%d) bytes", j.FilePath, g.cfg.MaxImageSize)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("sync the copy of %s: %w", j.FilePath, err)
	}
	imp.id, imp.size = hex.EncodeToString(h.Sum(nil)), n
	if g.hookImportCopied != nil {
		g.hookImportCopied(j)
	}
	// The gateway's own context too: a stop cancels it first, and the
	// job's context (its child) a moment later.
	if err := cmp.Or(ctx.Err(), g.ctx.Err()); err != nil {
		return nil, err
	}
	if err := checkSquashfs(f, n); err != nil {
		return nil, fmt.Errorf("%s is not a usable squashfs image: %w", j.FilePath, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close the copy of %s: %w", j.FilePath, err)
	}
	if imp.cl, err = imagestore.ComputeChunkListFile(imp.tmp, g.cfg.ChunkSize); err != nil {
		return nil, err
	}
	if imp.cl.Size != n {
		return nil, fmt.Errorf("%w: %d bytes copied, %d hashed", errImportChanged, n, imp.cl.Size)
	}
	ok = true
	return imp, nil
}

// cleanup removes the copy unless it was published.
func (g *Gateway) cleanupImport(imp *importedFile) {
	if imp != nil && !imp.used {
		g.removeTemp(imp.tmp)
	}
}

// quickSquashfsCheck reads a squashfs 4.0 superblock's magic, version
// and bytes_used (which the file must hold) at the start of ra.
func quickSquashfsCheck(ra io.ReaderAt, size int64) error {
	var sb [96]byte
	if size < int64(len(sb)) {
		return fmt.Errorf("%d bytes, smaller than a squashfs superblock", size)
	}
	if _, err := ra.ReadAt(sb[:], 0); err != nil {
		return fmt.Errorf("read the superblock: %w", err)
	}
	if binary.LittleEndian.Uint32(sb[0:4]) != 0x73717368 {
		return errors.New("no squashfs superblock (magic \"hsqs\")")
	}
	if major, minor := binary.LittleEndian.Uint16(sb[28:30]), binary.LittleEndian.Uint16(sb[30:32]); major != 4 || minor != 0 {
		return fmt.Errorf("squashfs version %d.%d, want 4.0", major, minor)
	}
	if used := binary.LittleEndian.Uint64(sb[40:48]); used > uint64(size) {
		return fmt.Errorf("the superblock says %d bytes, the file has %d (truncated?)", used, size)
	}
	return nil
}

// checkSquashfs reads the image's superblock and tables and walks every
// directory: a file that is no squashfs, or a truncated or corrupt one,
// is refused before anything is published.
func checkSquashfs(ra io.ReaderAt, size int64) error {
	r, err := squashreader.Open(ra, size, &squashreader.Options{Readahead: -1, DataCacheSize: -1})
	if err != nil {
		return err
	}
	defer r.Close()
	return fs.WalkDir(r.FS(), ".", func(_ string, _ fs.DirEntry, err error) error { return err })
}

// publishImport publishes an import's copy as image imp.id, unless that
// image is published already (the same bytes: only its record and
// metadata change). Concurrent imports of one content share one
// publication (singleflight in runJob).
func (g *Gateway) publishImport(ctx context.Context, system string, tr Transfer, imp *importedFile, fk string, log *slog.Logger) (*imagestore.Metadata, error) {
	if m, err := tr.Load(ctx, imp.id); err == nil {
		log.Info("image already published; updating its record only", "id", imp.id)
		if _, err := tr.EnsureChunks(ctx, m, g.cfg.ChunkSize); err != nil {
			log.Error("write the chunk list of a published image", "id", imp.id, "err", err)
		}
		return m, nil
	} else if !errors.Is(err, imagestore.ErrNotFound) && !errors.Is(err, imagestore.ErrInvalid) {
		return nil, err
	}
	if imp.used {
		return nil, fmt.Errorf("image %s: %w", imp.id, errRemovedDuringPull)
	}
	g.progress(fk, api.StateTransfer, "publishing the image", 0, 0, true)
	if err := tr.Remove(ctx, imp.id); err != nil {
		return nil, err
	}
	meta := &imagestore.Metadata{ID: imp.id, Format: imagestore.FormatSquashfs,
		Tags: []string{}, UserACL: []uint32{0}, Created: g.now().UTC()}
	imp.used = true
	if err := tr.Publish(ctx, imp.tmp, meta, imp.cl); err != nil {
		g.removeTemp(imp.tmp)
		return nil, err
	}
	// Publish hashed the copy again: it must be what was hashed while
	// copying (the temporary file is the gateway's, mode 0600).
	if meta.SHA256 != imp.id || meta.Size != imp.size {
		tr.Remove(ctx, imp.id)
		return nil, fmt.Errorf("%w: hashed %s (%d bytes), published %s (%d bytes)", errImportChanged, imp.id, imp.size, meta.SHA256, meta.Size)
	}
	g.m.bytes.WithLabelValues(system).Add(float64(meta.Size))
	return meta, nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// importMessage is the user-facing reason of a failed import. The
// queue shows a public import's record to everyone: the file's path,
// which may tell about the requester's work, is written FILE.
func importMessage(err error, path string) string {
	msg := strings.ReplaceAll(err.Error(), path, "FILE")
	switch {
	case errors.Is(err, os.ErrPermission):
		return "permission denied: the image file must be readable by the requester: " + msg
	case errors.Is(err, fs.ErrNotExist):
		return "no such file (the path is read on the gateway host): " + msg
	case errors.Is(err, syscall.ELOOP):
		return "the path goes through a magic link (/proc/...) or too many symbolic links: " + msg
	}
	return msg
}
