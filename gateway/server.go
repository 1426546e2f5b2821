// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// maxBody bounds request bodies.
const maxBody = 64 << 10

// httpError is an error with an HTTP status.
type httpError struct {
	code  int
	short string
	msg   string
}

func (e *httpError) Error() string { return e.msg }

func herr(code int, short, format string, a ...any) *httpError {
	return &httpError{code: code, short: short, msg: fmt.Sprintf(format, a...)}
}

// writeJSON writes v with an exact Content-Length: NERSC's C shifterimg
// takes a body as complete only when it has received Content-Length
// bytes, so a chunked answer (net/http's for bodies past 2 KiB) would
// print nothing, and it wants the Content-Type "application/json"
// exactly (no parameters).
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		code, buf = http.StatusInternalServerError, bytes.Buffer{}
		fmt.Fprintf(&buf, "{\"status\": 500, \"error\": \"internal error\", \"message\": %q}\n", "encode answer: "+err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func writeErr(w http.ResponseWriter, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{code: http.StatusInternalServerError, short: "internal error", msg: err.Error()}
	}
	writeJSON(w, he.code, api.Error{Status: he.code, Error: he.short, Message: he.msg})
}

// Handler returns the HTTP handler of the API, the image files
// (/images/, files.go) and /metrics.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(f func(*http.Request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			v, err := f(r)
			if err != nil {
				var he *httpError
				if !errors.As(err, &he) {
					g.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
				}
				writeErr(w, err)
				return
			}
			if sv, ok := v.(http.Handler); ok { // an image file
				sv.ServeHTTP(w, r)
				return
			}
			writeJSON(w, http.StatusOK, v)
		}
	}
	for _, m := range []string{"POST", "GET"} {
		mux.HandleFunc(m+" /api/expire/{system}/{itype}/{tag...}", h(g.endpoint(withRef, accessAdmin, g.handleExpire)))
		mux.HandleFunc(m+" /api/autoexpire/{system}/{rest...}", h(g.endpoint(systemOnly, accessAdmin, g.handleAutoexpire)))
	}
	mux.HandleFunc("POST /api/pull/{system}/{itype}/{tag...}", h(g.endpoint(withRef, accessUser, g.handlePull)))
	mux.HandleFunc("GET /api/pull/{system}/{itype}/{tag...}", h(g.endpoint(withRef, accessAnyone, g.handlePullStatus)))
	mux.HandleFunc("POST /api/doimport/{system}/{itype}/{tag...}", h(g.endpoint(withRef, accessUser, g.handleImport)))
	mux.HandleFunc("GET /api/doimport/{system}/{itype}/{tag...}", h(g.endpoint(withRef, accessAnyone, g.handlePullStatus)))
	mux.HandleFunc("GET /api/lookup/{system}/{itype}/{tag...}", h(g.endpoint(withRef, accessAnyone, g.handleLookup)))
	mux.HandleFunc("GET /api/list/{system}/{rest...}", h(g.endpoint(systemOnly, accessUser, g.handleList)))
	mux.HandleFunc("GET /api/queue/{system}/{rest...}", h(g.endpoint(systemOnly, accessAnyone, g.handleQueue)))
	mux.HandleFunc("GET /api/metrics/{system}/{rest...}", h(g.endpoint(systemOnly, accessAdmin, g.handleLookupLog)))
	// GET matches HEAD too.
	mux.HandleFunc("GET /images/{system}/{file}", h(g.endpoint(systemOnly, accessAnyone, g.handleImageFile)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "shifter-gateway: {lookup,pull,doimport,list,queue,expire,autoexpire,metrics} under /api/, image files under /images/; see docs/api.md")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		allow := map[string]string{"pull": "GET, POST", "doimport": "GET, POST", "lookup": "GET", "list": "GET", "queue": "GET",
			"metrics": "GET", "expire": "GET, POST", "autoexpire": "GET, POST"}
		if f := strings.SplitN(r.URL.Path, "/", 4); len(f) == 4 && f[1] == "api" && allow[f[2]] != "" &&
			!strings.Contains(allow[f[2]], r.Method) {
			w.Header().Set("Allow", allow[f[2]])
			writeErr(w, herr(http.StatusMethodNotAllowed, "method not allowed", "%s %s: allowed: %s", r.Method, r.URL.Path, allow[f[2]]))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/images/") && r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeErr(w, herr(http.StatusMethodNotAllowed, "method not allowed", "%s %s: allowed: GET, HEAD", r.Method, r.URL.Path))
			return
		}
		writeErr(w, herr(http.StatusNotFound, "not found", "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw, code: http.StatusOK}
		start := time.Now()
		defer func() {
			// Never headers: the munge credential travels in one.
			g.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", w.code,
				"seconds", time.Since(start).Seconds(), "remote", r.RemoteAddr)
		}()
		// Refuse what ServeMux would clean or redirect: dot segments,
		// empty segments; and under /images/ any escape.
		raw := r.URL.EscapedPath()
		if strings.HasPrefix(raw, "/images/") {
			if r.URL.RawPath != "" || strings.Contains(raw, "%") || !cleanPath(raw) { // only <id>.squashfs and <id>.chunks are files
				writeErr(w, herr(http.StatusNotFound, "not found", "no image file %q", raw))
				return
			}
			mux.ServeHTTP(w, r)
			return
		}
		// Percent-escapes are decoded once per segment, as Shifter's
		// server decodes them (its C shifterimg escapes the type and
		// tag: ubuntu%3A22.04, nersc%2Fapp%3A1), and the result is
		// checked as an unescaped path is.
		dec, err := decodeAPIPath(raw)
		if err != nil {
			writeErr(w, herr(http.StatusBadRequest, "bad request", "malformed path %q: %v", raw, err))
			return
		}
		if dec != r.URL.Path || r.URL.RawPath != "" {
			r2 := new(http.Request)
			*r2 = *r
			u := *r.URL
			u.Path, u.RawPath = dec, ""
			r2.URL = &u
			r = r2
		}
		mux.ServeHTTP(w, r)
	})
}

