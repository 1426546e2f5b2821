// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		defType string
		want    Options
	}{
		{name: "image and command", args: []string{"--image=docker:ubuntu:22.04", "ls", "-l"},
			want: Options{Image: ImageRef{"docker", "ubuntu:22.04", "docker:ubuntu:22.04"}, Command: []string{"ls", "-l"}}},
		{name: "options end at first non-option", args: []string{"-i", "ubuntu", "ls", "-v", "--image=x"},
			want: Options{Image: ImageRef{"docker", "ubuntu", "ubuntu"}, Command: []string{"ls", "-v", "--image=x"}}},
		{name: "double dash", args: []string{"-i", "ubuntu", "--", "-v"},
			want: Options{Image: ImageRef{"docker", "ubuntu", "ubuntu"}, Command: []string{"-v"}}},
		{name: "default type from config", args: []string{"-i", testID}, defType: "id",
			want: Options{Image: ImageRef{"id", testID, testID}}},
		{name: "id with sha256 prefix", args: []string{"--image=id:sha256:" + strings.ToUpper(testID)},
			want: Options{Image: ImageRef{"id", testID, "id:sha256:" + strings.ToUpper(testID)}}},
		{name: "local", args: []string{"--image=local:/srv/root/"},
			want: Options{Image: ImageRef{"local", "/srv/root", "local:/srv/root/"}}},
		{name: "volumes repeatable", args: []string{"-i", "a", "-V", "/a:/b", "--volume=/c:/d:ro;/e:/f"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Volumes: "/a:/b;/c:/d:ro;/e:/f"}},
		{name: "entrypoint bare", args: []string{"-i", "a", "--entrypoint", "arg"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Entrypoint: optional{set: true, bare: true}, Command: []string{"arg"}}},
		{name: "entrypoint value", args: []string{"-i", "a", "--entrypoint=/bin/x", "arg"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Entrypoint: optional{set: true, value: "/bin/x"}, Command: []string{"arg"}}},
		{name: "entry alias", args: []string{"-i", "a", "--entry=/bin/x"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Entrypoint: optional{set: true, value: "/bin/x"}}},
		{name: "workdir bare then command", args: []string{"-i", "a", "--workdir", "/tmp"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Workdir: optional{set: true, bare: true}, Command: []string{"/tmp"}}},
		{name: "workdir value", args: []string{"-i", "a", "--workdir=/tmp"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Workdir: optional{set: true, value: "/tmp"}}},
		{name: "workdir attached short", args: []string{"-i", "a", "-w/scratch", "pwd"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Workdir: optional{set: true, value: "/scratch"}, Command: []string{"pwd"}}},
		{name: "workdir short bare", args: []string{"-w", "-i", "a"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Workdir: optional{set: true, bare: true}}},
		{name: "-w inside the command is not rewritten", args: []string{"-i", "a", "grep", "-wfoo"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Command: []string{"grep", "-wfoo"}}},
		{name: "-w as the value of -e is not rewritten", args: []string{"-i", "a", "-e", "-wx=1"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Env: []string{"-wx=1"}}},
		{name: "env and files", args: []string{"-i", "a", "-e", "A=1", "--env=B=", "--env-file=/f", "-E", "-v"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Env: []string{"A=1", "B="}, EnvFiles: []string{"/f"}, ClearEnv: true, Verbose: true}},
		{name: "modules", args: []string{"-i", "a", "-m", "mpi,gpu"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Modules: []string{"mpi", "gpu"}}},
		{name: "module none", args: []string{"-i", "a", "--module=none"},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Modules: []string{"none"}}},
		{name: "empty module list selects nothing", args: []string{"-i", "a", "--module="},
			want: Options{Image: ImageRef{"docker", "a", "a"}, Modules: []string{}}},
		{name: "env image", env: []string{"SHIFTER_IMAGETYPE=id", "SHIFTER_IMAGE=" + testID, "SHIFTER_VOLUME=/a:/b", "SHIFTER_MODULE=gpu"},
			want: Options{Image: ImageRef{"id", testID, "id:" + testID}, Volumes: "/a:/b", Modules: []string{"gpu"}}},
		{name: "env image keeps request", env: []string{"SHIFTER_IMAGETYPE=id", "SHIFTER_IMAGE=" + testID, "SHIFTER_IMAGEREQUEST=ubuntu:22.04"},
			want: Options{Image: ImageRef{"id", testID, "ubuntu:22.04"}}},
		{name: "env type without image discarded", env: []string{"SHIFTER_IMAGETYPE=docker"},
			want: Options{}},
		{name: "env image without type discarded, request used", env: []string{"SHIFTER_IMAGE=foo", "SHIFTER_IMAGEREQUEST=docker:bar"},
			want: Options{Image: ImageRef{"docker", "bar", "docker:bar"}}},
		{name: "slurm spank fallback", env: []string{"SLURM_SPANK_SHIFTER_IMAGETYPE=id", "SLURM_SPANK_SHIFTER_IMAGE=" + testID, "SLURM_SPANK_SHIFTER_VOLUME=/s:/t"},
			want: Options{Image: ImageRef{"id", testID, "id:" + testID}, Volumes: "/s:/t"}},
		{name: "primary beats spank", env: []string{"SLURM_SPANK_SHIFTER_VOLUME=/s:/t", "SHIFTER_VOLUME=/p:/q", "SHIFTER_IMAGETYPE=docker", "SHIFTER_IMAGE=a"},
			want: Options{Image: ImageRef{"docker", "a", "docker:a"}, Volumes: "/p:/q"}},
		{name: "command line overrides env", args: []string{"-i", "b", "-V", "/x:/y", "-m", "none"}, env: []string{"SHIFTER_IMAGETYPE=docker", "SHIFTER_IMAGE=a", "SHIFTER_VOLUME=/p:/q", "SHIFTER_MODULE=gpu"},
			want: Options{Image: ImageRef{"docker", "b", "b"}, Volumes: "/x:/y", Modules: []string{"none"}}},
		{name: "no volume flag keeps env volume", args: []string{"-i", "b"}, env: []string{"SHIFTER_VOLUME=/p:/q"},
			want: Options{Image: ImageRef{"docker", "b", "b"}, Volumes: "/p:/q"}},
		{name: "help", args: []string{"-h", "-i", "a"}, want: Options{Help: true}},
		{name: "version", args: []string{"--version"}, want: Options{Version: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.defType == "" {
				tc.defType = "docker"
			}
			got, err := ParseArgs(tc.args, tc.env, tc.defType)
			if err != nil {
				t.Fatalf("ParseArgs(%q) error: %v", tc.args, err)
			}
			if d := cmp.Diff(&tc.want, got, cmp.AllowUnexported(optional{}), cmp.Transformer("nilcmd", func(s []string) []string {
				if len(s) == 0 {
					return nil
				}
				return s
			})); d != "" {
				t.Errorf("ParseArgs(%q) (-want +got):\n%s", tc.args, d)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		msg  string
	}{
		{"unknown flag", []string{"--frobnicate"}, nil, "unknown flag"},
		{"env without equals", []string{"-e", "FOO"}, nil, "want NAME=VALUE"},
		{"env empty name", []string{"-e", "=x"}, nil, "want NAME=VALUE"},
		{"image missing value", []string{"-i"}, nil, "needs an argument"},
		{"relative workdir", []string{"--workdir=tmp"}, nil, "absolute path"},
		{"empty entrypoint", []string{"--entrypoint="}, nil, "empty value"},
		{"custom tag with slash", []string{"-i", "custom:a/b"}, nil, "not allowed"},
		{"custom tag empty version", []string{"-i", "custom:a:"}, nil, "empty version"},
		{"bad id", []string{"-i", "id:abc"}, nil, "64 hex digits"},
		{"bad tag char", []string{"-i", "ubuntu;rm"}, nil, "not allowed in a tag"},
		{"relative local", []string{"-i", "local:srv"}, nil, "absolute host path"},
		{"empty tag", []string{"-i", "docker:"}, nil, "empty tag"},
		{"bad module", []string{"-m", "a b"}, nil, "module name"},
		{"bad env image", nil, []string{"SHIFTER_IMAGETYPE=id", "SHIFTER_IMAGE=xyz"}, "SHIFTER_IMAGETYPE/SHIFTER_IMAGE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseArgs(tc.args, tc.env, "docker")
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("ParseArgs(%q) = %v, want error containing %q", tc.args, err, tc.msg)
			}
			if c := ExitCode(err); c != ExitUsage {
				t.Errorf("ExitCode = %d, want %d", c, ExitUsage)
			}
		})
	}
}

func TestUsageDocumentsExitCodes(t *testing.T) {
	u := Usage()
	for _, e := range exitCodes {
		if !strings.Contains(u, strings.TrimSpace(strings.Split(e.text, "(")[0])) {
			t.Errorf("usage lacks exit status %d", e.code)
		}
	}
	for _, f := range []string{"--image", "--volume", "--entrypoint", "--workdir", "--env=", "--env-file", "--clearenv", "--module", "--verbose", "--help", "--version"} {
		if !strings.Contains(u, f) {
			t.Errorf("usage lacks %s", f)
		}
	}
}
