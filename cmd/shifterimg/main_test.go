// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/shifter-go/shifter/gateway/api"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fakeGateway is an httptest stand-in of the gateway API: each pull POST
// of a tag answers the next record of its script (the last one repeats).
type fakeGateway struct {
	mu      sync.Mutex
	scripts map[string][]api.Image // by tag
	calls   map[string]int
	bodies  []api.PullRequest
	ready   map[string]api.Image // lookup answers by tag
	paths   []string
}

func newFakeGateway() *fakeGateway {
	return &fakeGateway{scripts: map[string][]api.Image{}, calls: map[string]int{}, ready: map[string]api.Image{}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeGateway) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/pull/{system}/{type}/{tag...}", func(w http.ResponseWriter, r *http.Request) {
		tag := strings.TrimSuffix(r.PathValue("tag"), "/")
		var body api.PullRequest
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			if err := json.Unmarshal(b, &body); err != nil {
				writeJSON(w, 400, api.Error{Status: 400, Error: "bad request", Message: err.Error()})
				return
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.bodies = append(f.bodies, body)
		script := f.scripts[tag]
		if len(script) == 0 {
			writeJSON(w, 404, api.Error{Status: 404, Error: "not found", Message: "no such image in the registry"})
			return
		}
		i := min(f.calls[tag], len(script)-1)
		f.calls[tag]++
		writeJSON(w, 200, script[i])
	})
	mux.HandleFunc("GET /api/lookup/{system}/{type}/{tag...}", func(w http.ResponseWriter, r *http.Request) {
		tag := strings.TrimSuffix(r.PathValue("tag"), "/")
		f.mu.Lock()
		img, ok := f.ready[tag]
		f.paths = append(f.paths, r.URL.Path)
		f.mu.Unlock()
		if !ok {
			writeJSON(w, 404, api.Error{Status: 404, Error: "not found", Message: "no image docker:" + tag})
			return
		}
		writeJSON(w, 200, img)
	})
	mux.HandleFunc("GET /api/list/{system}/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		l := api.List{List: []api.Image{}}
		for _, img := range f.ready {
			if img.System == r.PathValue("system") {
				l.List = append(l.List, img)
			}
		}
		writeJSON(w, 200, l)
	})
	mux.HandleFunc("POST /api/expire/{system}/{type}/{tag...}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 403, api.Error{Status: 403, Error: "forbidden", Message: "only admins may expire images"})
	})
	mux.HandleFunc("POST /api/autoexpire/{system}/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"status": []string{testID}})
	})
	return mux
}

// start serves f on a unix socket and returns its URL.
func (f *fakeGateway) start(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "gw.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f.handler())
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix:" + sock
}

// result is what one run of shifterimg did.
type result struct {
	code           int
	stdout, stderr string
}

type runEnv struct {
	home     string
	stdin    string
	tty      bool   // stdin and stdout are "terminals"
	password string // what the no-echo prompt reads
	env      map[string]string
}

func (e runEnv) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	s := streams{
		stdin:  strings.NewReader(e.stdin),
		stdout: &out, stderr: &errb,
		isTerminal:   func(any) bool { return e.tty },
		readPassword: func(context.Context, any) (string, error) { return e.password, nil },
		getenv: func(k string) string {
			if k == "HOME" {
				return e.home
			}
			return e.env[k]
		},
	}
	code := run(context.Background(), args, s)
	return result{code, out.String(), errb.String()}
}