// cleanPath reports whether an (escaped or decoded) path has no empty
// and no dot segments.
func cleanPath(p string) bool {
	return !strings.Contains(p, "//") && !strings.Contains(p+"/", "/../") && !strings.Contains(p+"/", "/./")
}

// decodeAPIPath decodes the percent-escapes of an escaped request path,
// each segment once. A decoded "/" is allowed only in the image
// reference of /api/{verb}/{system}/{itype}/{tag} (Shifter's tags hold
// "/": nersc/app:1, escaped by its client as nersc%2Fapp%3A1); control
// characters (NUL included), empty and dot segments are refused after
// decoding as before it.
func decodeAPIPath(raw string) (string, error) {
	if !cleanPath(raw) {
		return "", errors.New("empty or dot segment")
	}
	if !strings.Contains(raw, "%") {
		return raw, nil
	}
	segs := strings.Split(raw, "/")
	for i, s := range segs {
		if !strings.Contains(s, "%") {
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return "", fmt.Errorf("segment %d: %w", i, err)
		}
		for _, c := range d {
			if c < ' ' || c == 0x7f {
				return "", fmt.Errorf("segment %d: control character %q", i, c)
			}
		}
		// segs: "", "api", verb, system, itype, tag...
		if strings.Contains(d, "/") && !(i >= 5 && segs[1] == "api") {
			return "", fmt.Errorf("segment %d: an escaped \"/\" is allowed only in the image reference", i)
		}
		segs[i] = d
	}
	dec := strings.Join(segs, "/")
	if !cleanPath(dec) {
		return "", errors.New("empty or dot segment after decoding")
	}
	return dec, nil
}

// system returns the named system or a 404.
func (g *Gateway) system(r *http.Request) (string, *System, error) {
	name := r.PathValue("system")
	s, ok := g.cfg.Systems[name]
	if !ok {
		return "", nil, herr(http.StatusNotFound, "unknown system", "no system %q on this gateway", name)
	}
	if rest := r.PathValue("rest"); rest != "" {
		return "", nil, herr(http.StatusNotFound, "not found", "no such endpoint: %s", r.URL.Path)
	}
	return name, s, nil
}

// call is an API request past the preamble every endpoint shares: its
// path checked (the system, and for withRef endpoints the image type
// and tag) and its caller identified with the access it needs.
type call struct {
	r          *http.Request
	sys        string
	itype, tag string // withRef endpoints
	id         *Identity
}

// The paths of endpoints.
const (
	systemOnly = false // /api/X/{system}/
	withRef    = true  // /api/X/{system}/{itype}/{tag}
)

// access is what an endpoint asks of its caller.
type access int

const (
	accessAnyone access = iota // anonymous callers too
	accessUser                 // an authenticated caller
	accessAdmin                // an administrator of the system
)

