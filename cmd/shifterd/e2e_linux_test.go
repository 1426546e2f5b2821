// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
	sdclient "github.com/shifter-go/shifter/shifterd/client"
	"github.com/shifter-go/shifter/shifterd/proto"
)

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestDaemon runs the shifterd binary on a config of its own: warm by tag,
// status, a reference, metrics, and a clean shutdown that leaves no mount.
func TestDaemon(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	bin := testutil.Binary(t, "shifterd")
	dir := t.TempDir()
	store := filepath.Join(dir, "images")
	os.Mkdir(store, 0o755)
	tree := sqtest.MakeFeatureTree(t, t.TempDir(), sqtest.TreeOptions{Small: true})
	id := strings.Repeat("c3", 32)
	tmp := filepath.Join(store, ".tmp-build.squashfs")
	sqtest.BuildTo(t, tmp, tree.Dir, "-comp", "zstd")
	// Published without a chunk list, as an older gateway would: the
	// node makes one when it warms the image.
	meta := &imagestore.Metadata{ID: id, Tags: []string{"demo/small:1"}}
	if err := imagestore.Publish(store, tmp, meta); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "shifterd.sock")
	metrics := freePort(t)
	conf := filepath.Join(dir, "udiRoot.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("imagePath=%s\nudiMount=%s\nshifterdSocket=%s\nshifterdIdleUnmount=0\nshifterdMetrics=%s\nnodeCacheDir=%s\nnodeCacheSize=64M\nnodeCacheChunkSize=64K\n",
		store, dir, sock, metrics, filepath.Join(dir, "cache"))), 0o644)
	mnt := filepath.Join(dir, "mnt")
	d := exec.Command(bin, "--config", conf, "serve", "--mount-dir", mnt)
	stderr, _ := d.StderrPipe()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stderr); logs <- string(b) }()
	defer func() {
		if d.ProcessState == nil {
			d.Process.Kill()
			d.Wait()
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("shifterd did not create its socket")
		}
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode %v, %v; want 0666", fi.Mode(), err)
	}
	out, err := exec.Command(bin, "--config", conf, "warm", "demo/small:1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "warmed") {
		t.Fatalf("shifterd warm: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "cache", "chunklists", id+".chunks")); err != nil {
		t.Fatalf("no node-made chunk list: %v", err)
	}
	// A second warm-up reads nothing from the source.
	out, _ = exec.Command(bin, "--config", conf, "warm", "id:"+id).CombinedOutput()
	if !strings.Contains(string(out), "0.0 MiB from the source") {
		t.Fatalf("second warm-up: %s", out)
	}
	if out, err := exec.Command(bin, "--config", conf, "warm", "no/such:image").CombinedOutput(); err == nil {
		t.Fatalf("warm of an unknown image succeeded: %s", out)
	}
	ctx := context.Background()
	ref, err := sdclient.Mount(ctx, sock, id, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "--config", conf, "status", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var st proto.Status
	if err := json.Unmarshal(out, &st); err != nil || len(st.Mounts) != 1 || len(st.Mounts[0].Refs) != 1 || st.Cache == nil || st.Cache.Hits == 0 {
		t.Fatalf("status %s (%v)", out, err)
	}
	out, _ = exec.Command(bin, "--config", conf, "status").Output()
	if !strings.Contains(string(out), id[:12]) || !strings.Contains(string(out), "hit rate") {
		t.Fatalf("status: %s", out)
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"shifterd_mounts 1", "shifterd_references 1", "shifterd_cache_hits_total", "shifterd_cache_source_bytes_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// SIGTERM unmounts everything, references or not.
	d.Process.Signal(syscall.SIGTERM)
	if err := d.Wait(); err != nil {
		t.Fatalf("shifterd exit: %v\n%s", err, <-logs)
	}
	ref.Close()
	for _, m := range testutil.Mounts(t) {
		if strings.HasPrefix(m.MountPoint, mnt) {
			t.Fatalf("mount left after shutdown: %s", m.Line)
		}
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after shutdown: %v", err)
	}
	l := <-logs
	sc := bufio.NewScanner(strings.NewReader(l))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "level=ERROR") {
			t.Errorf("error logged: %s", sc.Text())
		}
	}
}
