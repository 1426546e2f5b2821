// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
)

// TestFlagsOverrideConfig runs the built command with --check-config.
func TestFlagsOverrideConfig(t *testing.T) {
	bin := testutil.Binary(t, "shifter-gateway")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "gw.json")
	os.WriteFile(cfgPath, []byte(`{"workers": 3, "systems": {"a": {"image_dir": "/a"}, "b": {"image_dir": "/b"}}}`), 0o644)
	cases := []struct {
		name string
		args []string
		ok   bool
		chk  func(c *gateway.Config) bool
	}{
		{"defaults", nil, true, func(c *gateway.Config) bool {
			return c.Systems["default"] != nil && c.Listen[0] == gateway.DefaultListen && c.Workers == 2
		}},
		{"quick start", []string{"--listen", "127.0.0.1:8000", "--listen", "unix:/tmp/x.sock", "--image-dir", "/srv/img", "--data-dir", "/srv/gw",
			"--system", "mycluster", "--insecure-registry", "127.0.0.1:5000", "--workers", "5", "--log-level", "debug"}, true,
			func(c *gateway.Config) bool {
				s := c.Systems["mycluster"]
				return s != nil && s.ImageDir == "/srv/img" && len(c.Systems) == 1 && c.Listen[1] == "unix:/tmp/x.sock" &&
					c.DataDir == "/srv/gw" && c.CacheDir == "/srv/gw/cache" && c.Registries["127.0.0.1:5000"].Insecure && c.Workers == 5
			}},
		{"file", []string{"--config", cfgPath}, true, func(c *gateway.Config) bool { return c.Workers == 3 && len(c.Systems) == 2 }},
		{"file and system", []string{"--config", cfgPath, "--system", "b", "--image-dir", "/bb"}, true,
			func(c *gateway.Config) bool {
				return c.Systems["b"].ImageDir == "/bb" && c.Systems["a"].ImageDir == "/a"
			}},
		{"ambiguous image dir", []string{"--config", cfgPath, "--image-dir", "/x"}, false, nil},
		{"bad log level", []string{"--log-level", "loud"}, false, nil},
		{"unknown flag", []string{"--frobnicate"}, false, nil},
		{"missing config", []string{"--config", filepath.Join(dir, "nope.json")}, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command(bin, append(c.args, "--check-config")...).CombinedOutput()
			if (err == nil) != c.ok {
				t.Fatalf("%v: err %v\n%s", c.args, err, out)
			}
			if !c.ok {
				return
			}
			var cfg gateway.Config
			if err := json.Unmarshal(out, &cfg); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !c.chk(&cfg) {
				t.Errorf("%v: config %s", c.args, out)
			}
		})
	}
}

