// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/udiroot"
)

// BenchmarkBuildSpec measures the front end's work for one start: tag
// resolution in a store of 100 images, ACL check, opening the squashfs,
// argv, environment and volumes (everything but mountns.Run).
func BenchmarkBuildSpec(b *testing.B) {
	store := b.TempDir()
	for i := range 100 {
		publish(b, store, fmt.Sprint("img", i), time.Unix(int64(i), 0), []string{fmt.Sprintf("app:%d", i)}, nil, nil)
	}
	cfg := udiroot.Default()
	cfg.ImagePath = store
	cfg.SiteFs = "/home;/scratch:/scratch:ro"
	cred, err := CallerCredential()
	if err != nil {
		b.Fatal(err)
	}
	opts, err := ParseArgs([]string{"-i", "app:50", "-V", "/tmp:/data", "-e", "A=1", "echo", "hi"}, nil, "docker")
	if err != nil {
		b.Fatal(err)
	}
	in := &buildInput{Opts: opts, Cfg: cfg, Mode: ModeUser, Cred: cred, Cwd: "/", Environ: []string{"PATH=/bin", "HOME=/h"},
		ParseVolumes: mountns.ParseVolumes, Log: discardLog()}
	b.ResetTimer()
	for b.Loop() {
		spec, err := buildSpec(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		spec.Image.Close()
		os.RemoveAll(in.EtcDir)
		in.EtcDir = ""
	}
}
