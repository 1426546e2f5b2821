// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseFlagsRootfsOnly(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		tests     []string
		bigFiles  int
		dropAfter bool
		err       string
	}{
		{"default", nil, allTests, 4, false, ""},
		{"rootfs only drops the big tests", []string{"--rootfs-only"}, []string{"mount", "find", "stat", "tar", "py"}, 0, false, ""},
		{"issue 15's run", []string{"--rootfs-only", "--tests", "find,stat,tar,py", "--drop-after-mount"}, []string{"find", "stat", "tar", "py"}, 0, true, ""},
		{"big test asked", []string{"--rootfs-only", "--tests", "find,big"}, nil, 0, false, "no big files for the big test"},
		{"big files asked", []string{"--rootfs-only", "--big-files", "2"}, nil, 0, false, "the images have no big files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseFlags(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseFlags(%q) = %v, want an error with %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Tests, tc.tests) || cfg.BigFiles != tc.bigFiles || cfg.DropAfter != tc.dropAfter {
				t.Errorf("tests %q, big files %d, drop after mount %v; want %q, %d, %v", cfg.Tests, cfg.BigFiles, cfg.DropAfter, tc.tests, tc.bigFiles, tc.dropAfter)
			}
		})
	}
}

// TestTargets15 checks issue 15's rules on made-up medians: which are
// recorded, and which pass.
func TestTargets15(t *testing.T) {
	const img = "zstd-rootfs"
	r := &results{
		cfg:     &config{Tests: []string{"find", "tar"}},
		Methods: []string{"kernel", "squashfuse_ll", "shifter-mount"},
		Samples: map[string][]float64{},
		HWM:     map[string]int64{key(img, "shifter-mount"): 70 << 20},
	}
	set := func(m, test, phase string, s float64) { r.Samples[key(img, m, test, phase)] = []float64{s} }
	set("kernel", "find", "cold", 0.050)
	set("squashfuse_ll", "find", "cold", 0.150)
	set("shifter-mount", "find", "cold", 0.120) // ≤ squashfuse_ll, > 2× kernel
	set("kernel", "find", "warm", 0.020)
	set("shifter-mount", "find", "warm", 0.022) // exactly 1.1×
	set("kernel", "tar", "cold", 0.8)
	set("squashfuse_ll", "tar", "cold", 1.7)
	set("shifter-mount", "tar", "cold", 2.0) // > squashfuse_ll
	set("kernel", "tar", "warm", 0.3)
	set("shifter-mount", "tar", "warm", 0.4) // > 1.1×
	r.targets15(img)
	got := map[string]bool{}
	for _, tg := range r.Targets {
		if tg.Issue != 15 {
			t.Errorf("target %+v: issue %d, want 15", tg, tg.Issue)
		}
		got[tg.Test+" "+tg.Rule] = tg.Pass
	}
	want := map[string]bool{
		"find cold ≤ squashfuse_ll":        true,
		"find cold ≤ 2× kernel":            false,
		"find warm ≤ 1.1× kernel":          true,
		"tar cold ≤ squashfuse_ll":         false,
		"tar warm ≤ 1.1× kernel":           false,
		"server peak RSS (VmHWM) ≤ 64 MiB": false,
	}
	for k, v := range want {
		if p, ok := got[k]; !ok || p != v {
			t.Errorf("%s: recorded %v, pass %v; want pass %v", k, ok, p, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("targets %v, want exactly %v", got, want)
	}
	md := r.targetTable(15)
	for _, s := range []string{"Issue 15 targets for shifter-mount: 2 of 6 met", "| zstd-rootfs | server peak RSS (VmHWM) | ≤ 64 MiB | 70.0 MiB | 64.0 MiB | 1.09× | **no** |"} {
		if !strings.Contains(md, s) {
			t.Errorf("table lacks %q:\n%s", s, md)
		}
	}
}