// endpoint runs the preamble of a request (path, then identity) and
// then f.
func (g *Gateway) endpoint(ref bool, need access, f func(*call) (any, error)) func(*http.Request) (any, error) {
	return func(r *http.Request) (any, error) {
		c := &call{r: r}
		var err error
		if ref {
			c.sys, c.itype, c.tag, err = g.imageRef(r)
		} else {
			c.sys, _, err = g.system(r)
		}
		if err != nil {
			return nil, err
		}
		switch need {
		case accessAnyone:
			c.id, err = g.identify(r, c.sys)
		case accessUser:
			c.id, err = g.requireAuth(r, c.sys)
		case accessAdmin:
			c.id, err = g.requireAdmin(r, c.sys)
		}
		if err != nil {
			return nil, err
		}
		return f(c)
	}
}

// imageRef returns the system, type and normalized tag of a request.
func (g *Gateway) imageRef(r *http.Request) (string, string, string, error) {
	sys, _, err := g.system(r)
	if err != nil {
		return "", "", "", err
	}
	itype := r.PathValue("itype")
	rawTag := strings.TrimSuffix(r.PathValue("tag"), "/")
	var tag string
	switch itype {
	case itypeDocker:
		tag, err = ParseTag(rawTag)
	case itypeCustom:
		tag, err = ParseCustomTag(rawTag)
	default:
		return "", "", "", herr(http.StatusBadRequest, "bad request", "image type %q: want %q or %q", itype, itypeDocker, itypeCustom)
	}
	if err != nil {
		return "", "", "", herr(http.StatusBadRequest, "bad image reference", "%v", err)
	}
	return sys, itype, tag, nil
}

// identify authenticates the caller: SO_PEERCRED on unix sockets, the
// munge credential in the "authentication" header on TCP, or anonymous.
func (g *Gateway) identify(r *http.Request, system string) (*Identity, error) {
	if id, ok := peerIdentity(r.Context()); ok {
		c := *id
		return &c, nil
	}
	if g.auth != nil {
		id, err := g.auth(r, system)
		if err != nil {
			return nil, herr(http.StatusUnauthorized, "unauthorized", "%v", err)
		}
		if id == nil {
			id = &Identity{Source: "none"}
		}
		return id, nil
	}
	cred := r.Header.Get(MungeHeader)
	if cred == "" || g.cfg.Authentication == AuthNone {
		return &Identity{Source: "none"}, nil
	}
	id, err := g.unmunge.Decode(r.Context(), g.cfg.Systems[system].MungeSocket, cred)
	if err != nil {
		if errors.Is(err, errUnauthenticated) {
			return nil, herr(http.StatusUnauthorized, "unauthorized", "%v", err)
		}
		return nil, err
	}
	resolveIdentity(id)
	return id, nil
}

func (g *Gateway) requireAuth(r *http.Request, system string) (*Identity, error) {
	id, err := g.identify(r, system)
	if err != nil {
		return nil, err
	}
	if !id.Authenticated {
		return nil, herr(http.StatusUnauthorized, "unauthorized", "this request needs a munge credential in the %q header (or the gateway's unix socket)", MungeHeader)
	}
	return id, nil
}

func (g *Gateway) requireAdmin(r *http.Request, system string) (*Identity, error) {
	id, err := g.requireAuth(r, system)
	if err != nil {
		return nil, err
	}
	for _, a := range g.cfg.Systems[system].Admins {
		if (id.User != "" && a == id.User) || a == strconv.FormatUint(uint64(id.UID), 10) {
			return id, nil
		}
	}
	return nil, herr(http.StatusForbidden, "forbidden", "%s is not an administrator of system %s", id.User+"/"+strconv.FormatUint(uint64(id.UID), 10), system)
}

// handlePull queues a pull (or joins the caller's in-flight one) and
// returns its record.
func (g *Gateway) handlePull(c *call) (any, error) {
	sys, itype, tag, id := c.sys, c.itype, c.tag, c.id
	if itype != itypeDocker {
		return nil, herr(http.StatusBadRequest, "bad request", "image type %q: %s images are imported (POST /api/doimport/%s/%s/TAG/), not pulled", itype, itype, sys, itype)
	}
	var req api.PullRequest
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		return nil, herr(http.StatusBadRequest, "bad request", "read request body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, herr(http.StatusBadRequest, "bad request", "request body: %v", err)
		}
	}
	if len(req.AuthorizedLocations) > 0 && id.Source != "peercred" && id.Source != "test" {
		return nil, herr(http.StatusBadRequest, "bad request", "registry credentials must travel inside the munge credential over TCP, not in the request body")
	}
	uids, gids, err := parseRequestACL(req.AllowedUIDs, req.AllowedGIDs)
	if err != nil {
		return nil, err
	}
	creds := map[string]string{}
	for k, v := range req.AuthorizedLocations {
		creds[k] = v
	}
	for k, v := range id.Creds {
		creds[k] = v
	}
	if len(creds) == 0 {
		creds = nil
	}
	return g.submit(sys, itype, tag, id, uids, gids, creds)
}