func img(status, msg string, done, total int64) api.Image {
	i := api.Image{System: "sys", Itype: "docker", Tag: []string{"busybox:latest"}, Status: status, StatusMessage: msg}
	if total > 0 {
		i.Progress = &api.Progress{BytesDone: done, BytesTotal: total}
	}
	if status == api.StateReady {
		i.ID = testID
	}
	return i
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestPull(t *testing.T) {
	ok := []api.Image{img("PENDING", "", 0, 0), img("PULLING", "Pulling layer sha256:aa", 1<<20, 4<<20), img("CONVERSION", "", 0, 0), img("READY", "", 0, 0)}
	failed := []api.Image{img("PENDING", "", 0, 0), img("FAILURE", "manifest unknown: busybox:nope", 0, 0)}
	tests := []struct {
		name       string
		script     []api.Image
		args       []string
		tty        bool
		wantCode   int
		wantCalls  int    // -1: timing-dependent
		wantLast   string // suffix of stdout's last line
		wantStdout []string
		wantStderr string
	}{
		{"ready plain", ok, []string{"pull", "busybox:latest"}, false, 0, 4, "status: READY",
			[]string{"status: PENDING\n", "status: PULLING, Pulling layer sha256:aa\n", "status: CONVERSION\n"}, ""},
		{"ready with type", ok, []string{"pull", "docker:busybox:latest"}, false, 0, 4, "Pulling Image: docker:busybox:latest, status: READY", nil, ""},
		{"ready on a terminal", ok, []string{"pull", "busybox:latest"}, true, 0, 4, "status: READY",
			// cut at 79 columns: the width of a non-terminal is taken as 80
			[]string{"\r\x1b[2Kdocker:busybox:latest  PULLING     [#####...............] 1.0 MiB / 4.0 MiB  Pu\r", "\r\x1b[2Kdocker:busybox:latest  PENDING\r"}, ""},
		{"failure", failed, []string{"pull", "busybox:latest"}, false, 1, 2, "status: FAILURE, manifest unknown: busybox:nope",
			nil, "shifterimg pull: docker:busybox:latest: FAILURE: manifest unknown: busybox:nope\n"},
		{"failure on a terminal", failed, []string{"pull", "busybox:latest"}, true, 1, 2, "status: FAILURE, manifest unknown: busybox:nope", nil, "FAILURE: manifest unknown"},
		{"timeout", []api.Image{img("PENDING", "", 0, 0)}, []string{"pull", "--timeout", "1200ms", "busybox:latest"}, false, 1, -1, "status: PENDING",
			nil, "docker:busybox:latest: not READY after 1.2s (last state PENDING)\n"},
		{"pullnb returns at once", ok, []string{"pullnb", "busybox:latest"}, false, 0, 1, "status: PENDING", nil, ""},
		{"unknown image", nil, []string{"pull", "busybox:latest"}, false, 1, 0, "", nil, "no such image in the registry"},
		{"no tag", ok, []string{"pull"}, false, 2, 0, "", nil, "want 1 argument"},
		{"bad tag", ok, []string{"pull", "a/../b"}, false, 2, 0, "", nil, "bad path segment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeGateway()
			f.scripts["busybox:latest"] = tc.script
			u := f.start(t)
			r := runEnv{home: t.TempDir(), tty: tc.tty}.run(t, append([]string{"--gateway", u, "--system", "sys"}, tc.args...)...)
			if r.code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d\nstdout: %q\nstderr: %q", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			if tc.wantLast != "" && !strings.HasSuffix(lastLine(r.stdout), tc.wantLast) {
				t.Errorf("last line of stdout = %q, want it to end with %q", lastLine(r.stdout), tc.wantLast)
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout = %q, want it to contain %q", r.stdout, w)
				}
			}
			if !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tc.wantStderr)
			}
			if tc.wantCode == 0 && r.stderr != "" {
				t.Errorf("stderr = %q, want nothing", r.stderr)
			}
			if got := f.calls["busybox:latest"]; tc.wantCalls >= 0 && got != tc.wantCalls {
				t.Errorf("gateway got %d pulls, want %d", got, tc.wantCalls)
			}
			if !tc.tty && strings.Contains(r.stdout, "\x1b") {
				t.Errorf("escape sequences in non-terminal output: %q", r.stdout)
			}
		})
	}
}

