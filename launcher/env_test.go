// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shifter-go/shifter/udiroot"
)

func TestBuildEnv(t *testing.T) {
	mod := func(name string, r udiroot.EnvRules) *udiroot.Module {
		return &udiroot.Module{Name: name, Env: r, Enabled: true}
	}
	tests := []struct {
		name string
		in   envInputs
		want []string
	}{
		{
			name: "caller then shifter vars",
			in:   envInputs{Caller: []string{"HOME=/h", "PATH=/bin"}, Request: "ubuntu", ImageID: testID},
			want: []string{"HOME=/h", "PATH=/bin", "SHIFTER_IMAGEREQUEST=ubuntu", "SHIFTER_IMAGE=" + testID},
		},
		{
			name: "full precedence chain, later wins in place",
			in: envInputs{
				Caller:   []string{"V=host", "PATH=/host/bin", "KEEP=1"},
				Request:  "r",
				ImageID:  "i",
				Image:    []string{"V=image", "PATH=/usr/bin", "IMG=1"},
				EnvFile:  []udiroot.EnvVar{{Name: "V", Value: "file"}, {Name: "F", Value: "1"}},
				EnvFlags: []string{"V=flag", "E="},
				Modules:  []*udiroot.Module{mod("m", udiroot.EnvRules{Set: []udiroot.EnvVar{{Name: "V", Value: "module"}}, Prepend: []udiroot.EnvVar{{Name: "PATH", Value: "/mod/bin"}}})},
				Site:     &udiroot.EnvRules{Append: []udiroot.EnvVar{{Name: "PATH", Value: "/opt/udiImage/bin"}}, Unset: []string{"KEEP"}},
			},
			want: []string{"V=module", "PATH=/mod/bin:/usr/bin:/opt/udiImage/bin", "SHIFTER_IMAGEREQUEST=r", "SHIFTER_IMAGE=i", "IMG=1", "F=1", "E="},
		},
		{
			name: "site beats module beats flag",
			in: envInputs{
				EnvFlags: []string{"X=flag"},
				Modules:  []*udiroot.Module{mod("a", udiroot.EnvRules{Set: []udiroot.EnvVar{{Name: "X", Value: "a"}}}), mod("b", udiroot.EnvRules{Set: []udiroot.EnvVar{{Name: "X", Value: "b"}}})},
				Site:     &udiroot.EnvRules{Set: []udiroot.EnvVar{{Name: "X", Value: "site"}}},
			},
			want: []string{"SHIFTER_IMAGEREQUEST=", "SHIFTER_IMAGE=", "X=site"},
		},
		{
			name: "module order",
			in: envInputs{Modules: []*udiroot.Module{
				mod("a", udiroot.EnvRules{Append: []udiroot.EnvVar{{Name: "P", Value: "a"}}}),
				mod("b", udiroot.EnvRules{Append: []udiroot.EnvVar{{Name: "P", Value: "b"}}}),
			}},
			want: []string{"SHIFTER_IMAGEREQUEST=", "SHIFTER_IMAGE=", "P=a:b"},
		},
		{
			name: "append and prepend on unset or empty just set",
			in: envInputs{Caller: []string{"EMPTY="}, Site: &udiroot.EnvRules{
				Append:  []udiroot.EnvVar{{Name: "EMPTY", Value: "/a"}, {Name: "NEW", Value: "/n"}},
				Prepend: []udiroot.EnvVar{{Name: "NEW2", Value: "/p"}},
			}},
			want: []string{"EMPTY=/a", "SHIFTER_IMAGEREQUEST=", "SHIFTER_IMAGE=", "NEW=/n", "NEW2=/p"},
		},
		{
			name: "set, append, prepend, unset order within one level",
			in: envInputs{Site: &udiroot.EnvRules{
				Set:     []udiroot.EnvVar{{Name: "P", Value: "s"}, {Name: "GONE", Value: "x"}},
				Append:  []udiroot.EnvVar{{Name: "P", Value: "a"}},
				Prepend: []udiroot.EnvVar{{Name: "P", Value: "p"}},
				Unset:   []string{"GONE", "NEVERSET"},
			}},
			want: []string{"SHIFTER_IMAGEREQUEST=", "SHIFTER_IMAGE=", "P=p:s:a"},
		},
		{
			name: "clearenv drops the caller only",
			in:   envInputs{Caller: []string{"HOME=/h"}, ClearEnv: true, Image: []string{"PATH=/usr/bin"}, EnvFlags: []string{"A=1"}},
			want: []string{"SHIFTER_IMAGEREQUEST=", "SHIFTER_IMAGE=", "PATH=/usr/bin", "A=1"},
		},
		{
			name: "setuid drops loader and runtime variables of the caller",
			in: envInputs{Setuid: true, Caller: []string{
				"LD_PRELOAD=/tmp/evil.so", "LD_LIBRARY_PATH=/tmp", "LD_AUDIT=/tmp/a.so", "GCONV_PATH=/tmp/g",
				"GLIBC_TUNABLES=glibc.x=1", "LD_ANYTHING_NEW=1", "RTLD_X=1", "TMPDIR=/tmp/t", "NLSPATH=/tmp/n",
				"LOCPATH=/tmp/l", "MALLOC_TRACE=/tmp/m", "HOSTALIASES=/tmp/h", "RES_OPTIONS=debug",
				"GOTRACEBACK=none", "HOME=/h", "GODEBUG=x=1", "PATH=/tmp:/bin", "MY_LD_PRELOAD=ok",
			}},
			want: []string{"HOME=/h", "GODEBUG=x=1", "PATH=/tmp:/bin", "MY_LD_PRELOAD=ok", "SHIFTER_IMAGEREQUEST=", "SHIFTER_IMAGE="},
		},
		{
			name: "setuid with the environment saved before the runtime started keeps GO variables",
			in: envInputs{Setuid: true, Original: true, Caller: []string{
				"LD_PRELOAD=/tmp/evil.so", "GOTRACEBACK=crash", "GODEBUG=inittrace=1", "GOMAXPROCS=1", "TZ=UTC0",
			}},
			want: []string{"GOTRACEBACK=crash", "GODEBUG=inittrace=1", "GOMAXPROCS=1", "TZ=UTC0", "SHIFTER_IMAGEREQUEST=", "SHIFTER_IMAGE="},
		},
		{
			name: "loader variables set explicitly by the user still apply",
			in:   envInputs{Setuid: true, Caller: []string{"LD_PRELOAD=/x"}, EnvFlags: []string{"LD_LIBRARY_PATH=/opt/lib"}, Image: []string{"LD_PRELOAD=/img.so"}},
			want: []string{"SHIFTER_IMAGEREQUEST=", "SHIFTER_IMAGE=", "LD_PRELOAD=/img.so", "LD_LIBRARY_PATH=/opt/lib"},
		},
		{
			name: "not setuid keeps the caller's loader variables",
			in:   envInputs{Caller: []string{"LD_LIBRARY_PATH=/home/u/lib", "GOTRACEBACK=all"}},
			want: []string{"LD_LIBRARY_PATH=/home/u/lib", "GOTRACEBACK=all", "SHIFTER_IMAGEREQUEST=", "SHIFTER_IMAGE="},
		},
		{
			name: "caller duplicates and junk: first wins, junk skipped",
			in:   envInputs{Caller: []string{"A=1", "A=2", "junk", "=x", "B=a=b"}},
			want: []string{"A=1", "B=a=b", "SHIFTER_IMAGEREQUEST=", "SHIFTER_IMAGE="},
		},
		{
			name: "caller's own SHIFTER_IMAGE replaced",
			in:   envInputs{Caller: []string{"SHIFTER_IMAGE=old", "SHIFTER_IMAGEREQUEST=old"}, Request: "new", ImageID: "id"},
			want: []string{"SHIFTER_IMAGE=id", "SHIFTER_IMAGEREQUEST=new"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := buildEnv(tc.in)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("buildEnv (-want +got):\n%s", d)
			}
		})
	}
}