// submit implements the pull decision: join an in-flight job, report a
// recent result, or queue a new job.
func (g *Gateway) submit(sys, itype, tag string, id *Identity, uids, gids []uint32, creds map[string]string) (any, error) {
	requested := len(uids)+len(gids) > 0
	if requested && !slices.Contains(uids, id.UID) {
		uids = append([]uint32{id.UID}, uids...)
	}
	scope := ""
	if requested || creds != nil {
		scope = scopeOf(id.UID)
	}
	now := g.now()
	var out api.Image
	var queue bool
	var outcome string
	var joinedSeq uint64
	j := &jobRecord{System: sys, Itype: itype, Tag: tag, Scope: scope}
	k := string(j.key())
	err := g.db.update(func(t tx) error {
		queue, outcome = false, ""
		cur, err := t.getJob(j.key())
		if err != nil && !errors.Is(err, errNoKey) {
			return err
		}
		if cur != nil {
			switch {
			case !terminal(cur.Status):
				out, outcome, joinedSeq = jobView(cur, nil), "joined", cur.Seq
				return nil
			case cur.Status == api.StateFailure && now.Sub(cur.Finished) < g.cfg.FailureHold.D():
				out, outcome = jobView(cur, nil), "cached"
				return nil
			case cur.Status == api.StateReady && now.Sub(cur.Finished) < g.cfg.PullUpdateTimeout.D() &&
				slices.Equal(cur.UserACL, uids) && slices.Equal(cur.GroupACL, gids):
				if v, err := g.readyView(t, cur, id); err == nil {
					out, outcome = jobView(cur, v), "cached"
					return nil
				} else if !errors.Is(err, errNoKey) {
					return err
				}
			}
		}
		n, err := t.nextSeq()
		if err != nil {
			return err
		}
		*j = jobRecord{System: sys, Itype: itype, Tag: tag, Scope: scope, UID: id.UID, GID: id.GID, User: id.User,
			UserACL: uids, GroupACL: gids, Requested: requested, HasCreds: creds != nil,
			Status: api.StateInit, Message: "pull requested", Created: now, Updated: now, Seq: n}
		if err := t.put(j.key(), j); err != nil {
			return err
		}
		queue, outcome = true, "queued"
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record pull: %w", err)
	}
	g.m.requests.WithLabelValues(sys, outcome).Inc()
	if !queue {
		if creds != nil && outcome == "joined" {
			g.mu.Lock()
			if g.queued[k] {
				g.creds[credKey(k, joinedSeq)] = creds // fresher credentials for a job not started yet
			}
			g.mu.Unlock()
		}
		return out, nil
	}
	g.log.Info("pull queued", "system", sys, "tag", tag, "uid", id.UID, "private", scope != "")
	j.Status, j.Message = api.StatePending, "waiting for a worker"
	if err := g.db.update(func(t tx) error {
		cur, err := t.getJob(j.key())
		if err != nil || cur.Status != api.StateInit {
			return err
		}
		cur.Status, cur.Message = j.Status, j.Message
		return t.put(cur.key(), cur)
	}); err != nil {
		return nil, fmt.Errorf("record pull: %w", err)
	}
	g.enqueue(k, sys, j.Seq, creds)
	return jobView(j, nil), nil
}

// callerJob returns the job a caller sees for a tag: the newer of their
// own private pull and the shared public one.
func (g *Gateway) callerJob(t tx, sys, itype, tag string, id *Identity) (*jobRecord, error) {
	pub, err := t.getJob(key(pfxJob, sys, itype, tag, ""))
	if err != nil && !errors.Is(err, errNoKey) {
		return nil, err
	}
	if id.Authenticated {
		own, err := t.getJob(key(pfxJob, sys, itype, tag, scopeOf(id.UID)))
		if err != nil && !errors.Is(err, errNoKey) {
			return nil, err
		}
		if own != nil && (pub == nil || own.Seq > pub.Seq) {
			return own, nil
		}
	}
	if pub == nil {
		return nil, errNoKey
	}
	return pub, nil
}

// readyView gives a caller's view of the image a READY job made, through
// the tag binding the job made; errNoKey when that binding is gone or
// names another image, or the caller may not see it.
func (g *Gateway) readyView(t tx, j *jobRecord, id *Identity) (*api.Image, error) {
	b, err := t.getBind(key(pfxBind, j.System, j.Itype, j.Tag, j.bindScope()))
	if err != nil {
		return nil, err
	}
	img, err := t.getImage(j.System, b.ID)
	if err != nil {
		return nil, err
	}
	if b.ID != j.ID || !b.visible(id, img) {
		return nil, errNoKey
	}
	vis, err := t.imageVisible(img, id)
	if err != nil {
		return nil, err
	}
	v := img.tagView(id, b, vis, g.cfg.Expiration.D())
	return &v, nil
}

// handlePullStatus reports the caller's pull of a tag without side effects.
func (g *Gateway) handlePullStatus(c *call) (any, error) {
	sys, itype, tag, id := c.sys, c.itype, c.tag, c.id
	var out api.Image
	err := g.db.view(func(t tx) error {
		j, err := g.callerJob(t, sys, itype, tag, id)
		if err != nil {
			return err
		}
		var v *api.Image
		if j.Status == api.StateReady {
			if v, err = g.readyView(t, j, id); err != nil {
				return err
			}
		}
		out = jobView(j, v)
		return nil
	})
	if errors.Is(err, errNoKey) {
		return nil, herr(http.StatusNotFound, "not found", "no pull of %s on %s", tag, sys)
	}
	return out, err
}

// handleLookup returns the READY image of a tag, if the caller may see
// it, and refreshes its expiration.
func (g *Gateway) handleLookup(c *call) (any, error) {
	sys, itype, tag, id := c.sys, c.itype, c.tag, c.id
	now := g.now()
	var rec *imageRecord
	var bind *bindRecord
	var out api.Image
	err := g.db.update(func(t tx) error {
		b, img, err := t.resolveTag(sys, itype, tag, id)
		if err != nil {
			return err
		}
		img.LastLookup, b.Looked = now, now
		if exp := now.Add(g.cfg.Expiration.D()); exp.After(img.Expiration) {
			img.Expiration = exp
		}
		if err := t.putImage(img); err != nil {
			return err
		}
		if err := t.put(b.key(), b); err != nil {
			return err
		}
		vis, err := t.imageVisible(img, id)
		if err != nil {
			return err
		}
		rec, bind, out = img, b, img.tagView(id, b, vis, g.cfg.Expiration.D())
		return nil
	})
	if errors.Is(err, errNoKey) {
		g.m.lookups.WithLabelValues(sys, "not_found").Inc()
		return nil, herr(http.StatusNotFound, "not found", "image %s not found on %s", tag, sys)
	}
	if err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	g.m.lookups.WithLabelValues(sys, "found").Inc()
	if g.cfg.LookupLog {
		row := lookupRow{Time: unixSeconds(now), User: id.User, UID: id.UID, Type: itype, Tag: tag, ID: rec.ID,
			Scope: bind.Scope, UserACL: bind.UserACL, GroupACL: bind.GroupACL}
		if err := addLookup(g.db, sys, row, time.Now()); err != nil {
			g.log.Error("log lookup", "err", err)
		}
	}
	return out, nil
}

// handleList lists the READY images the caller may see through at least
// one tag (root: all).
func (g *Gateway) handleList(c *call) (any, error) {
	sys, id := c.sys, c.id
	out := api.List{List: []api.Image{}}
	err := g.db.view(func(t tx) error {
		recs, err := t.images(sys)
		if err != nil {
			return err
		}
		binds, err := t.systemBindings(sys)
		if err != nil {
			return err
		}
		byID := map[string][]*bindRecord{}
		for _, b := range binds {
			byID[b.ID] = append(byID[b.ID], b)
		}
		for _, rec := range recs {
			if rec.Status != api.StateReady || !rec.visible(id) {
				continue
			}
			var vis []*bindRecord
			for _, b := range byID[rec.ID] {
				if b.visible(id, rec) {
					vis = append(vis, b)
				}
			}
			// An image is listed through the tags the caller may see; one
			// named only by others' private tags must look like a missing
			// one, so tagless images are listed to root only.
			if len(vis) == 0 && id.UID != 0 {
				continue
			}
			out.List = append(out.List, rec.view(id, vis, g.cfg.Expiration.D()))
		}
		return nil
	})
	sort.Slice(out.List, func(a, b int) bool { return out.List[a].LastPull > out.List[b].LastPull })
	return out, err
}

// handleQueue lists unfinished and recently failed pulls; private pulls
// only to their requester.
func (g *Gateway) handleQueue(c *call) (any, error) {
	sys, id := c.sys, c.id
	out := api.List{List: []api.Image{}}
	var jobs []*jobRecord
	err := g.db.view(func(t tx) (err error) { jobs, err = t.jobs(key(pfxJob, sys, "")); return err })
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Seq < jobs[b].Seq })
	for _, j := range jobs {
		if j.Status == api.StateReady || j.Status == api.StateExpired {
			continue
		}
		if j.Scope != "" && !(id.Authenticated && (id.UID == j.UID || id.UID == 0)) {
			continue
		}
		v := jobView(j, nil)
		v.Image = j.Tag
		out.List = append(out.List, v)
	}
	return out, err
}

