// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
)

type imageInfo struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Bytes   int64  `json:"bytes"`
	Entries int64  `json:"entries"`
	BigSize int64  `json:"big_bytes_total"`
}

type target struct {
	Issue   int     `json:"issue"`
	Image   string  `json:"image"`
	Test    string  `json:"test"`
	Rule    string  `json:"rule"`
	Ours    float64 `json:"ours_s"`
	Against float64 `json:"against_s"`
	Limit   float64 `json:"limit_ratio"`
	Pass    bool    `json:"pass"`
	Bytes   bool    `json:"bytes,omitempty"` // Ours and Against are bytes, not seconds
}

type results struct {
	Started     time.Time                `json:"started"`
	Seconds     float64                  `json:"seconds"`
	Command     string                   `json:"command"`
	Host        map[string]string        `json:"host"`
	Config      *config                  `json:"config"`
	Images      []imageInfo              `json:"images"`
	Methods     []string                 `json:"methods"`
	Unavailable map[string]string        `json:"unavailable,omitempty"`
	Samples     map[string][]float64     `json:"samples"` // image/method/test/phase -> seconds
	Medians     map[string]float64       `json:"medians"`
	HWM         map[string]int64         `json:"vmhwm_bytes"` // image/method -> max over all mounts
	Verify      map[string]*verification `json:"verify"`      // image/method
	Checks      map[string]string        `json:"checks"`      // image/method -> "ok" or what differs
	Targets     []target                 `json:"targets,omitempty"`
	Errors      []string                 `json:"errors,omitempty"`
	Interrupted string                   `json:"interrupted,omitempty"`
	DAMON       string                   `json:"damon,omitempty"`
	cfg         *config
	resultsTag  string
}

func newResults(cfg *config) *results {
	return &results{
		Started:     time.Now().UTC(),
		Command:     strings.Join(os.Args, " "),
		Host:        hostInfo(),
		Config:      cfg,
		Unavailable: map[string]string{},
		Samples:     map[string][]float64{},
		Medians:     map[string]float64{},
		HWM:         map[string]int64{},
		Verify:      map[string]*verification{},
		Checks:      map[string]string{},
		cfg:         cfg,
		resultsTag:  benchutil.Stamp(time.Now()),
	}
}

func hostInfo() map[string]string {
	h := map[string]string{"cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(), "cpus_online": benchutil.CPUsOnline()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
				h["cpus_allowed"] = strings.TrimSpace(v)
			}
		}
	}
	if n, err := os.Hostname(); err == nil {
		h["hostname"] = n
	}
	if out, err := exec.Command("mksquashfs", "-version").Output(); err == nil {
		h["mksquashfs"] = strings.SplitN(string(out), "\n", 2)[0]
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "squashfuse").Output(); err == nil {
		h["squashfuse"] = string(out)
	}
	return h
}

func key(parts ...string) string { return strings.Join(parts, "/") }

func (r *results) add(img *benchImage, method, test, phase string, s float64) {
	k := key(img.Spec.Name(), method, test, phase)
	r.Samples[k] = append(r.Samples[k], s)
}

func (r *results) noteHWM(img *benchImage, method string, b int64) {
	k := key(img.Spec.Name(), method)
	r.HWM[k] = max(r.HWM[k], b)
}

func (r *results) setVerify(img *benchImage, method string, v *verification) {
	r.Verify[key(img.Spec.Name(), method)] = v
}

func (r *results) addImage(img *benchImage) {
	info := imageInfo{Name: img.Spec.Name(), Path: img.Path}
	if st, err := os.Stat(img.Path); err == nil {
		info.Bytes = st.Size()
	}
	for _, b := range img.Big {
		info.BigSize += b.Size
	}
	r.Images = append(r.Images, info)
}

func (r *results) median(img, method, test, phase string) float64 {
	return benchutil.Median(r.Samples[key(img, method, test, phase)])
}

// finish computes medians, the output check and the issue-2 targets.
func (r *results) finish(start time.Time, imgs []*benchImage, methods []*method) {
	r.Seconds = time.Since(start).Seconds()
	for _, m := range methods {
		r.Methods = append(r.Methods, m.name)
	}
	for k, v := range r.Samples {
		r.Medians[k] = benchutil.Median(v)
	}
	for i, img := range imgs {
		name := img.Spec.Name()
		ref := r.Verify[key(name, "kernel")]
		if ref != nil {
			r.Images[i].Entries = ref.Entries
		}
		for _, m := range r.Methods {
			if v := r.Verify[key(name, m)]; v != nil {
				r.Checks[key(name, m)] = v.compare(ref, img)
				if ref != nil && v != ref && v.StatCRC != ref.StatCRC && r.cfg.ResultsDir != "" {
					r.writeListing(name, m, v)
					r.writeListing(name, "kernel", ref)
				}
			}
		}
		r.targets(name)
		r.targets15(name)
	}
}