func TestPullACL(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     api.PullRequest
		wantCode int
	}{
		{"none", []string{"pull", "x"}, api.PullRequest{}, 0},
		{"numbers and names", []string{"pull", "-u", "1001,root", "-u", "1000", "-g", "root", "x"}, api.PullRequest{AllowedUIDs: "0,1000,1001", AllowedGIDs: "0"}, 0},
		{"Shifter's global position", []string{"--user", "1000", "--group", "100", "pull", "x"}, api.PullRequest{AllowedUIDs: "1000", AllowedGIDs: "100"}, 0},
		{"unknown user", []string{"pull", "-u", "no-such-user-xyz", "x"}, api.PullRequest{}, 2},
		{"unknown group", []string{"pull", "-g", "no-such-group-xyz", "x"}, api.PullRequest{}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeGateway()
			f.scripts["x"] = []api.Image{img("READY", "", 0, 0)}
			u := f.start(t)
			r := runEnv{home: t.TempDir()}.run(t, append([]string{"--gateway", u, "--system", "sys"}, tc.args...)...)
			if r.code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d; stderr %q", r.code, tc.wantCode, r.stderr)
			}
			if tc.wantCode != 0 {
				if len(f.bodies) != 0 {
					t.Errorf("gateway got %d pulls, want none", len(f.bodies))
				}
				return
			}
			if len(f.bodies) != 1 {
				t.Fatalf("gateway got %d pulls, want 1", len(f.bodies))
			}
			if diff := cmp.Diff(tc.want, f.bodies[0]); diff != "" {
				t.Errorf("pull body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoginAndPullSendsCredentials(t *testing.T) {
	const secret = "pa55-w0rd-Zq"
	tests := []struct {
		name     string
		env      runEnv
		args     []string
		wantCode int
		wantLoc  string
		wantUser string
	}{
		{"stdin lines", runEnv{stdin: "alice\n" + secret + "\n"}, []string{"login", "127.0.0.1:5000"}, 0, "127.0.0.1:5000", "alice"},
		{"stdin password only", runEnv{stdin: secret + "\n"}, []string{"login", "--username", "bob", "127.0.0.1:5000"}, 0, "127.0.0.1:5000", "bob"},
		{"terminal prompt", runEnv{stdin: "carol\n", tty: true, password: secret}, []string{"login", "127.0.0.1:5000"}, 0, "127.0.0.1:5000", "carol"},
		{"default registry", runEnv{stdin: "dave\n" + secret}, []string{"login"}, 0, "default", "dave"},
		{"docker hub is default", runEnv{stdin: "erin\n" + secret}, []string{"login", "https://index.docker.io/"}, 0, "default", "erin"},
		{"empty password", runEnv{stdin: "alice\n\n"}, []string{"login", "127.0.0.1:5000"}, 1, "", ""},
		{"colon in user", runEnv{stdin: "a:b\n" + secret}, []string{"login", "127.0.0.1:5000"}, 1, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			env.home = t.TempDir()
			r := env.run(t, tc.args...)
			if r.code != tc.wantCode {
				t.Fatalf("login exit code = %d, want %d; stderr %q", r.code, tc.wantCode, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("login printed the password: %q %q", r.stdout, r.stderr)
			}
			path := filepath.Join(env.home, ".shifter", "credentials.json")
			if tc.wantCode != 0 {
				if _, err := os.Stat(path); err == nil {
					t.Errorf("failed login wrote %s", path)
				}
				return
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("credentials file mode = %v, want 0600", fi.Mode().Perm())
			}
			if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
				t.Errorf("credentials dir mode = %v, want 0700", di.Mode().Perm())
			}

			// A pull from that registry sends the login; a pull from
			// another one sends nothing; -v prints no password.
			f := newFakeGateway()
			tag := "127.0.0.1:5000/demo/busybox:latest"
			if tc.wantLoc == "default" {
				tag = "library/busybox:latest"
			}
			f.scripts[tag] = []api.Image{img("READY", "", 0, 0)}
			f.scripts["other.example.org/x"] = []api.Image{img("READY", "", 0, 0)}
			u := f.start(t)
			env.stdin = ""
			for _, pt := range []string{tag, "other.example.org/x"} {
				r := env.run(t, "--gateway", u, "--system", "sys", "-v", "pull", pt)
				if r.code != 0 {
					t.Fatalf("pull exit code = %d; stderr %q", r.code, r.stderr)
				}
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("pull -v printed the password")
				}
			}
			want := []api.PullRequest{
				{AuthorizedLocations: map[string]string{tc.wantLoc: tc.wantUser + ":" + secret}},
				{},
			}
			if diff := cmp.Diff(want, f.bodies); diff != "" {
				t.Errorf("pull bodies (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCredentialsFileChecks(t *testing.T) {
	tests := []struct {
		name    string
		mode    os.FileMode
		content string
		want    string
	}{
		{"world readable", 0o644, `{"registries":{}}`, "refusing a file others can read"},
		{"group readable", 0o640, `{"registries":{}}`, "refusing a file others can read"},
		{"garbage", 0o600, `{"registries":{"x":{"password":"hunter2"` + "\x00", "not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			dir := filepath.Join(home, ".shifter")
			os.Mkdir(dir, 0o700)
			path := filepath.Join(dir, "credentials.json")
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, tc.mode)
			f := newFakeGateway()
			f.scripts["x"] = []api.Image{img("READY", "", 0, 0)}
			u := f.start(t)
			r := runEnv{home: home}.run(t, "--gateway", u, "--system", "sys", "pull", "x")
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("pull = %d, %q; want failure with %q", r.code, r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, "hunter2") {
				t.Errorf("error quotes the credentials file: %q", r.stderr)
			}
			if len(f.bodies) != 0 {
				t.Errorf("gateway got a pull despite the bad credentials file")
			}
		})
	}
}

func TestLookupImagesExpire(t *testing.T) {
	f := newFakeGateway()
	f.ready["busybox:latest"] = api.Image{ID: testID, System: "sys", Itype: "docker", Tag: []string{"busybox:latest", "busybox:1"}, Status: "READY", LastPull: 1700000000}
	f.ready["alpine:3"] = api.Image{ID: strings.Repeat("f", 64), System: "sys", Itype: "docker", Tag: []string{"alpine:3"}, Status: "READY", LastPull: 1700000100}
	u := f.start(t)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout func(string) bool
		wantStderr string
	}{
		{"lookup", []string{"lookup", "busybox:latest"}, 0, func(s string) bool { return s == testID+"\n" }, ""},
		{"lookup with type", []string{"lookup", "docker:busybox:latest"}, 0, func(s string) bool { return s == testID+"\n" }, ""},
		{"lookup verbose: id alone on the last line", []string{"-v", "lookup", "busybox:latest"}, 0, func(s string) bool {
			return lastLine(s) == testID && strings.Contains(s, `"status": "READY"`)
		}, ""},
		{"lookup missing", []string{"lookup", "nope"}, 1, func(s string) bool { return s == "" }, "no image docker:nope"},
		{"images table", []string{"images"}, 0, func(s string) bool {
			lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
			return len(lines) == 3 && strings.HasSuffix(lines[0], " alpine:3") && strings.HasSuffix(lines[1], " busybox:1") &&
				strings.HasSuffix(lines[2], " busybox:latest") && strings.HasPrefix(lines[2], "sys        docker     READY    0123456789   ")
		}, ""},
		{"images json", []string{"images", "--json"}, 0, func(s string) bool {
			var l []api.Image
			return json.Unmarshal([]byte(s), &l) == nil && len(l) == 2
		}, ""},
		{"expire denied", []string{"expire", "busybox:latest"}, 1, func(s string) bool { return s == "" }, "only admins may expire images (HTTP 403)"},
		{"autoexpire", []string{"autoexpire"}, 0, func(s string) bool { return strings.Contains(s, testID) }, ""},
		{"unknown subcommand", []string{"frobnicate"}, 2, func(s string) bool { return s == "" }, "unknown subcommand"},
		{"help", []string{"--help"}, 0, func(s string) bool { return strings.Contains(s, "pull [-u USERS]") }, ""},
		{"subcommand help", []string{"images", "--help"}, 0, func(s string) bool { return strings.Contains(s, "--json") }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runEnv{home: t.TempDir()}.run(t, append([]string{"--gateway", u, "--system", "sys"}, tc.args...)...)
			if r.code != tc.wantCode || !tc.wantStdout(r.stdout) || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("shifterimg %v = %d\nstdout: %q\nstderr: %q\nwant code %d, stderr with %q", tc.args, r.code, r.stdout, r.stderr, tc.wantCode, tc.wantStderr)
			}
		})
	}
}