// TestStartsWithoutConfig starts the gateway on embedded defaults with
// only the paths overridden, checks that it serves, and stops it.
func TestStartsWithoutConfig(t *testing.T) {
	bin := testutil.Binary(t, "shifter-gateway")
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "gw.sock")
	cmd := exec.Command(bin, "--listen", "unix:"+sock, "--data-dir", filepath.Join(dir, "data"), "--image-dir", filepath.Join(dir, "images"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var resp *http.Response
	var err error
	for i := 0; i < 200; i++ {
		if resp, err = c.Get("http://gw/api/queue/default/"); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("gateway not serving: %v\n%s", err, out.String())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("queue of the default system: %d", resp.StatusCode)
	}
	if st, err := os.Stat(filepath.Join(dir, "images")); err != nil || !st.IsDir() {
		t.Errorf("image dir not created: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, out.String())
	}
	// Logs are JSON lines.
	for l := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["level"] == nil || m["msg"] == nil {
			t.Errorf("log line is not slog JSON: %q", l)
		}
	}
}

// TestRebuildDB: --rebuild-db makes records for the images of the image
// store that the database does not know, and exits; run again, it finds
// nothing to do.
func TestRebuildDB(t *testing.T) {
	bin := testutil.Binary(t, "shifter-gateway")
	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	os.MkdirAll(images, 0o755)
	id := strings.Repeat("ab", 32)
	tmp := filepath.Join(images, ".tmp-x.squashfs")
	if err := os.WriteFile(tmp, []byte("squashfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &imagestore.Metadata{ID: id, Format: imagestore.FormatSquashfs, Tags: []string{"app:1"}, UserACL: []uint32{}, GroupACL: []uint32{}, Created: time.Now()}
	if err := imagestore.Publish(images, tmp, m); err != nil {
		t.Fatal(err)
	}
	args := []string{"--data-dir", filepath.Join(dir, "data"), "--image-dir", images, "--rebuild-db"}
	for _, want := range []string{"rebuilt 1 image records and 1 tags", "rebuilt 0 image records and 0 tags"} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("--rebuild-db: %v\n%s\nwant %q", err, out, want)
		}
	}
}

// TestImportShifterCommand runs "shifter-gateway import-shifter" on a
// Shifter image directory and mongoexport, twice (same result), and on
// bad input (an error, nothing written).
func TestImportShifterCommand(t *testing.T) {
	bin := testutil.Binary(t, "shifter-gateway")
	dir := t.TempDir()
	images, data := filepath.Join(dir, "images"), filepath.Join(dir, "data")
	os.MkdirAll(images, 0o755)
	id := strings.Repeat("0123456789abcdef", 4)
	os.WriteFile(filepath.Join(images, id+".squashfs"), []byte("a squashfs"), 0o600)
	os.WriteFile(filepath.Join(images, id+".meta"), []byte("FORMAT: squashfs\nENTRY: ['/bin/sh', '-c']\nENV: PATH=/bin\n"), 0o600)
	export := filepath.Join(dir, "images.json")
	os.WriteFile(export, []byte(`{"_id":{"$oid":"5f1e9a7c2b3c4d5e6f708192"},"system":"perlmutter","itype":"docker","pulltag":"ubuntu:22.04","tag":["ubuntu:22.04"],"status":"READY","last_pull":1600000000.5,"id":"`+id+`","ENV":["PATH=/bin"],"userACL":[],"groupACL":[],"private":false}`+"\n"), 0o644)
	args := []string{"import-shifter", "--mongo-export", export, "--image-dir", images, "--system", "perlmutter", "--data-dir", data}
	want := []string{
		"imported 1 images (0 already known) and 1 tags (0 left to other images); wrote 1 <id>.json; 0 documents not imported\n",
		"imported 0 images (1 already known) and 0 tags (0 left to other images); wrote 1 <id>.json; 0 documents not imported\n",
	}
	var first []byte
	for i, w := range want {
		out, err := exec.Command(bin, args...).Output()
		if err != nil || string(out) != w {
			t.Fatalf("run %d: %v\n%s", i+1, err, out)
		}
		m, err := imagestore.Load(images, id)
		if err != nil || !m.HasTag("ubuntu:22.04") || m.Entrypoint[0] != "/bin/sh" {
			t.Fatalf("run %d: %+v %v", i+1, m, err)
		}
		b, _ := os.ReadFile(filepath.Join(images, id+".json"))
		if i == 0 {
			first = b
		} else if !bytes.Equal(first, b) {
			t.Errorf("<id>.json changed by the second run")
		}
	}
	// Bad input: a clear error, non-zero exit, nothing written.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"system":"perlmutter","status":"READY","userACL":["x"]}`+"\n"), 0o644)
	data2 := filepath.Join(dir, "data2")
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"import-shifter", "--image-dir", images, "--system", "perlmutter", "--data-dir", data2}, "--mongo-export and --system are required"},
		{[]string{"import-shifter", "--mongo-export", bad, "--image-dir", images, "--system", "perlmutter", "--data-dir", data2}, "line 1"},
		{[]string{"import-shifter", "--mongo-export", filepath.Join(dir, "none"), "--image-dir", images, "--system", "perlmutter", "--data-dir", data2}, "no such file"},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.msg) {
			t.Errorf("%v: %v %s, want an error with %q", c.args, err, out, c.msg)
		}
	}
	if _, err := os.Stat(data2); err == nil {
		t.Errorf("a failed import created the database directory %s", data2)
	}
	if out, err := exec.Command(bin, "import-shifter", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--mongo-export") {
		t.Errorf("import-shifter --help: %v %s", err, out)
	}
}

