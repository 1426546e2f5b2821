// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashImage is the deterministic content of image k in the crash test.
const crashChunks = 128

func crashData(k int) []byte { return randBytes(uint64(1000+k), crashChunks*cs) }

// TestCrashChild is the child of TestCrashDuringWrites: it fills the
// cache in NODECACHE_CRASH_DIR with image after image until killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("NODECACHE_CRASH_DIR")
	if dir == "" {
		t.Skip("child of TestCrashDuringWrites only")
	}
	// A small cap and value-log files: the child evicts and rotates files
	// while it writes, so the kill lands amid all of it.
	c, err := Open(dir, Options{Size: 6 << 20, ValueLogFileSize: 1 << 20, GCInterval: 50 * time.Millisecond})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for k := 0; k < 10000; k++ {
		data := crashData(k)
		im, err := c.Image(testID(fmt.Sprint("crash", k)), &memSource{data: data}, chunksOf(t, data, cs))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		if err := im.Warm(context.Background(), nil, nil); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		if k == 3 {
			fmt.Println("ready")
		}
	}
	fmt.Println("error: not killed")
	os.Exit(1)
}

// TestCrashDuringWrites kills a process with -9 while it writes chunks
// (re-executing the test binary), then reopens the cache: every chunk
// left is served with the right bytes, and a second process is refused
// while the first holds the directory.
func TestCrashDuringWrites(t *testing.T) {
	if os.Getenv("NODECACHE_CRASH_DIR") != "" {
		t.Skip("in the child")
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "NODECACHE_CRASH_DIR="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child said %q", line)
		}
		_, err = Open(dir, Options{Size: 1 << 20})
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("in use by PID %d", cmd.Process.Pid)) {
			t.Errorf("open while the child runs: %v, want in use by PID %d", err, cmd.Process.Pid)
		}
		time.Sleep(time.Duration(50+100*round) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		var logs logBuf
		c := openTest(t, dir, Options{Size: 64 << 20, MemorySize: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if strings.Contains(logs.String(), "starting an empty cache") {
			t.Errorf("round %d: the database did not reopen after the kill:\n%s", round, logs.String())
		}
		ids := map[[32]byte]int{}
		for k := range 10000 {
			id, _ := hexID(testID(fmt.Sprint("crash", k)))
			ids[id] = k
		}
		c.mu.Lock()
		var keys []ckey
		for k := range c.index {
			keys = append(keys, k)
		}
		c.mu.Unlock()
		if len(keys) == 0 {
			t.Fatalf("round %d: nothing survived the kill", round)
		}
		byImage := map[int][]int64{}
		for _, k := range keys {
			n, ok := ids[k.id]
			if !ok {
				t.Fatalf("unknown image in the cache: %x", k.id)
			}
			byImage[n] = append(byImage[n], k.idx)
		}
		for n, idxs := range byImage {
			data := crashData(n)
			src := &memSource{data: data}
			im, err := c.Image(testID(fmt.Sprint("crash", n)), src, chunksOf(t, data, cs))
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range idxs {
				p := make([]byte, cs)
				if _, err := im.ReadAt(p, i*cs); err != nil || !bytes.Equal(p, data[i*cs:(i+1)*cs]) {
					t.Fatalf("round %d: image %d chunk %d after the kill: %v, or wrong bytes", round, n, i, err)
				}
			}
		}
		st := c.Stats()
		t.Logf("round %d: %d chunks of %d images survived; %d hits, %d re-read, %d failed verification",
			round, len(keys), len(byImage), st.Hits, st.Misses, st.VerifyFailures)
		c.Close()
	}
}

// TestReopenDamaged: an empty memtable log (badger died between creating
// and sizing it) is removed and the chunks are kept; a database that does
// not open at all is replaced by an empty one, with an error logged.
func TestReopenDamaged(t *testing.T) {
	dir := t.TempDir()
	data := randBytes(9, 8*cs)
	cl := chunksOf(t, data, cs)
	id := testID("damaged")
	c := openTest(t, dir, Options{})
	im, _ := c.Image(id, &memSource{data: data}, cl)
	if err := im.Warm(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := os.WriteFile(filepath.Join(dir, "db", "000099.mem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c = openTest(t, dir, Options{})
	if st := c.Stats(); st.Chunks != cl.Count() {
		t.Fatalf("after an empty .mem file: %d chunks, want %d", st.Chunks, cl.Count())
	}
	c.Close()

	if err := os.WriteFile(filepath.Join(dir, "db", "MANIFEST"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logBuf
	c = openTest(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if st := c.Stats(); st.Chunks != 0 || !strings.Contains(logs.String(), "starting an empty cache") {
		t.Fatalf("broken database: %+v, log %q", st, logs.String())
	}
	src := &memSource{data: data}
	im, _ = c.Image(id, src, cl)
	checkRead(t, im, data, cs)
	if src.bytes.Load() != int64(len(data)) {
		t.Fatal("the new cache did not read the source")
	}
}