// handleLookupLog returns the last lookups (admins).
func (g *Gateway) handleLookupLog(c *call) (any, error) {
	sys, admin := c.sys, c.id
	limit := 10
	q := c.r.URL.Query()
	format := q.Get("format")
	if format != "" && format != "shifter" {
		return nil, herr(http.StatusBadRequest, "bad request", "format %q: want shifter or nothing", format)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100000 {
			return nil, herr(http.StatusBadRequest, "bad request", "limit %q: want 1..100000", s)
		}
		limit = n
	}
	// A lookup through a private tag shows only to administrators who
	// may see that tag.
	rows, err := lookups(g.db, sys, limit, func(row *lookupRow) bool {
		b := bindRecord{Scope: row.Scope, UserACL: row.UserACL, GroupACL: row.GroupACL}
		return b.allows(admin)
	})
	if err != nil {
		return nil, err
	}
	if format == "shifter" {
		// Shifter's answer: a bare array, oldest first.
		out := make([]api.ShifterLookup, len(rows))
		for i, row := range rows {
			out[len(rows)-1-i] = api.ShifterLookup{Time: row.Time, User: row.User, UID: row.UID, System: sys, Type: row.Type, Tag: row.Tag, ID: row.ID}
		}
		return out, nil
	}
	out := make([]api.Lookup, 0, len(rows))
	for _, row := range rows {
		out = append(out, api.Lookup{Time: row.Time, User: row.User, UID: row.UID, System: sys, Type: row.Type, Tag: row.Tag, ID: row.ID})
	}
	total, err := counter(g.db, "lookups/"+sys)
	return api.LookupLog{Total: total, List: out}, err
}