// TestConvertConfig runs "convert-config" as a site would: Shifter's
// imagemanager.json in, a gateway.json that --check-config accepts out,
// one warning line per key without a meaning here; bad input: a clear
// error, a non-zero exit, nothing on standard output.
func TestConvertConfig(t *testing.T) {
	bin := testutil.Binary(t, "shifter-gateway")
	dir := t.TempDir()
	good := filepath.Join(dir, "imagemanager.json")
	os.WriteFile(good, []byte(`{
    "WorkerThreads": 8,
    "DefaultImageLocation": "registry-1.docker.io",
    "DefaultImageFormat": "squashfs",
    "PullUpdateTimeout": 300,
    "ImageExpirationTimeout": "90:00:00:00",
    "MongoDBURI": "mongodb://localhost/",
    "MongoDB": "Shifter",
    "CacheDirectory": "/images/cache/",
    "ExpandDirectory": "/images/expand/",
    "ImportUsers": "all",
    "Locations": {"registry-1.docker.io": {"remotetype": "dockerv2", "authentication": "http"}},
    "Platforms": {
        "mycluster": {
            "mungeSocketPath": "/var/run/munge/munge.socket.2",
            "accesstype": "local",
            "admins": ["root"],
            "use_external": true,
            "local": {"imageDir": "/images"}
        }
    }
}`), 0o644)
	cmd := exec.Command(bin, "convert-config", good)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("convert-config: %v\n%s", err, stderr.String())
	}
	conv := filepath.Join(dir, "gateway.json")
	os.WriteFile(conv, stdout.Bytes(), 0o644)
	out, err := exec.Command(bin, "--config", conv, "--check-config").CombinedOutput()
	if err != nil {
		t.Fatalf("the converted configuration: %v\n%s", err, out)
	}
	var c gateway.Config
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	if s := c.Systems["mycluster"]; s == nil || s.ImageDir != "/images" || c.Workers != 8 || c.ImportUsers == nil || !c.ImportUsers.All ||
		c.Expiration.D() != 90*24*time.Hour {
		t.Errorf("converted: %s", out)
	}
	for _, key := range []string{"MongoDBURI", "MongoDB", "Locations.registry-1.docker.io.authentication", "Platforms.mycluster.use_external"} {
		want := "shifter-gateway: convert-config: warning: " + key + ": no meaning here"
		if n := strings.Count(stderr.String(), want); n != 1 {
			t.Errorf("%d warnings for %s in:\n%s", n, key, stderr.String())
		}
	}
	for _, c := range []struct{ name, in, want string }{
		{"bad JSON", `{"WorkerThreads": 8,,}`, "not a JSON object"},
		{"wrong type", `{"WorkerThreads": "8", "Platforms": {}}`, "WorkerThreads: want a number"},
		{"no platform", `{"WorkerThreads": 8}`, "no platform"},
	} {
		p := filepath.Join(dir, "bad.json")
		os.WriteFile(p, []byte(c.in), 0o644)
		cmd := exec.Command(bin, "convert-config", p)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil || stdout.Len() != 0 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: err %v, stdout %q, stderr %q; want a failure naming %q and nothing on stdout", c.name, err, stdout.String(), stderr.String(), c.want)
		}
	}
	if err := exec.Command(bin, "convert-config", filepath.Join(dir, "missing.json")).Run(); err == nil {
		t.Error("convert-config of a missing file succeeded")
	}
}