func (r *results) writeListing(img, method string, v *verification) {
	if err := os.MkdirAll(r.cfg.ResultsDir, 0o755); err != nil {
		return
	}
	p := filepath.Join(r.cfg.ResultsDir, fmt.Sprintf("mount-%s-stat-%s-%s.txt", r.resultsTag, img, method))
	os.WriteFile(p, v.stat, 0o644)
}

// targets records issue 2's targets for shifter-mount: every warm figure
// at most 1.2x the kernel's, every cold figure no slower than
// squashfuse_ll's, cold sequential reads of big gzip and xz files faster
// than the kernel's.
func (r *results) targets(img string) {
	const ours = "shifter-mount"
	if !r.has(ours) {
		return
	}
	comp := strings.SplitN(img, "-", 2)[0]
	for _, t := range r.cfg.Tests {
		if r.has("kernel") {
			r.addTarget(2, img, t+" warm", "≤ 1.2× kernel", r.median(img, ours, t, "warm"), r.median(img, "kernel", t, "warm"), 1.2)
		}
		if r.has("squashfuse_ll") {
			r.addTarget(2, img, t+" cold", "≤ squashfuse_ll", r.median(img, ours, t, "cold"), r.median(img, "squashfuse_ll", t, "cold"), 1)
		}
		if (t == "big" || t == "bigpar") && (comp == "gzip" || comp == "xz") && r.has("kernel") {
			r.addTarget(2, img, t+" cold", "< kernel", r.median(img, ours, t, "cold"), r.median(img, "kernel", t, "cold"), 1)
		}
	}
}

// maxServerRSS is issue 15's budget for shifter-mount's peak RSS.
const maxServerRSS = 64 << 20

// targets15 records issue 15's targets for shifter-mount: every cold
// figure at or below squashfuse_ll's, cold find and stat within 2x the
// kernel's, every warm figure at most 1.1x the kernel's, the server's
// peak RSS at most 64 MiB.
func (r *results) targets15(img string) {
	const ours = "shifter-mount"
	if !r.has(ours) {
		return
	}
	for _, t := range r.cfg.Tests {
		if r.has("squashfuse_ll") {
			r.addTarget(15, img, t+" cold", "≤ squashfuse_ll", r.median(img, ours, t, "cold"), r.median(img, "squashfuse_ll", t, "cold"), 1)
		}
		if r.has("kernel") && (t == "find" || t == "stat") {
			r.addTarget(15, img, t+" cold", "≤ 2× kernel", r.median(img, ours, t, "cold"), r.median(img, "kernel", t, "cold"), 2)
		}
		if r.has("kernel") {
			r.addTarget(15, img, t+" warm", "≤ 1.1× kernel", r.median(img, ours, t, "warm"), r.median(img, "kernel", t, "warm"), 1.1)
		}
	}
	if h := r.HWM[key(img, ours)]; h > 0 {
		r.Targets = append(r.Targets, target{Issue: 15, Image: img, Test: "server peak RSS (VmHWM)", Rule: "≤ 64 MiB",
			Ours: float64(h), Against: maxServerRSS, Limit: 1, Pass: h <= maxServerRSS, Bytes: true})
	}
}

// addTarget records ours ≤ against × limit, unless either was not
// measured.
func (r *results) addTarget(issue int, img, test, rule string, ours, against, limit float64) {
	if math.IsNaN(ours) || math.IsNaN(against) {
		return
	}
	r.Targets = append(r.Targets, target{Issue: issue, Image: img, Test: test, Rule: rule, Ours: ours, Against: against, Limit: limit, Pass: ours <= against*limit})
}

func (r *results) has(method string) bool {
	for _, m := range r.Methods {
		if m == method {
			return true
		}
	}
	return false
}