func TestConfigFile(t *testing.T) {
	f := newFakeGateway()
	f.ready["busybox:latest"] = api.Image{ID: testID, System: "cluster1", Status: "READY"}
	good := f.start(t)
	dead := "unix:" + filepath.Join(t.TempDir(), "dead.sock")
	dir := t.TempDir()
	conf := filepath.Join(dir, "udiRoot.conf")
	content := "# test\nimagePath=/images\nsystem=cluster1\nimageGateway=" + dead + " " + good + "\nsiteFs=/home:/home\n"
	if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("system=cluster1\nimageGateway="+good+"\nnoSuchKey=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantPath string
	}{
		{"config with an unknown key", map[string]string{"SHIFTER_CONFIG": bad}, []string{"lookup", "busybox:latest"}, 1, ""},
		{"SHIFTER_CONFIG, failover to the second gateway", map[string]string{"SHIFTER_CONFIG": conf}, []string{"lookup", "busybox:latest"}, 0, "/api/lookup/cluster1/docker/busybox:latest/"},
		{"--config", nil, []string{"--config", conf, "lookup", "busybox:latest"}, 0, "/api/lookup/cluster1/docker/busybox:latest/"},
		{"--system overrides", map[string]string{"SHIFTER_CONFIG": conf}, []string{"--system", "other", "lookup", "busybox:latest"}, 0, "/api/lookup/other/docker/busybox:latest/"},
		{"--gateway overrides", map[string]string{"SHIFTER_CONFIG": conf}, []string{"--gateway", dead, "lookup", "busybox:latest"}, 1, ""},
		{"missing config", map[string]string{"SHIFTER_CONFIG": filepath.Join(dir, "none.conf")}, []string{"lookup", "busybox:latest"}, 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.paths = nil
			f.mu.Unlock()
			r := runEnv{home: t.TempDir(), env: tc.env}.run(t, tc.args...)
			if r.code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d; stderr %q", r.code, tc.wantCode, r.stderr)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if tc.wantPath != "" && (len(f.paths) != 1 || f.paths[0] != tc.wantPath) {
				t.Errorf("gateway saw %v, want [%s]", f.paths, tc.wantPath)
			}
		})
	}
}

