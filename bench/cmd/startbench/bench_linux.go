// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
	"github.com/shifter-go/shifter/imagestore"
)

// method starts a container one way.
type method struct {
	Name string   `json:"name"`
	What string   `json:"what"` // the command, for the report
	As   string   `json:"as"`   // "root" or the user's name
	argv []string // the command before CMD
	env  []string
	cred *syscall.Credential // nil: the driver's (root)
	dir  string              // "": the driver's
}

type results struct {
	Started     time.Time            `json:"started"`
	Seconds     float64              `json:"seconds"`
	Command     string               `json:"command"`
	Host        map[string]string    `json:"host"`
	Config      *config              `json:"config"`
	Image       string               `json:"image"`
	User        *runAs               `json:"user,omitempty"` // nil: every method as root
	ImageID     string               `json:"image_id"`
	Methods     []*method            `json:"methods"`
	Unavailable map[string]string    `json:"unavailable,omitempty"`
	Samples     map[string][]float64 `json:"samples"` // method/test -> seconds
	Medians     map[string]float64   `json:"medians"`
	Cold        *coldResults         `json:"cold,omitempty"`
	Leftovers   []string             `json:"leftovers,omitempty"`
	Errors      []string             `json:"errors,omitempty"`
}

func bench(ctx context.Context, cfg *config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (mounts, loop devices, chroot, setuid copies of shifter)")
	}
	if cfg.Pin {
		if err := benchutil.PinToCPU0("STARTBENCH_PINNED"); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var usr *runAs
	if !cfg.AsRoot {
		var err error
		if usr, err = lookupUser(cfg.User); err != nil {
			return err
		}
	}
	cache := &benchutil.Cache{Dir: cfg.CacheDir, Mirror: cfg.Mirror, Log: log}
	img, err := cache.Image(ctx, benchutil.ImageSpec{Comp: cfg.Comp})
	if err != nil {
		return err
	}
	rootfs, err := cache.Rootfs(ctx)
	if err != nil {
		return err
	}
	if rootfs, err = filepath.Abs(rootfs); err != nil {
		return err
	}
	binDir, err := filepath.Abs(cfg.BinDir)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "startbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// Readable by the user: the store, udiMount, ch-run's view of IMG.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// The udiRoot.conf files (and the setuid shifter copies) live in a
	// root-owned directory when the runtimes run as the user.
	confDir := tmp
	if usr != nil {
		if confDir, err = makeSetuidDir(cfg.SetuidDir); err != nil {
			return err
		}
		defer os.RemoveAll(confDir)
	}
	res := &results{
		Started: time.Now().UTC(), Command: strings.Join(os.Args, " "), Config: cfg, Image: img.Path, User: usr,
		Host:        map[string]string{"cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(), "cpus_online": benchutil.CPUsOnline(), "cpus_allowed": benchutil.CPUsAllowed()},
		Unavailable: map[string]string{}, Samples: map[string][]float64{}, Medians: map[string]float64{},
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		res.Host["kernel"] = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "charliecloud-runtime").Output(); err == nil {
		res.Host["charliecloud"] = string(out)
	}
	mnt := filepath.Join(tmp, "mnt")
	udi := filepath.Join(tmp, "udi")
	store := filepath.Join(tmp, "images")
	for _, d := range []string{mnt, udi, store} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	id, err := publish(store, img.Path)
	if err != nil {
		return err
	}
	res.ImageID = id
	confs := map[string]string{}
	for _, mode := range []string{"loop", "fuse"} {
		p := filepath.Join(confDir, "udiRoot-"+mode+".conf")
		conf := fmt.Sprintf("imagePath=%s\nudiMount=%s\nimageMount=%s\n", store, udi, mode)
		if err := writeRootFile(p, []byte(conf)); err != nil {
			return err
		}
		confs[mode] = p
	}
	if slices.Contains(cfg.Methods, "shifterd") {
		p, stop, err := startShifterd(ctx, tmp, confDir, store, udi, binDir)
		if err != nil {
			return err
		}
		defer stop()
		confs["shifterd"] = p
	}
	// The shifter each method runs: bin/shifter as root with
	// SHIFTER_CONFIG, or a setuid copy reading its mode's conf.
	shifters := map[string]string{}
	for _, name := range cfg.Methods {
		mode := shifterMode(name)
		if mode == "" {
			continue
		}
		if usr == nil {
			shifters[mode] = filepath.Join(binDir, "shifter")
			continue
		}
		log.Info("building a setuid shifter", "mode", mode)
		if shifters[mode], err = buildSetuidShifter(ctx, cfg.Src, confDir, binDir, mode); err != nil {
			return err
		}
	}
	env := append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
	if os.Getenv("USER") == "" {
		env = append(env, "USER=root") // ch-run insists on it
	}
	shifterEnv := func(mode string) []string {
		if usr != nil {
			return nil // setuid: the conf is built in
		}
		return []string{"SHIFTER_CONFIG=" + confs[mode]}
	}
	shifterWhat := func(mode string) string {
		if usr != nil {
			return fmt.Sprintf("imageMount=%s; a setuid-root copy of shifter, its udiRoot.conf built in", mode)
		}
		return fmt.Sprintf("imageMount=%s; bin/shifter, SHIFTER_CONFIG", mode)
	}
	q := shellQuote
	all := map[string]*method{
		"floor": {Name: "floor", What: "unshare -m sh -c 'mount -t squashfs -o loop,ro IMG MNT && chroot MNT CMD'",
			argv: []string{"unshare", "-m", "sh", "-c", fmt.Sprintf(`mount -t squashfs -o loop,ro %s %s && chroot %s "$@"`, q(img.Path), q(mnt), q(mnt)), "sh"}},
		"floor-fuse": {Name: "floor-fuse", What: "unshare -m sh -c 'squashfuse_ll IMG MNT && chroot MNT CMD; umount MNT'",
			argv: []string{"unshare", "-m", "sh", "-c", fmt.Sprintf(`squashfuse_ll %s %s && chroot %s "$@"; r=$?; umount %s; exit $r`, q(img.Path), q(mnt), q(mnt), q(mnt)), "sh"}},
		"shifter-loop": {Name: "shifter-loop", What: "shifter --image=id:ID CMD (" + shifterWhat("loop") + ")",
			argv: []string{shifters["loop"], "--image=id:" + id}, env: shifterEnv("loop")},
		"shifter-fuse": {Name: "shifter-fuse", What: "shifter --image=id:ID CMD (" + shifterWhat("fuse") + ")",
			argv: []string{shifters["fuse"], "--image=id:" + id}, env: shifterEnv("fuse")},
		"shifterd": {Name: "shifterd", What: "shifter --image=id:ID CMD through shifterd's shared mount (shifterd running, node cache; " + shifterWhat("shifterd") + ")",
			argv: []string{shifters["shifterd"], "--image=id:" + id}, env: shifterEnv("shifterd")},
		"host": {Name: "host", What: "CMD on the host itself (no container; Debian's own python3)",
			argv: []string{"env", "PATH=/usr/bin:/bin"}},
		"ch-run": {Name: "ch-run", What: "ch-run IMG -- CMD (the squashfs through ch-run's built-in squashfuse)",
			argv: []string{"ch-run", img.Path, "--"}},
		"ch-run-dir": {Name: "ch-run-dir", What: "ch-run ROOTFS -- CMD (the unpacked debootstrap directory, no squashfs)",
			argv: []string{"ch-run", rootfs, "--"}},
	}
	want, err := os.ReadFile(filepath.Join(rootfs, "etc/debian_version"))
	if err != nil {
		return fmt.Errorf("read rootfs debian_version: %w", err)
	}
	var methods []*method
	for _, name := range cfg.Methods {
		m := all[name]
		m.As = "root"
		if usr != nil && userMethod(name) {
			// The user's environment; its credentials set by exec, its
			// working directory / (as for a login in a batch job).
			m.As, m.cred, m.dir = usr.Name, usr.credential(), "/"
			m.env = append(usr.env(os.Environ()), m.env...)
		} else {
			m.env = append(append([]string{}, env...), m.env...)
		}
		if _, err := exec.LookPath(m.argv[0]); err != nil {
			res.Unavailable[name] = fmt.Sprintf("%s not found", m.argv[0])
			continue
		}
		// Probe: the container must show the image's /etc/debian_version
		// (the host is itself a Debian 12, like the image).
		var out bytes.Buffer
		if _, err := m.run(ctx, &out, []string{"cat", "/etc/debian_version"}); err != nil {
			res.Unavailable[name] = err.Error()
			log.Warn("method unavailable", "method", name, "err", err)
			continue
		}
		if name != "host" && !bytes.Equal(out.Bytes(), want) {
			res.Unavailable[name] = fmt.Sprintf("shows /etc/debian_version %q, want %q", out.String(), want)
			continue
		}
		methods = append(methods, m)
	}
	res.Methods = methods
	if len(methods) == 0 {
		return fmt.Errorf("no method works: %v", res.Unavailable)
	}
	cmds := map[string][]string{"true": {"/bin/true"}, "py": {"python3", "-c", cfg.Python}}
	start := time.Now()
	for rep := range cfg.Reps {
		for _, test := range cfg.Tests {
			for i := range methods {
				m := methods[(i+rep)%len(methods)]
				el, err := m.run(ctx, io.Discard, cmds[test])
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					res.Errors = append(res.Errors, fmt.Sprintf("run %d %s %s: %v", rep+1, m.Name, test, err))
					continue
				}
				k := m.Name + "/" + test
				res.Samples[k] = append(res.Samples[k], el)
			}
		}
	}
	for k, v := range res.Samples {
		res.Medians[k] = benchutil.Median(v)
	}
	if cfg.Cold > 0 && slices.Contains(cfg.Methods, "shifterd") && slices.Contains(cfg.Tests, "py") {
		if res.Cold, err = coldShifterd(ctx, tmp, store, udi, binDir, id, cmds["py"], cfg.Cold); err != nil {
			res.Errors = append(res.Errors, "cold shifterd starts: "+err.Error())
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.Leftovers = leftovers(img.Path, mnt, udi)
	md := res.markdown()
	fmt.Print(md)
	if cfg.ResultsDir != "" {
		paths, err := benchutil.WriteResults(cfg.ResultsDir, "start-"+res.Started.Format("20060102-150405"), res, md)
		if err != nil {
			return err
		}
		log.Info("wrote results", "path", paths[0])
	}
	return nil
}

func (m *method) run(ctx context.Context, stdout io.Writer, command []string) (float64, error) {
	argv := append(append([]string{}, m.argv...), command...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = m.env
	cmd.Dir = m.dir
	if m.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.cred}
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	el := time.Since(start).Seconds()
	if err != nil {
		s := strings.TrimSpace(stderr.String())
		if len(s) > 400 {
			s = s[:400] + "..."
		}
		return 0, fmt.Errorf("%s: %w: %s", m.Name, err, s)
	}
	return el, nil
}

// publish puts a copy of the squashfs into the image store dir under an
// id made from its content (a real gateway uses the manifest digest).
func publish(dir, img string) (string, error) {
	src, err := os.Open(img)
	if err != nil {
		return "", fmt.Errorf("open image: %w", err)
	}
	defer src.Close()
	tmp, err := imagestore.CreateTemp(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("copy image into store: %w", err)
	}
	id := hex.EncodeToString(h.Sum(nil))
	m := &imagestore.Metadata{
		ID: id, Format: imagestore.FormatSquashfs, Tags: []string{"bench/rootfs:latest"},
		Env:     []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Created: time.Now().UTC(),
	}
	if err := imagestore.Publish(dir, tmp.Name(), m); err != nil {
		return "", err
	}
	return id, nil
}

// leftovers lists what the runs left behind: mounts of our directories
// or the image, loop devices on the image, processes naming it.
func leftovers(img string, dirs ...string) []string {
	time.Sleep(200 * time.Millisecond) // loop autoclear and FUSE exits are asynchronous
	var out []string
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			for _, d := range append(dirs, img) {
				if strings.Contains(l, " "+d) {
					out = append(out, "mount: "+l)
				}
			}
		}
	}
	if b, err := exec.Command("losetup", "-j", img).Output(); err == nil && len(bytes.TrimSpace(b)) > 0 {
		out = append(out, "loop: "+strings.TrimSpace(string(b)))
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || e.Name() == fmt.Sprint(os.Getpid()) {
			continue
		}
		if bytes.Contains(b, []byte(img)) {
			out = append(out, "process "+e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (r *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# startbench %s\n\n", r.Started.Format("20060102-150405"))
	fmt.Fprintf(&b, "Command: `%s` (%d runs of each, interleaved, %s).  \n", r.Command, r.Config.Reps, time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(&b, "Machine: kernel %s, CPUs %s online, charliecloud %s.  \n", r.Host["kernel"], r.Host["cpus_online"], r.Host["charliecloud"])
	if r.Config.Pin {
		fmt.Fprintf(&b, "Pinned: yes, every process on CPU 0 (`taskset -c 0`: the driver, the runtimes, the FUSE servers they start, the commands; Cpus_allowed_list %s).  \n", r.Host["cpus_allowed"])
	} else {
		fmt.Fprintf(&b, "Pinned: no (Cpus_allowed_list %s).  \n", r.Host["cpus_allowed"])
	}
	if u := r.User; u != nil {
		fmt.Fprintf(&b, "User: the runtimes run as %s (uid %d, gid %d), started by the driver with that user's credentials set at exec (no setpriv or su in the timed command: nothing to subtract); ", u.Name, u.UID, u.GID)
		b.WriteString("shifter is a setuid-root copy built for the run (its udiRoot.conf and shifter-mount compiled in); floor and floor-fuse run as root (they mount).  \n")
	} else {
		b.WriteString("User: every method runs as root (`--as-root`; shifter is bin/shifter with SHIFTER_CONFIG).  \n")
	}
	fmt.Fprintf(&b, "Image: %s (rootfs only), id %s…; py runs `python3 -c '%s'`.\n\n", filepath.Base(r.Image), r.ImageID[:12], r.Config.Python)
	for _, m := range r.Methods {
		fmt.Fprintf(&b, "- %s (as %s): `%s`\n", m.Name, m.As, m.What)
	}
	for name, why := range r.Unavailable {
		fmt.Fprintf(&b, "- **%s not measured**: %s\n", name, why)
	}
	b.WriteString("\n## Medians (ratio to the floor)\n\n")
	t := &benchutil.Table{Header: []string{"command"}}
	for _, m := range r.Methods {
		t.Header = append(t.Header, m.Name)
	}
	for _, test := range r.Config.Tests {
		row := []string{test}
		base := r.median("floor", test)
		for _, m := range r.Methods {
			row = append(row, benchutil.Cell(r.median(m.Name, test), base, m.Name == "floor"))
		}
		t.Rows = append(t.Rows, row)
	}
	b.WriteString(t.Markdown())
	b.WriteString("\n## Issue 15 targets\n\n")
	for _, test := range r.Config.Tests {
		fmt.Fprintf(&b, "- %s: shifter-fuse / ch-run = %s\n", test, target(r.median("shifter-fuse", test), r.median("ch-run", test), 1))
	}
	if slices.Contains(r.Config.Tests, "true") {
		fmt.Fprintf(&b, "- true: shifter-loop / floor = %s\n", target(r.median("shifter-loop", "true"), r.median("floor", "true"), 1.2))
	}
	if slices.Contains(r.Config.Methods, "shifterd") {
		b.WriteString("\n## Issue 12 targets (shifterd)\n\n")
		for _, test := range r.Config.Tests {
			sd := r.median("shifterd", test)
			fmt.Fprintf(&b, "- %s: shifterd / host = %s", test, target(sd, r.median("host", test), 1.5))
			for _, m := range []string{"shifter-loop", "shifter-fuse", "ch-run"} {
				fmt.Fprintf(&b, "; shifterd / %s = %s", m, target(sd, r.median(m, test), 1))
			}
			b.WriteString("\n")
		}
	}
	if r.Cold != nil {
		b.WriteString(r.Cold.markdown())
	}
	b.WriteString("\n## Issue 3 targets\n\n")
	for _, test := range r.Config.Tests {
		loop, fuse, floor := r.median("shifter-loop", test), r.median("shifter-fuse", test), r.median("floor", test)
		fmt.Fprintf(&b, "- %s: shifter-loop / floor = %s; shifter-fuse / shifter-loop = %s\n",
			test, target(loop, floor, 1.5), target(fuse, loop, 1.5))
	}
	if len(r.Leftovers) == 0 {
		b.WriteString("\nLeft behind after all runs: nothing (no mount, loop device or process naming the image).\n")
	} else {
		b.WriteString("\n## Left behind after all runs\n\n")
		for _, l := range r.Leftovers {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	if len(r.Errors) > 0 {
		b.WriteString("\n## Errors\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	return b.String()
}

// target formats ours/against against the limit ratio: "1.1× (target ≤
// 1.2×): met", "... **not met**", or "n/a (not measured)". A limit of 1
// reads "at or below".
func target(ours, against, limit float64) string {
	if math.IsNaN(ours) || math.IsNaN(against) || against <= 0 {
		return "n/a (not measured)"
	}
	verdict := "met"
	if ours > against*limit {
		verdict = "**not met**"
	}
	return fmt.Sprintf("%.2f× (target ≤ %s×): %s", ours/against, strconv.FormatFloat(limit, 'f', -1, 64), verdict)
}

func (r *results) median(method, test string) float64 {
	return benchutil.Median(r.Samples[method+"/"+test])
}

// startShifterd runs bin/shifterd for the shifterd method on the store,
// with a node cache and a long idle time, and warms the image's shared
// mount with one start so that the timed starts all find it. It returns
// the method's udiRoot.conf and a stop function.
func startShifterd(ctx context.Context, tmp, confDir, store, udi, binDir string) (string, func(), error) {
	sock := filepath.Join(tmp, "shifterd.sock")
	conf := filepath.Join(confDir, "udiRoot-shifterd.conf")
	c := fmt.Sprintf("imagePath=%s\nudiMount=%s\nimageMount=shifterd\nshifterdSocket=%s\nshifterdIdleUnmount=1h\nnodeCacheDir=%s\nnodeCacheSize=4G\n",
		store, udi, sock, filepath.Join(tmp, "nodecache"))
	if err := writeRootFile(conf, []byte(c)); err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "shifterd"), "--config", conf, "serve", "--mount-dir", filepath.Join(tmp, "sdmnt"))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("shifterd: %w", err)
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return conf, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("shifterd did not start: %s", log.String())
		}
	}
}
