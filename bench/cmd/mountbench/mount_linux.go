// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// method mounts an image one way.
type method struct {
	name string
	fuse bool     // served by a process whose VmHWM we report
	argv []string // command; IMAGE and MOUNTPOINT are appended
}

func methodFor(name, binDir string, mountOpts []string) (*method, error) {
	switch name {
	case "kernel":
		return &method{name: name, argv: []string{"mount", "-t", "squashfs", "-o", "loop,ro"}}, nil
	case "squashfuse_ll", "squashfuse":
		p, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("find %s (Debian squashfuse): %w", name, err)
		}
		return &method{name: name, fuse: true, argv: []string{p}}, nil
	case "shifter-mount":
		p, err := filepath.Abs(filepath.Join(binDir, "shifter-mount"))
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("find shifter-mount (make build): %w", err)
		}
		return &method{name: name, fuse: true, argv: append([]string{p}, mountOpts...)}, nil
	}
	return nil, fmt.Errorf("unknown method %q", name)
}

// mounted is one live mount.
type mounted struct {
	m   *method
	mnt string
	pid int // FUSE server, 0 when none or not found
}

// mount mounts img on mnt and returns once stat(mnt) shows the mounted
// filesystem, with the time that took.
func (m *method) mount(ctx context.Context, img, mnt string) (*mounted, float64, error) {
	var parent unix.Stat_t
	if err := unix.Stat(filepath.Dir(mnt), &parent); err != nil {
		return nil, 0, fmt.Errorf("stat mountpoint parent: %w", err)
	}
	argv := append(append([]string{}, m.argv...), img, mnt)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, 0, fmt.Errorf("mount with %s: %w: %s", m.name, err, strings.TrimSpace(out.String()))
	}
	var st unix.Stat_t
	for {
		if err := unix.Stat(mnt, &st); err != nil {
			return nil, 0, fmt.Errorf("stat mountpoint after %s: %w", m.name, err)
		}
		if st.Dev != parent.Dev {
			break
		}
		if time.Since(start) > 10*time.Second {
			return nil, 0, fmt.Errorf("mount with %s: mountpoint not mounted after 10s", m.name)
		}
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start).Seconds()
	mt := &mounted{m: m, mnt: mnt}
	if m.fuse {
		mt.pid = findServer(mnt)
	}
	return mt, elapsed, nil
}

// hwm returns the FUSE server's peak RSS (VmHWM) in bytes, 0 when unknown.
func (mt *mounted) hwm() int64 {
	if mt.pid == 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", mt.pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// unmount unmounts and, for FUSE, waits until the server has exited.
func (mt *mounted) unmount() error {
	var err error
	for i := range 50 {
		err = unix.Unmount(mt.mnt, 0)
		if err == nil || errors.Is(err, unix.EINVAL) {
			err = nil
			break
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mt.mnt, err)
	}
	if mt.pid != 0 {
		deadline := time.Now().Add(10 * time.Second)
		for processAlive(mt.pid) {
			if time.Now().After(deadline) {
				unix.Kill(mt.pid, unix.SIGKILL)
				return fmt.Errorf("%s server %d still running 10s after unmount", mt.m.name, mt.pid)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited; its parent (init) reaps it.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// findServer returns the pid of the process whose command line names mnt
// (the FUSE server daemonizes, so it is not our child).
func findServer(mnt string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == mnt {
				return pid
			}
		}
	}
	return 0
}

// dropCaches writes back dirty pages and drops the page, dentry and inode
// caches, so the next read comes from the disk image.
func dropCaches() error {
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}