func TestBar(t *testing.T) {
	tests := []struct {
		img   api.Image
		width int
		want  string
	}{
		{img("PULLING", "", 0, 100), 200, "docker:x  PULLING     [....................] 0 B / 100 B"},
		{img("PULLING", "", 50, 100), 200, "docker:x  PULLING     [##########..........] 50 B / 100 B"},
		{img("PULLING", "", 3<<30, 3<<30), 200, "docker:x  PULLING     [####################] 3.0 GiB / 3.0 GiB"},
		{img("PULLING", "", 200, 100), 200, "docker:x  PULLING     [####################] 200 B / 100 B"},
		{img("CONVERSION", "running\x1b[2Jmksquashfs", 0, 0), 200, "docker:x  CONVERSION  running [2Jmksquashfs"},
		{img("PULLING", "Pulling layer", 1, 2), 20, "docker:x  PULLING"},
	}
	for _, tc := range tests {
		if got := bar("docker:x", &tc.img, tc.width); got != tc.want {
			t.Errorf("bar(%+v, %d) = %q, want %q", tc.img.Progress, tc.width, got, tc.want)
		}
	}
}

// TestSubcommandHelpWithoutConfig: "shifterimg SUBCOMMAND --help" prints
// the subcommand's usage and exits 0 with no udiRoot.conf at all, and
// contacts no gateway.
func TestSubcommandHelpWithoutConfig(t *testing.T) {
	none := map[string]string{"SHIFTER_CONFIG": filepath.Join(t.TempDir(), "none.conf")}
	for name := range commands() {
		for _, h := range []string{"--help", "-h"} {
			t.Run(name+" "+h, func(t *testing.T) {
				r := runEnv{home: t.TempDir(), env: none}.run(t, name, h)
				if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: shifterimg "+name) {
					t.Errorf("exit %d, stdout %q, stderr %q; want the usage of %s", r.code, r.stdout, r.stderr, name)
				}
			})
		}
	}
	// Without --help the missing file is still an error, and a "-h"
	// after "--" is an argument.
	if r := (runEnv{home: t.TempDir(), env: none}).run(t, "lookup", "busybox:latest"); r.code != 1 {
		t.Errorf("lookup without config: exit %d", r.code)
	}
	if r := (runEnv{home: t.TempDir(), env: none}).run(t, "lookup", "--", "-h"); r.code == 0 {
		t.Errorf("lookup -- -h: exit 0")
	}
}