func (r *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# mountbench %s\n\n", r.resultsTag)
	fmt.Fprintf(&b, "Command: `%s` (%d repetitions asked, %d cold and warm mounts in each for the mount figures, %s total).  \n", r.Command, r.cfg.Reps, r.cfg.MountReps, time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(&b, "Machine: kernel %s, CPUs %s online, %s, squashfuse %s, %s.  \n", r.Host["kernel"], r.Host["cpus_online"], r.Host["mksquashfs"], r.Host["squashfuse"], r.Host["go"])
	if r.cfg.Pin {
		fmt.Fprintf(&b, "Pinned: yes, the driver, the tools and the FUSE servers on CPU 0 (`taskset -c 0`; Cpus_allowed_list %s; the kernel's loop and FUSE work is not pinned).  \n", r.Host["cpus_allowed"])
	} else {
		fmt.Fprintf(&b, "Pinned: no (Cpus_allowed_list %s).  \n", r.Host["cpus_allowed"])
	}
	if r.cfg.DropAfter {
		b.WriteString("Cold runs: drop-after-mount: a fresh mount, then `sync; echo 3 > /proc/sys/vm/drop_caches`, then the test; warm: the test again on the same mount.\n\n")
	} else {
		b.WriteString("Cold runs: `sync; echo 3 > /proc/sys/vm/drop_caches`, then a fresh mount, then the test; warm: the test again on the same mount.\n\n")
	}
	if r.Interrupted != "" {
		fmt.Fprintf(&b, "**Run %s.**\n\n", r.Interrupted)
	}
	if r.DAMON != "" {
		fmt.Fprintf(&b, "%s.\n\n", r.DAMON)
	}
	b.WriteString("Images (rootfs: debootstrap --variant=minbase --include=python3 bookworm; big files under /bench-big; mksquashfs defaults, 128 KiB blocks):\n\n")
	for _, im := range r.Images {
		fmt.Fprintf(&b, "- %s: %s, %d entries, %s of big files\n", im.Name, benchutil.MiB(im.Bytes), im.Entries, benchutil.MiB(im.BigSize))
	}
	for m, why := range r.Unavailable {
		fmt.Fprintf(&b, "- **%s not measured**: %s\n", m, why)
	}
	fmt.Fprintf(&b, "\n## Medians (ratio to the kernel)\n\n")
	t := &benchutil.Table{Header: []string{"test"}}
	for _, im := range r.Images {
		for _, m := range r.Methods {
			t.Header = append(t.Header, strings.SplitN(im.Name, "-", 2)[0]+" "+m)
		}
	}
	for _, test := range r.cfg.Tests {
		for _, phase := range []string{"cold", "warm"} {
			row := []string{test + " " + phase}
			for _, im := range r.Images {
				base := r.median(im.Name, "kernel", test, phase)
				for _, m := range r.Methods {
					row = append(row, benchutil.Cell(r.median(im.Name, m, test, phase), base, m == "kernel"))
				}
			}
			t.Rows = append(t.Rows, row)
		}
	}
	hwm := []string{"FUSE server VmHWM (max)"}
	check := []string{"output check vs kernel"}
	for _, im := range r.Images {
		for _, m := range r.Methods {
			if h := r.HWM[key(im.Name, m)]; h > 0 {
				hwm = append(hwm, benchutil.MiB(h))
			} else {
				hwm = append(hwm, "–")
			}
			c := r.Checks[key(im.Name, m)]
			if c == "" {
				c = "–"
			}
			check = append(check, c)
		}
	}
	t.Rows = append(t.Rows, hwm, check)
	b.WriteString(t.Markdown())

	if slices.Contains(r.cfg.Tests, "big") || slices.Contains(r.cfg.Tests, "bigpar") {
		b.WriteString("\n## Big-file throughput (MB/s, from the medians)\n\n")
		tt := &benchutil.Table{Header: []string{"image"}}
		for _, test := range []string{"big", "bigpar"} {
			if !slices.Contains(r.cfg.Tests, test) {
				continue
			}
			for _, m := range r.Methods {
				tt.Header = append(tt.Header, fmt.Sprintf("%s %s cold", test, m))
			}
		}
		for _, im := range r.Images {
			row := []string{strings.SplitN(im.Name, "-", 2)[0]}
			for _, test := range []string{"big", "bigpar"} {
				if !slices.Contains(r.cfg.Tests, test) {
					continue
				}
				for _, m := range r.Methods {
					s := r.median(im.Name, m, test, "cold")
					if math.IsNaN(s) || s == 0 {
						row = append(row, "–")
					} else {
						row = append(row, fmt.Sprintf("%.0f", float64(im.BigSize)/s/1e6))
					}
				}
			}
			tt.Rows = append(tt.Rows, row)
		}
		b.WriteString(tt.Markdown())
	}
	for _, issue := range []int{2, 15} {
		b.WriteString(r.targetTable(issue))
	}
	if len(r.Errors) > 0 {
		b.WriteString("\n## Errors\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	return b.String()
}

// targetTable renders one issue's targets ("" when there are none).
func (r *results) targetTable(issue int) string {
	var ts []target
	pass := 0
	for _, t := range r.Targets {
		if t.Issue == issue {
			ts = append(ts, t)
			if t.Pass {
				pass++
			}
		}
	}
	if len(ts) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Issue %d targets for shifter-mount: %d of %d met\n\n", issue, pass, len(ts))
	tt := &benchutil.Table{Header: []string{"image", "figure", "target", "shifter-mount", "reference", "ratio", "met"}}
	for _, t := range ts {
		met := "yes"
		if !t.Pass {
			met = "**no**"
		}
		o, a := benchutil.Seconds(t.Ours), benchutil.Seconds(t.Against)
		if t.Bytes {
			o, a = benchutil.MiB(int64(t.Ours)), benchutil.MiB(int64(t.Against))
		}
		tt.Rows = append(tt.Rows, []string{t.Image, t.Test, t.Rule, o, a, fmt.Sprintf("%.2f×", t.Ours/t.Against), met})
	}
	b.WriteString(tt.Markdown())
	return b.String()
}

// write stores the markdown and the JSON under dir and returns their paths.
func (r *results) write(dir, md string) ([]string, error) {
	return benchutil.WriteResults(dir, "mount-"+r.resultsTag, r, md)
}