// handleExpire expires one tag's image now (admins).
func (g *Gateway) handleExpire(c *call) (any, error) {
	sys, itype, tag, admin := c.sys, c.itype, c.tag, c.id
	named, removed, err := g.expireTag(c.r.Context(), sys, itype, tag, admin)
	if errors.Is(err, errNoKey) {
		return nil, herr(http.StatusNotFound, "not found", "image %s not found on %s", tag, sys)
	}
	if errors.Is(err, errInUse) {
		return nil, herr(http.StatusConflict, "in use", "image %s is being pulled or published right now; try again later", tag)
	}
	if err != nil {
		return nil, err
	}
	g.log.Info("tag expired by admin", "system", sys, "tag", tag, "ids", named, "removed", removed, "admin", admin.User)
	return api.ExpireResult{Status: named, Removed: removed}, nil
}

// handleAutoexpire removes expired images and unreferenced files (admins).
func (g *Gateway) handleAutoexpire(c *call) (any, error) {
	res, err := g.Autoexpire(c.r.Context(), c.sys)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// statusWriter records the status of a response for the access log.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (an image
// file's write deadline).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush lets streaming handlers (promhttp) flush through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// parseRequestACL parses a request's allowed_uids and allowed_gids
// (Shifter's comma-separated lists); errors are 400s.
func parseRequestACL(uidList, gidList string) (uids, gids []uint32, err error) {
	if uids, err = imagestore.ParseIDList(uidList); err != nil {
		return nil, nil, herr(http.StatusBadRequest, "bad request", "allowed_uids: %v", err)
	}
	if gids, err = imagestore.ParseIDList(gidList); err != nil {
		return nil, nil, herr(http.StatusBadRequest, "bad request", "allowed_gids: %v", err)
	}
	return uids, gids, nil
}
