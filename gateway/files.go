// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// Image files served over HTTP: GET (and HEAD) /images/{system}/<id>.squashfs
// and /images/{system}/<id>.chunks, with Range requests, so that nodes
// without the shared file system read images through the node cache
// (nodecache.HTTPSource). The same identities and ACLs as the API: a
// private image only to its ACL (and root); a private, unknown, not
// READY or missing image is the same 404.

// Cache-Control of served image files. Image files never change (an id
// names one content; a chunk list depends only on the file and its chunk
// size), so shared caches may keep public ones forever; private ones
// only the requester's own cache.
const (
	cachePublic  = "public, max-age=31536000, immutable"
	cachePrivate = "private"
)

// minServeRate is the slowest transfer a client is granted: a response
// may take its size at this rate beyond the server's write timeout.
const minServeRate = 1 << 20 // bytes per second

// imageFileName splits "<64 hex>.squashfs" or "<64 hex>.chunks".
func imageFileName(name string) (id, ext string, ok bool) {
	for _, ext := range []string{".squashfs", ".chunks"} {
		if id, found := strings.CutSuffix(name, ext); found && imagestore.ValidID(id) {
			return id, ext, true
		}
	}
	return "", "", false
}

// servedFile is an open image file, or a chunk list in memory, ready
// for http.ServeContent.
type servedFile struct {
	f       *os.File // nil for a chunk list
	content io.ReadSeeker
	size    int64
	mod     time.Time
	etag    string
	ctype   string
	cache   string
}

// ServeHTTP answers with Range handling, ETag and conditional requests
// as http.ServeContent does.
func (s *servedFile) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.f != nil {
		defer s.f.Close()
	}
	h := w.Header()
	h.Set("ETag", s.etag)
	h.Set("Content-Type", s.ctype)
	h.Set("Cache-Control", s.cache)
	h.Set("X-Content-Type-Options", "nosniff")
	// A whole big image at a modest rate outlasts the server's write
	// timeout: grant it time in proportion to its size.
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(5*time.Minute + time.Duration(s.size/minServeRate)*time.Second))
	http.ServeContent(w, r, "", s.mod, s.content)
}

// handleImageFile serves an image file or its chunk list.
func (g *Gateway) handleImageFile(c *call) (any, error) {
	name := c.r.PathValue("file")
	notFound := herr(http.StatusNotFound, "not found", "no image file %s on %s", name, c.sys)
	id, ext, ok := imageFileName(name)
	if !ok {
		return nil, notFound
	}
	sys := g.cfg.Systems[c.sys]
	if sys.Transfer != TransferLocal {
		return nil, herr(http.StatusNotFound, "not found", "system %s publishes its images to %s over ssh: this gateway cannot serve their files", c.sys, sys.SSH.Host)
	}
	var rec *imageRecord
	err := g.db.view(func(t tx) (err error) { rec, err = t.getImage(c.sys, id); return err })
	if errors.Is(err, errNoKey) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("image file %s: %w", name, err)
	}
	if rec.Status != api.StateReady || !rec.visible(c.id) {
		return nil, notFound
	}
	f, st, err := openImageFile(sys.ImageDir, name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			// A symbolic link, a directory, a FIFO planted in the image
			// directory, or an I/O error: never served, always logged.
			g.log.Error("image file not served", "system", c.sys, "file", name, "err", err)
		}
		return nil, notFound
	}
	out := &servedFile{mod: st.ModTime(), cache: cachePrivate}
	if rec.Public {
		out.cache = cachePublic
	}
	if ext == ".squashfs" {
		if rec.Size != 0 && st.Size() != rec.Size {
			f.Close()
			g.log.Error("image file not served: its size disagrees with the database", "system", c.sys, "id", id,
				"size", st.Size(), "want", rec.Size)
			return nil, notFound
		}
		out.f, out.content, out.size = f, f, st.Size()
		out.etag, out.ctype = `"`+id+`"`, "application/octet-stream"
		return out, nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, imagestore.MaxChunkListSize+1))
	if err != nil || len(b) > imagestore.MaxChunkListSize {
		g.log.Error("chunk list not served", "system", c.sys, "id", id, "bytes", len(b), "err", err)
		return nil, notFound
	}
	sum := sha256.Sum256(b)
	out.content, out.size = bytes.NewReader(b), int64(len(b))
	out.etag, out.ctype = `"`+hex.EncodeToString(sum[:])+`"`, "text/plain; charset=utf-8"
	return out, nil
}

// openImageFile opens name in dir without following a symbolic link and
// without blocking on a FIFO; it must be a regular file.
func openImageFile(dir, name string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file (%v)", name, st.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}
