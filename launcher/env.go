// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/shifter-go/shifter/udiroot"
)

// loaderVars are the variables the GNU dynamic loader ignores in a
// secure-execution (setuid) process: glibc's UNSECURE_ENVVARS
// (sysdeps/generic/unsecvars.h) plus the LD_ variables older glibc or
// other loaders honour. A setuid shifter drops them from the caller's
// environment, so that what the caller set to influence a privileged
// process never reaches anything. Every other LD_ variable goes too.
var loaderVars = []string{
	"GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES",
	"LD_AUDIT", "LD_DEBUG", "LD_DEBUG_OUTPUT", "LD_DYNAMIC_WEAK", "LD_HWCAP_MASK",
	"LD_LIBRARY_PATH", "LD_ORIGIN_PATH", "LD_PRELOAD", "LD_PROFILE", "LD_SHOW_AUXV",
	"LD_USE_LOAD_BIAS", "LD_BIND_NOW", "LD_BIND_NOT", "LD_ASSUME_KERNEL",
	"LD_LIBRARY_PATH_32", "LD_LIBRARY_PATH_64", "LD_PREFER_MAP_32BIT_EXEC",
	"LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE", "MALLOC_CHECK_", "MALLOC_ARENA_MAX",
	"MALLOC_ARENA_TEST", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_PERTURB_",
	"MALLOC_TOP_PAD_", "MALLOC_TRIM_THRESHOLD_", "NIS_PATH", "NLSPATH",
	"RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR",
}

// isLoaderVar reports whether name is dropped from a setuid caller's
// environment.
func isLoaderVar(name string) bool {
	return strings.HasPrefix(name, "LD_") || strings.HasPrefix(name, "RTLD_") || slices.Contains(loaderVars, name)
}

// runtimeVars are variables the Go runtime itself puts into the
// environment of a setuid process (it forces GOTRACEBACK=none in secure
// mode): they are not the caller's and must not leak into the container.
var runtimeVars = []string{"GOTRACEBACK"}

// env is an ordered environment: replacing a variable keeps its place.
type env struct {
	names []string
	vals  map[string]string
}

func newEnv() *env { return &env{vals: map[string]string{}} }

func (e *env) get(name string) (string, bool) { v, ok := e.vals[name]; return v, ok }

func (e *env) set(name, val string) {
	if _, ok := e.vals[name]; !ok {
		e.names = append(e.names, name)
	}
	e.vals[name] = val
}

func (e *env) unset(name string) {
	if _, ok := e.vals[name]; !ok {
		return
	}
	delete(e.vals, name)
	e.names = slices.DeleteFunc(e.names, func(n string) bool { return n == name })
}

// appendPath sets name to cur:val, or val when unset or empty.
func (e *env) appendPath(name, val string) {
	if cur, _ := e.get(name); cur != "" {
		val = cur + ":" + val
	}
	e.set(name, val)
}

// prependPath sets name to val:cur, or val when unset or empty.
func (e *env) prependPath(name, val string) {
	if cur, _ := e.get(name); cur != "" {
		val = val + ":" + cur
	}
	e.set(name, val)
}

func (e *env) apply(r *udiroot.EnvRules) {
	for _, v := range r.Set {
		e.set(v.Name, v.Value)
	}
	for _, v := range r.Append {
		e.appendPath(v.Name, v.Value)
	}
	for _, v := range r.Prepend {
		e.prependPath(v.Name, v.Value)
	}
	for _, n := range r.Unset {
		e.unset(n)
	}
}

func (e *env) list() []string {
	out := make([]string, 0, len(e.names))
	for _, n := range e.names {
		out = append(out, n+"="+e.vals[n])
	}
	return out
}

// envInputs are the sources of the container's environment, in
// precedence order (later wins).
type envInputs struct {
	Caller   []string // the caller's environment (os.Environ)
	ClearEnv bool     // --clearenv: ignore Caller
	Setuid   bool     // drop loader and runtime variables from Caller
	// Original: Caller is the environment the setuid process started
	// with (launcher.Early.CallerEnv), without what the Go runtime added
	// to it, so its GOTRACEBACK is the caller's and is kept.
	Original bool
	Request  string   // SHIFTER_IMAGEREQUEST
	ImageID  string   // SHIFTER_IMAGE (id, or the local path)
	Image    []string // image ENV
	EnvFile  []udiroot.EnvVar
	EnvFlags []string // --env NAME=VALUE
	Modules  []*udiroot.Module
	Site     *udiroot.EnvRules
}

// buildEnv computes the container's environment with Shifter's
// precedence (shifter_setupenv).
func buildEnv(in envInputs) []string {
	e := newEnv()
	if !in.ClearEnv {
		for _, kv := range in.Caller {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				continue
			}
			if in.Setuid && (isLoaderVar(k) || !in.Original && slices.Contains(runtimeVars, k)) {
				continue
			}
			if _, dup := e.get(k); dup {
				continue // the first one wins, as getenv
			}
			e.set(k, v)
		}
	}
	e.set("SHIFTER_IMAGEREQUEST", in.Request)
	e.set("SHIFTER_IMAGE", in.ImageID)
	for _, kv := range in.Image {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			e.set(k, v)
		}
	}
	for _, v := range in.EnvFile {
		e.set(v.Name, v.Value)
	}
	for _, kv := range in.EnvFlags {
		k, v, _ := strings.Cut(kv, "=")
		e.set(k, v)
	}
	for _, m := range in.Modules {
		e.apply(&m.Env)
	}
	if in.Site != nil {
		e.apply(in.Site)
	}
	return e.list()
}

// maxEnvFile bounds an --env-file.
const maxEnvFile = 4 << 20

// parseEnvFile reads NAME=VALUE lines. Blank lines and lines whose first
// non-blank character is '#' are skipped; leading white space is
// ignored; the value is taken literally (quotes included), as Shifter
// does. Anything else is an error naming the line.
func parseEnvFile(r io.Reader, name string) ([]udiroot.EnvVar, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxEnvFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxEnvFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxEnvFile)
	}
	var out []udiroot.EnvVar
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, maxEnvFile+1)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimLeft(strings.TrimSuffix(sc.Text(), "\r"), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !udiroot.ValidEnvName(k) || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("%s:%d: want NAME=VALUE", name, n)
		}
		out = append(out, udiroot.EnvVar{Name: k, Value: v})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}
