// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/udiroot"
)

// TestResolveArgv holds the cases of Shifter's calculate_args test
// (src/test/test_shifter_core.cpp).
func TestResolveArgv(t *testing.T) {
	img := &imagestore.Metadata{Entrypoint: []string{"/entry", "-x"}, Cmd: []string{"cmd1", "cmd2"}}
	noEntry := &imagestore.Metadata{Cmd: []string{"cmd1"}}
	bare := optional{set: true, bare: true}
	val := optional{set: true, value: "/bin/x"}
	tests := []struct {
		name    string
		command []string
		entry   optional
		img     *imagestore.Metadata
		want    []string
		wantErr bool
	}{
		{"no command no entrypoint", nil, optional{}, img, []string{"/bin/sh"}, false},
		{"command only", []string{"ls", "-l"}, optional{}, img, []string{"ls", "-l"}, false},
		{"bare entrypoint", nil, bare, img, []string{"/entry", "-x", "cmd1", "cmd2"}, false},
		{"bare entrypoint with command", []string{"a", "b"}, bare, img, []string{"/entry", "-x", "a", "b"}, false},
		{"entrypoint value", nil, val, img, []string{"/bin/x"}, false},
		{"entrypoint value with args", []string{"a", "b"}, val, img, []string{"/bin/x", "a", "b"}, false},
		{"bare entrypoint, image has none", nil, bare, noEntry, nil, true},
		{"bare entrypoint, local image", nil, bare, nil, nil, true},
		{"local image command", []string{"id"}, optional{}, nil, []string{"id"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveArgv(tc.command, tc.entry, tc.img)
			if tc.wantErr {
				if err == nil || ExitCode(err) != ExitUsage {
					t.Fatalf("resolveArgv = %q, %v; want usage error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("resolveArgv (-want +got):\n%s", d)
			}
		})
	}
	// The image's slices are not modified by appending.
	if _, err := resolveArgv([]string{"z"}, bare, img); err != nil || len(img.Entrypoint) != 2 || img.Cmd[0] != "cmd1" {
		t.Errorf("image metadata modified: %+v", img)
	}
}

func TestResolveWorkdir(t *testing.T) {
	img := &imagestore.Metadata{WorkDir: "/app"}
	tests := []struct {
		name    string
		wd      optional
		img     *imagestore.Metadata
		want    string
		wantErr bool
	}{
		{"default is cwd", optional{}, img, "/home/u/run", false},
		{"value", optional{set: true, value: "/scratch"}, img, "/scratch", false},
		{"bare uses image WORKDIR", optional{set: true, bare: true}, img, "/app", false},
		{"bare without WORKDIR", optional{set: true, bare: true}, &imagestore.Metadata{}, "", true},
		{"bare with local image", optional{set: true, bare: true}, nil, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveWorkdir(tc.wd, tc.img, "/home/u/run")
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("resolveWorkdir = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestWrapUserHooks runs the wrapped command with the host's /bin/sh,
// which is what runs it inside the container.
func TestWrapUserHooks(t *testing.T) {
	dir := t.TempDir()
	okHook := filepath.Join(dir, "ok.sh")
	badHook := filepath.Join(dir, "bad.sh")
	log := filepath.Join(dir, "log")
	must(t, os.WriteFile(okHook, []byte("echo hook-ran >> "+log+"\n"), 0o644)) // not executable: run by /bin/sh
	must(t, os.WriteFile(badHook, []byte("exit 3\n"), 0o644))

	same, err := wrapUserHooks([]string{"a"}, nil)
	if err != nil || !cmp.Equal(same, []string{"a"}) {
		t.Errorf("wrapUserHooks without hooks = %q, %v", same, err)
	}
	tests := []struct {
		name     string
		argv     []string
		hooks    []string
		wantCode int
		wantOut  string
		wantErr  string
		wantLog  string
	}{
		{"hooks then command", []string{"sh", "-c", `echo "$0 $1"`, "arg0", "arg 1"}, []string{okHook, okHook}, 0, "arg0 arg 1\n", "", "hook-ran\nhook-ran\n"},
		{"command status kept", []string{"sh", "-c", "exit 9"}, []string{okHook}, 9, "", "", "hook-ran\n"},
		{"failing hook stops", []string{"sh", "-c", "echo never"}, []string{okHook, badHook}, userhookExit, "", "module userhook " + badHook + " failed (status 3)", "hook-ran\n"},
		{"command not found", []string{"/nonexistent/cmd"}, []string{okHook}, 127, "", "", "hook-ran\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(log)
			argv, err := wrapUserHooks(tc.argv, tc.hooks)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(argv[0], argv[1:]...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || stdout.String() != tc.wantOut || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, %q, containing %q", code, stdout.String(), stderr.String(), tc.wantCode, tc.wantOut, tc.wantErr)
			}
			b, _ := os.ReadFile(log)
			if string(b) != tc.wantLog {
				t.Errorf("hook log %q, want %q", b, tc.wantLog)
			}
		})
	}
}

func TestSelectModules(t *testing.T) {
	cfg, err := udiroot.Parse("t.conf", []byte(`
module_mpich_siteEnv=A=1
module_mpich_conflict=openmpi
module_openmpi_siteEnv=B=1
module_gpu_siteEnv=C=1
module_old_enabled=0
defaultModules=gpu,mpich
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		requested []string
		want      []string
		wantErr   string
	}{
		{"defaults", nil, []string{"gpu", "mpich"}, ""},
		{"explicit replaces defaults", []string{"openmpi"}, []string{"openmpi"}, ""},
		{"none", []string{"none"}, nil, ""},
		{"empty selection", []string{}, nil, ""},
		{"unknown", []string{"cuda"}, nil, `unknown shifter module "cuda"`},
		{"disabled", []string{"old"}, nil, "disabled"},
		{"conflict declared by first", []string{"mpich", "openmpi"}, nil, "conflict"},
		{"conflict declared by second", []string{"openmpi", "gpu", "mpich"}, nil, "conflict"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mods, err := selectModules(cfg, tc.requested)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || ExitCode(err) != ExitUsage {
					t.Fatalf("selectModules = %v, want usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range mods {
				got = append(got, m.Name)
			}
			if !cmp.Equal(got, tc.want) {
				t.Errorf("selectModules = %q, want %q", got, tc.want)
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
