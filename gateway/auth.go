// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
)

// Identity is the caller of a request.
type Identity struct {
	Authenticated bool
	UID, GID      uint32
	User          string   // user name on the gateway host ("" if unknown)
	Groups        []uint32 // primary and supplementary gids, resolved on the gateway host
	Source        string   // "munge", "peercred", "none", "test"
	// Creds are registry credentials from the munge payload
	// (authorized_locations). Never logged.
	Creds map[string]string
}

// String describes the identity for logs, without credentials.
func (id *Identity) String() string {
	if id == nil || !id.Authenticated {
		return "anonymous"
	}
	return fmt.Sprintf("uid=%d(%s) via %s", id.UID, id.User, id.Source)
}

// Authenticator gives the identity of a request's caller for a system.
// A request with no credential gives an unauthenticated identity and no
// error; a bad credential gives an error (401).
type Authenticator func(r *http.Request, system string) (*Identity, error)

// errUnauthenticated marks credential failures (401).
var errUnauthenticated = errors.New("authentication failed")

// resolveIdentity fills User and Groups from the gateway host's user
// database. An unknown uid keeps its gid as its only group.
func resolveIdentity(id *Identity) {
	id.Groups = []uint32{id.GID}
	u, err := user.LookupId(strconv.FormatUint(uint64(id.UID), 10))
	if err != nil {
		return
	}
	id.User = u.Username
	gids, err := u.GroupIds()
	if err != nil {
		return
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil && !slices.Contains(id.Groups, uint32(n)) {
			id.Groups = append(id.Groups, uint32(n))
		}
	}
}

// connIdentityKey carries a unix socket peer's identity in a connection's
// context (set by ConnContext).
type connIdentityKey struct{}

func peerIdentity(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(connIdentityKey{}).(*Identity)
	return id, ok
}

// MungeHeader is Shifter's header carrying a munge credential.
const MungeHeader = "authentication"

// maxMungeCredential bounds the header (a credential with a payload of
// registry passwords is a few KiB).
const maxMungeCredential = 64 << 10

// Unmunger decodes munge credentials by running Debian munge's unmunge.
type Unmunger struct {
	Command string // default "unmunge"
	Timeout time.Duration
}

var (
	mungeUIDRE = regexp.MustCompile(`^UID:\s+(\S*)\s*\((\d+)\)$`)
	mungeGIDRE = regexp.MustCompile(`^GID:\s+(\S*)\s*\((\d+)\)$`)
)

// Decode verifies cred with the munged listening on socket and returns
// the encoder's uid, gid and payload.
func (u Unmunger) Decode(ctx context.Context, socket, cred string) (*Identity, error) {
	if len(cred) > maxMungeCredential || !strings.HasPrefix(strings.TrimSpace(cred), "MUNGE:") {
		return nil, fmt.Errorf("%w: not a munge credential", errUnauthenticated)
	}
	cmdName := u.Command
	if cmdName == "" {
		cmdName = "unmunge"
	}
	to := u.Timeout
	if to == 0 {
		to = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	// The credential goes on stdin, never on the command line.
	cmd := exec.CommandContext(ctx, cmdName, "--socket", socket)
	cmd.Stdin = strings.NewReader(cred)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			switch ee.ExitCode() {
			case 15:
				return nil, fmt.Errorf("%w: expired credential", errUnauthenticated)
			case 17:
				return nil, fmt.Errorf("%w: replayed credential", errUnauthenticated)
			}
			msg := strings.TrimSpace(stderr.String())
			if i := strings.IndexByte(msg, '\n'); i >= 0 {
				msg = msg[:i]
			}
			return nil, fmt.Errorf("%w: unmunge: %s", errUnauthenticated, strings.TrimPrefix(msg, "unmunge: Error: "))
		}
		return nil, fmt.Errorf("run unmunge: %w", err)
	}
	return parseUnmunge(out.Bytes())
}

// parseUnmunge parses unmunge's output: "KEY: value" metadata lines, a
// blank line, then the payload.
func parseUnmunge(b []byte) (*Identity, error) {
	head, payload, _ := bytes.Cut(b, []byte("\n\n"))
	id := &Identity{Authenticated: true, Source: "munge"}
	var haveUID, haveGID, ok bool
	sc := bufio.NewScanner(bytes.NewReader(head))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "STATUS:") {
			ok = strings.Contains(line, "Success")
		}
		if m := mungeUIDRE.FindStringSubmatch(line); m != nil {
			n, err := strconv.ParseUint(m[2], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%w: bad uid", errUnauthenticated)
			}
			id.UID, id.User, haveUID = uint32(n), m[1], true
		}
		if m := mungeGIDRE.FindStringSubmatch(line); m != nil {
			n, err := strconv.ParseUint(m[2], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%w: bad gid", errUnauthenticated)
			}
			id.GID, haveGID = uint32(n), true
		}
	}
	if !ok || !haveUID || !haveGID {
		return nil, fmt.Errorf("%w: unmunge gave no status, uid or gid", errUnauthenticated)
	}
	if strings.HasPrefix(id.User, "?") { // unmunge prints "?" for an unknown uid
		id.User = ""
	}
	payload = bytes.TrimSpace(payload)
	if len(payload) > 0 {
		var p api.PullRequest
		if err := json.Unmarshal(payload, &p); err != nil {
			return nil, fmt.Errorf("%w: munge payload is not JSON", errUnauthenticated)
		}
		id.Creds = p.AuthorizedLocations
	}
	return id, nil
}
