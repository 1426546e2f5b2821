// SPDX-License-Identifier: BSD-3-Clause

package slurm

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shifter-go/shifter/internal/demoimage"
	"github.com/shifter-go/shifter/internal/testutil"
)

const (
	nobodyUID = 65534
	nobodyGID = 65534
	system    = "slurmtest"
	repo      = "demo/busybox:latest"
)

// cluster is a one-node Slurm cluster on this host with the plugin loaded,
// an image gateway on a unix socket and a registry on 127.0.0.1.
type cluster struct {
	t        *testing.T
	dir      string // root-owned, 0755, under /run
	conf     string // udiRoot.conf
	slurmCnf string
	shifter  string
	img      string // shifterimg
	registry string // HOST:PORT
	work     string // nobody's working directory
	sock     string // shifterd's socket
	logs     map[string]string
}

func TestSlurm(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tool := range []string{"slurmctld", "slurmd", "sbatch", "srun", "scontrol", "sinfo", "munged", "mksquashfs", "cc", "script", "setpriv", "timeout"} {
		testutil.RequireTool(t, tool)
	}
	if _, err := os.Stat("/usr/include/slurm/spank.h"); err != nil {
		testutil.Unavailable(t, "no /usr/include/slurm/spank.h (libslurm-dev)")
	}
	if _, err := os.Stat(demoimage.DefaultBusybox); err != nil {
		testutil.Unavailable(t, "test needs "+demoimage.DefaultBusybox+" (Debian busybox-static)")
	}
	c := startCluster(t)
	tag := "docker:" + c.registry + "/" + repo
	want := demoOSRelease(t)

	t.Run("image pinned, two ranks", func(t *testing.T) {
		out := c.sbatchWait(t, "--image="+tag, "--nodes=2", "--ntasks=2", "--wrap",
			fmt.Sprintf("srun -N 2 -n 2 %s -v cat /etc/os-release", c.shifter))
		if n := strings.Count(out, want); n != 2 {
			t.Fatalf("job output has the image's os-release %d times, want 2:\n%s", n, out)
		}
		// Both ranks were built over shifterd's one mount of the image,
		// which the plugin's prolog had warmed.
		if n := strings.Count(out, "image mount: shifterd's shared mount"); n != 2 {
			t.Errorf("%d of 2 ranks used shifterd's shared mount:\n%s", n, out)
		}
		// The plugin's prolog ran on each node.
		for _, n := range []string{"n1", "n2"} {
			b, _ := os.ReadFile(filepath.Join(c.dir, "slurmd-"+n+".out"))
			if !strings.Contains(string(b), "shifter: prolog: ") || !strings.Contains(string(b), "warmed") {
				t.Errorf("%s: slurmd's log has no line of the plugin's prolog warming the image:\n%s", n, b)
			}
		}
		// The mount goes once the job's containers are gone (shifterdIdleUnmount=2s).
		for i := 0; ; i++ {
			if !c.shifterdMounts(t) {
				break
			}
			if i == 100 {
				t.Fatal("shifterd's mount of the image is still there 10 s after the job")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("prolog and LSF job starter scripts", func(t *testing.T) {
		root := testutil.ModuleRoot(t)
		prolog := filepath.Join(root, "contrib/slurm/prolog.sh")
		id := c.lookup(t, tag)
		base := append(c.env(), "SHIFTER_SHIFTERD="+filepath.Join(c.dir, "shifterd"), "SHIFTER_SHIFTERD_SOCKET="+c.sock,
			"SHIFTER_PROLOG_CONFIG="+c.conf)
		held := c.asNobody(t, "sbatch", "--parsable", "--hold", "--comment=shifter:"+tag, "--wrap", "true")
		if held.code != 0 {
			t.Fatalf("sbatch --hold --comment: %s", held.stderr)
		}
		heldJob := strings.TrimSpace(strings.Split(held.stdout, ";")[0])
		t.Cleanup(func() { c.root(t, "scancel", heldJob) })
		for _, tc := range []struct {
			name string
			env  []string
			args []string
			want string
		}{
			{"slurm plugin's pinned id", []string{"SLURM_JOB_ID=1", "SLURM_JOB_UID=65534", "SPANK_SHIFTER_IMAGETYPE=id", "SPANK_SHIFTER_IMAGE=" + id}, nil, "warmed"},
			{"slurm job comment", []string{"SLURM_JOB_ID=" + heldJob, "SLURM_JOB_UID=65534"}, nil, "warmed"},
			{"flux", []string{"FLUX_JOB_ID=f1", "FLUX_JOB_USERID=65534", "SHIFTER_IMAGEREQUEST=" + tag}, nil, "warmed"},
			{"pbs", []string{"PBS_JOBID=1.server", "SHIFTER_IMAGEREQUEST=" + tag}, []string{"1.server", "nobody", "nogroup"}, "warmed"},
			{"no image", []string{"SLURM_JOB_ID=1", "SLURM_JOB_UID=65534"}, nil, ""},
			{"bad image", []string{"SLURM_JOB_UID=65534", "SHIFTER_IMAGEREQUEST=ubuntu;reboot"}, nil, "ignoring image"},
			{"image nobody may not use", []string{"SLURM_JOB_UID=65534", "SHIFTER_IMAGEREQUEST=id:" + strings.Repeat("ab", 32)}, nil, "failed (the job goes on)"},
			{"no shifterd", []string{"SLURM_JOB_UID=65534", "SHIFTER_IMAGEREQUEST=" + tag, "SHIFTER_SHIFTERD_SOCKET=/nonexistent.sock"}, nil, "no shifterd socket"},
		} {
			cmd := exec.Command(prolog, tc.args...)
			cmd.Env = append(append([]string{}, base...), tc.env...)
			res := run(t, cmd)
			if res.code != 0 {
				t.Errorf("%s: prolog.sh exited %d: %s", tc.name, res.code, res.stderr)
			}
			if tc.want == "" && res.stderr != "" || !strings.Contains(res.stderr, tc.want) {
				t.Errorf("%s: prolog.sh said %q, want %q", tc.name, res.stderr, tc.want)
			}
		}
		// LSF's PRE_EXEC runs it as the job's user.
		pre := c.asNobodyEnv(t, []string{"LSB_JOBID=7", "SHIFTER_IMAGEREQUEST=" + tag, "SHIFTER_SHIFTERD=" + filepath.Join(c.dir, "shifterd"),
			"SHIFTER_SHIFTERD_SOCKET=" + c.sock, "SHIFTER_PROLOG_CONFIG=" + c.conf}, prolog)
		if pre.code != 0 || !strings.Contains(pre.stderr, "warmed") {
			t.Errorf("prolog.sh as nobody (LSF PRE_EXEC): status %d, stderr %q", pre.code, pre.stderr)
		}
		res := c.asNobodyEnv(t, []string{"LSB_JOBID=7", "SHIFTER_IMAGEREQUEST=" + tag, "SHIFTER_BIN=" + c.shifter},
			filepath.Join(root, "contrib/lsf/job-starter.sh"), "cat", "/etc/os-release")
		if res.code != 0 || res.stdout != want {
			t.Errorf("job-starter.sh cat /etc/os-release: status %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
		epi := exec.Command(filepath.Join(root, "contrib/slurm/epilog.sh"))
		epi.Env = base
		if r := run(t, epi); r.code != 0 {
			t.Errorf("epilog.sh: %d %s", r.code, r.stderr)
		}
	})

	t.Run("environment in the job", func(t *testing.T) {
		id := c.lookup(t, tag)
		out := c.sbatchWait(t, "--image="+tag, "--volume=/tmp:/data", "--module=none", "--wrap",
			"env | grep -E '^(SLURM_SPANK_)?SHIFTER_' | sort")
		for _, l := range []string{"SHIFTER_IMAGETYPE=id", "SHIFTER_IMAGE=" + id, "SHIFTER_IMAGEREQUEST=" + tag,
			"SHIFTER_VOLUME=/tmp:/data", "SHIFTER_MODULE=none", "SLURM_SPANK_SHIFTER_IMAGE=" + id} {
			if !strings.Contains(out, l+"\n") {
				t.Errorf("job environment lacks %s:\n%s", l, out)
			}
		}
	})

	t.Run("srun alone", func(t *testing.T) {
		res := c.asNobody(t, "srun", "--image="+tag, "-n", "1", c.shifter, "cat", "/etc/os-release")
		if res.code != 0 || res.stdout != want {
			t.Fatalf("srun --image: status %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
		}
	})

	t.Run("export=NONE", func(t *testing.T) {
		// Without sbatch's environment the job has the job control
		// environment only (SLURM_SPANK_SHIFTER_*), which shifter reads.
		out := c.sbatchWait(t, "--export=NONE", "--image="+tag, "--wrap",
			fmt.Sprintf("env | grep '^SHIFTER_' ; /usr/bin/srun -n 1 %s cat /etc/os-release", c.shifter))
		if !strings.Contains(out, want) || strings.Contains(out, "SHIFTER_IMAGE=") {
			t.Fatalf("job output:\n%s", out)
		}
	})

	t.Run("unknown image fails at submission", func(t *testing.T) {
		res := c.asNobody(t, "sbatch", "--image=docker:"+c.registry+"/demo/nothere:latest", "--wrap", "true")
		if res.code == 0 {
			t.Fatalf("sbatch of an unknown image succeeded: %s", res.stdout)
		}
		if !strings.Contains(res.stderr, "shifter: image docker:"+c.registry+"/demo/nothere:latest cannot be used") {
			t.Fatalf("sbatch stderr lacks the plugin's message:\n%s", res.stderr)
		}
		t.Logf("sbatch said:\n%s", res.stderr)
	})

	t.Run("image not allowed to the user fails at submission", func(t *testing.T) {
		private := "docker:" + c.registry + "/private/busybox:latest"
		c.publishAs(t, "private/busybox:latest", "PRETTY_NAME=\"root's private image\"\n")
		if r := c.root(t, c.img, "--config", c.conf, "pull", "--user", "root", private); r.code != 0 {
			t.Fatalf("private pull: %s", r.stderr)
		}
		res := c.asNobody(t, "sbatch", "--image="+private, "--wrap", "true")
		if res.code == 0 || !strings.Contains(res.stderr, "shifter: image "+private+" cannot be used") {
			t.Fatalf("sbatch of root's private image as nobody: status %d, stderr:\n%s", res.code, res.stderr)
		}
	})

	t.Run("bad input refused", func(t *testing.T) {
		for _, arg := range []string{"--image=ubuntu;rm -rf /", "--image=" + strings.Repeat("a", 300), "--image=id:1234",
			"--image=local:/", "--module=a b", "--volume=/a:/b\nX"} {
			res := c.asNobody(t, "sbatch", arg, "--wrap", "true")
			if res.code == 0 || !strings.Contains(res.stderr, "shifter: ") {
				t.Errorf("sbatch %q: status %d, stderr %q; want a failure with the plugin's message", arg, res.code, res.stderr)
			}
		}
	})

	t.Run("salloc and srun --pty", func(t *testing.T) {
		// salloc pins the image for the allocation; srun --pty gives the
		// container a terminal. script(1) gives salloc one.
		line := fmt.Sprintf("salloc --image=%s -n 1 srun --pty %s sh -c 'test -t 0 && test -t 1 && echo on-a-tty; cat /etc/os-release; echo SHIFTER_IMAGE=$SHIFTER_IMAGE'",
			tag, c.shifter)
		res := c.asNobody(t, "script", "-q", "-e", "-c", line, "/dev/null")
		out := strings.ReplaceAll(res.stdout, "\r\n", "\n")
		if res.code != 0 || !strings.Contains(out, "on-a-tty\n") || !strings.Contains(out, want) ||
			!strings.Contains(out, "SHIFTER_IMAGE="+c.lookup(t, tag)+"\n") {
			t.Fatalf("%s: status %d\nstdout:\n%s\nstderr:\n%s", line, res.code, out, res.stderr)
		}
	})

	t.Run("pinned through a re-pull while queued", func(t *testing.T) {
		oldID := c.lookup(t, tag)
		res := c.asNobody(t, "sbatch", "--parsable", "--hold", "--image="+tag, "--output="+c.work+"/held-%j.out",
			"--wrap", fmt.Sprintf("srun -n 1 %s cat /etc/os-release", c.shifter))
		if res.code != 0 {
			t.Fatalf("sbatch --hold: %d %s", res.code, res.stderr)
		}
		job := strings.TrimSpace(strings.Split(res.stdout, ";")[0])
		newText := "PRETTY_NAME=\"re-published under the same tag\"\n"
		c.publish(t, newText)
		time.Sleep(1100 * time.Millisecond) // pull_update_timeout
		if r := c.root(t, c.img, "--config", c.conf, "pull", tag); r.code != 0 {
			t.Fatalf("re-pull: %s", r.stderr)
		}
		newID := c.lookup(t, tag)
		if newID == oldID {
			t.Fatalf("the re-pull did not change the tag's image (%s)", newID)
		}
		if r := c.root(t, "scontrol", "release", job); r.code != 0 {
			t.Fatalf("scontrol release: %s", r.stderr)
		}
		state := c.waitJob(t, job)
		out, _ := os.ReadFile(filepath.Join(c.work, "held-"+job+".out"))
		if state != "COMPLETED" {
			t.Fatalf("job %s ended %s:\n%s", job, state, out)
		}
		if !strings.Contains(string(out), want) || strings.Contains(string(out), newText) {
			t.Fatalf("the held job did not run the image pinned at submission (%s):\n%s", oldID, out)
		}
		// A job submitted now gets the new image.
		out2 := c.sbatchWait(t, "--image="+tag, "--wrap", fmt.Sprintf("srun -n 1 %s cat /etc/os-release", c.shifter))
		if !strings.Contains(out2, newText) {
			t.Fatalf("a new job did not get the re-published image:\n%s", out2)
		}
	})
}

// demoOSRelease is the demo image's /etc/os-release.
func demoOSRelease(t *testing.T) string {
	_, info, err := demoimage.Layer(demoimage.DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	return demoimage.OSRelease(info.Version)
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cluster) env() []string {
	return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_CONF=" + c.slurmCnf, "HOME=/nonexistent", "LC_ALL=C"}
}

func run(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", cmd.Path, err)
	}
	return result{code, out.String(), errb.String()}
}

func (c *cluster) root(t *testing.T, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = c.env()
	return run(t, cmd)
}

func (c *cluster) asNobody(t *testing.T, name string, args ...string) result {
	t.Helper()
	return c.asNobodyEnv(t, nil, name, args...)
}

func (c *cluster) asNobodyEnv(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(c.env(), env...)
	cmd.Dir = c.work
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID, Groups: []uint32{nobodyGID}}}
	return run(t, cmd)
}

// sbatchWait submits a job as nobody, waits for it and returns its output.
func (c *cluster) sbatchWait(t *testing.T, args ...string) string {
	t.Helper()
	out := filepath.Join(c.work, fmt.Sprintf("job-%d.out", time.Now().UnixNano()))
	res := c.asNobody(t, "sbatch", append([]string{"--wait", "--output=" + out}, args...)...)
	b, _ := os.ReadFile(out)
	if res.code != 0 {
		t.Fatalf("sbatch %q: status %d\nstdout: %s\nstderr: %s\njob output:\n%s", args, res.code, res.stdout, res.stderr, b)
	}
	return string(b)
}

// lookup returns the image id the gateway has for tag, asked as nobody.
func (c *cluster) lookup(t *testing.T, tag string) string {
	t.Helper()
	res := c.asNobody(t, c.img, "--config", c.conf, "lookup", tag)
	if res.code != 0 {
		t.Fatalf("shifterimg lookup %s: %s", tag, res.stderr)
	}
	return strings.TrimSpace(res.stdout)
}

// shifterdMounts reports whether shifterd has an image mounted.
func (c *cluster) shifterdMounts(t *testing.T) bool {
	for _, m := range testutil.Mounts(t) {
		if m.FSType == "fuse.shifterd" && strings.HasPrefix(m.MountPoint, c.dir+"/") {
			return true
		}
	}
	return false
}

var jobState = regexp.MustCompile(`JobState=(\S+)`)

// waitJob waits for a job to end and returns its final state.
func (c *cluster) waitJob(t *testing.T, job string) string {
	t.Helper()
	for i := 0; i < 600; i++ {
		res := c.root(t, "scontrol", "-o", "show", "job", job)
		m := jobState.FindStringSubmatch(res.stdout)
		if m != nil {
			switch m[1] {
			case "PENDING", "RUNNING", "CONFIGURING", "COMPLETING":
			default:
				return m[1]
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("job %s did not end in 2 minutes", job)
	return ""
}

// publish pushes the demo image to the registry, with osRelease as its
// /etc/os-release when not empty.
func (c *cluster) publish(t *testing.T, osRelease string) {
	t.Helper()
	c.publishAs(t, repo, osRelease)
}

func (c *cluster) publishAs(t *testing.T, repo, osRelease string) {
	t.Helper()
	img, _, err := demoimage.Image(demoimage.DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	if osRelease != "" {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/os-release", Mode: 0o644, Size: int64(len(osRelease))})
		tw.Write([]byte(osRelease))
		tw.Close()
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.Bytes())), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := name.ParseReference(c.registry+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func write(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, mode)
}

// daemon starts a long-running child with its output in a log file, and
// stops it (SIGTERM, then SIGKILL) at cleanup.
func (c *cluster) daemon(t *testing.T, logName string, env []string, name string, args ...string) {
	t.Helper()
	logPath := filepath.Join(c.dir, logName)
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	c.logs[logName] = logPath
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	f.Close()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
}

func waitFor(t *testing.T, what string, c *cluster, ok func() bool) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.dumpLogs(t)
	t.Fatalf("%s: not ready in 30 s", what)
}

func (c *cluster) dumpLogs(t *testing.T) {
	for n, p := range c.logs {
		b, _ := os.ReadFile(p)
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		t.Logf("--- %s:\n%s", n, b)
	}
}

func build(t *testing.T, root, out, pkg, ldflags string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", ldflags, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

func startCluster(t *testing.T) *cluster {
	root := testutil.ModuleRoot(t)
	// The setuid shifter and its configuration must be on a root-owned
	// path without world-writable directories: not /tmp.
	dir, err := os.MkdirTemp("/run", "shifter-slurm-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	c := &cluster{t: t, dir: dir, conf: filepath.Join(dir, "udiRoot.conf"), logs: map[string]string{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs(t)
		}
		for _, m := range testutil.Mounts(t) {
			if strings.HasPrefix(m.MountPoint, dir+"/") {
				t.Errorf("%s is still mounted after the test; not removing %s", m.MountPoint, dir)
				return
			}
		}
		os.RemoveAll(dir)
	})

	// Binaries.
	c.shifter = filepath.Join(dir, "shifter")
	c.img = filepath.Join(dir, "shifterimg")
	mod := "github.com/shifter-go/shifter"
	cfgFlag := "-X " + mod + "/udiroot.DefaultPath=" + c.conf
	build(t, root, c.shifter, "./cmd/shifter", cfgFlag+" -X "+mod+"/launcher.DefaultMountHelper="+filepath.Join(dir, "shifter-mount"))
	os.Chmod(c.shifter, os.ModeSetuid|0o755)
	build(t, root, filepath.Join(dir, "shifter-mount"), "./cmd/shifter-mount", "")
	build(t, root, c.img, "./cmd/shifterimg", cfgFlag)
	build(t, root, filepath.Join(dir, "shifter-gateway"), "./cmd/shifter-gateway", "")
	build(t, root, filepath.Join(dir, "shifterd"), "./cmd/shifterd", cfgFlag)
	plugin := filepath.Join(dir, "shifter_spank.so")
	cc := exec.Command("cc", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-fPIC", "-shared", "-o", plugin,
		filepath.Join(root, "contrib/slurm/shifter_spank.c"))
	if b, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, b)
	}

	// Registry with the demo image.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	c.registry = strings.TrimPrefix(reg.URL, "http://")
	c.publish(t, "")

	// Gateway on a unix socket, and the runtime's configuration.
	gwSock := filepath.Join(dir, "gw.sock")
	// pull_update_timeout 1s: a re-pull checks the registry again.
	gwConf := filepath.Join(dir, "gateway.json")
	write(t, gwConf, fmt.Sprintf(`{"listen": ["unix:%s"], "data_dir": %q, "pull_update_timeout": "1s",
  "registries": {%q: {"insecure": true}},
  "systems": {%q: {"image_dir": %q, "transfer": "local", "admins": ["root"]}}}`,
		gwSock, filepath.Join(dir, "gwdata"), c.registry, system, filepath.Join(dir, "images")), 0o644)
	c.daemon(t, "gateway.log", c.env(), filepath.Join(dir, "shifter-gateway"), "--config", gwConf)
	waitFor(t, "gateway socket", c, func() bool { _, err := os.Stat(gwSock); return err == nil })
	os.Mkdir(filepath.Join(dir, "udiMount"), 0o755)
	c.sock = filepath.Join(dir, "shifterd.sock")
	write(t, c.conf, fmt.Sprintf("system=%s\nimagePath=%s\nudiMount=%s\nimageGateway=unix:%s\ndefaultImageType=docker\n"+
		"shifterdSocket=%s\nshifterdIdleUnmount=2s\nnodeCacheDir=%s\nnodeCacheSize=256M\n",
		system, filepath.Join(dir, "images"), filepath.Join(dir, "udiMount"), gwSock, c.sock, filepath.Join(dir, "nodecache")), 0o644)
	if r := c.root(t, c.img, "--config", c.conf, "pull", "docker:"+c.registry+"/"+repo); r.code != 0 {
		t.Fatalf("shifterimg pull: %s%s", r.stdout, r.stderr)
	}

	// shifterd, the node daemon the prolog asks to warm the image.
	c.daemon(t, "shifterd.log", c.env(), filepath.Join(dir, "shifterd"), "--config", c.conf, "serve",
		"--mount-dir", filepath.Join(dir, "shifterd-mnt"))
	waitFor(t, "shifterd socket", c, func() bool { _, err := os.Stat(c.sock); return err == nil })

	// munged with a fresh key.
	mdir := filepath.Join(dir, "munge")
	os.Mkdir(mdir, 0o755)
	key := make([]byte, 1024)
	rand.Read(key)
	write(t, filepath.Join(mdir, "key"), string(key), 0o600)
	msock := filepath.Join(mdir, "munge.sock")
	c.daemon(t, "munged.log", c.env(), "munged", "-F", "--force", "--socket="+msock, "--key-file="+filepath.Join(mdir, "key"),
		"--pid-file="+filepath.Join(mdir, "pid"), "--log-file="+filepath.Join(mdir, "log"), "--seed-file="+filepath.Join(mdir, "seed"))
	waitFor(t, "munged socket", c, func() bool { _, err := os.Stat(msock); return err == nil })

	// Slurm: one node on this host, all state in dir/slurm.
	sdir := filepath.Join(dir, "slurm")
	for _, d := range []string{"", "state", "spool"} {
		os.Mkdir(filepath.Join(sdir, d), 0o755)
	}
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	plugstack := filepath.Join(sdir, "plugstack.conf")
	write(t, plugstack, fmt.Sprintf("required %s shifter_config=%s shifterimg=%s shifterd=%s shifterd_socket=%s\n",
		plugin, c.conf, c.img, filepath.Join(dir, "shifterd"), c.sock), 0o644)
	c.slurmCnf = filepath.Join(sdir, "slurm.conf")
	write(t, c.slurmCnf, fmt.Sprintf(`ClusterName=shiftertest
SlurmctldHost=%[1]s(127.0.0.1)
SlurmctldPort=%[2]d
SlurmdPort=%[3]d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=%[4]s
StateSaveLocation=%[5]s/state
SlurmdSpoolDir=%[5]s/spool/%%n
SlurmctldPidFile=%[5]s/slurmctld.pid
SlurmdPidFile=%[5]s/slurmd-%%n.pid
SlurmctldLogFile=%[5]s/slurmctld.log
SlurmdLogFile=%[5]s/slurmd-%%n.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=%[6]s
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=n1 NodeHostname=%[1]s NodeAddr=127.0.0.1 Port=%[3]d CPUs=2 State=UNKNOWN
NodeName=n2 NodeHostname=%[1]s NodeAddr=127.0.0.1 Port=%[7]d CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=10 State=UP
`, host, freePort(t), freePort(t), msock, sdir, plugstack, freePort(t)), 0o644)
	c.logs["slurmctld.log"] = filepath.Join(sdir, "slurmctld.log")
	c.daemon(t, "slurmctld.out", c.env(), "slurmctld", "-D", "-i", "-f", c.slurmCnf)
	// Two slurmd on this host, nodes n1 and n2 (distinct ports, spool
	// directories and logs).
	for _, n := range []string{"n1", "n2"} {
		os.Mkdir(filepath.Join(sdir, "spool", n), 0o755)
		c.logs["slurmd-"+n+".log"] = filepath.Join(sdir, "slurmd-"+n+".log")
		c.daemon(t, "slurmd-"+n+".out", c.env(), "slurmd", "-D", "-N", n, "-f", c.slurmCnf)
	}
	waitFor(t, "nodes n1 and n2 idle", c, func() bool {
		r := c.root(t, "sinfo", "-h", "-N", "-o", "%N %T")
		return strings.TrimSpace(r.stdout) == "n1 idle\nn2 idle"
	})

	c.work = filepath.Join(dir, "work")
	os.Mkdir(c.work, 0o755)
	os.Chown(c.work, nobodyUID, nobodyGID)
	return c
}
