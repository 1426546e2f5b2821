// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"slices"
	"strings"

	"github.com/shifter-go/shifter/mountns"
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
// precedence (shifter_setupenv), the --env-file entries in.EnvFile
// included.
func buildEnv(in envInputs) []string {
	base, after := envParts(in)
	var file []mountns.EnvOp
	for _, v := range in.EnvFile {
		file = append(file, mountns.EnvOp{Kind: mountns.EnvSet, Name: v.Name, Value: v.Value})
	}
	return mountns.ApplyEnv(base, append(file, after...))
}

// envParts splits the environment at the --env-file entries, which are
// read in the container (mountns.Spec.EnvFiles): base is what comes
// before them (the caller's variables, SHIFTER_IMAGEREQUEST,
// SHIFTER_IMAGE, the image's ENV), after the changes that follow them
// (--env, the modules' siteEnv*, the site's siteEnv*), in order.
func envParts(in envInputs) (base []string, after []mountns.EnvOp) {
	if !in.ClearEnv {
		for _, kv := range in.Caller {
			k, _, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				continue
			}
			if in.Setuid && (isLoaderVar(k) || !in.Original && slices.Contains(runtimeVars, k)) {
				continue
			}
			base = append(base, kv) // ApplyEnv keeps the first of a name, as getenv
		}
	}
	sets := []mountns.EnvOp{
		{Kind: mountns.EnvSet, Name: "SHIFTER_IMAGEREQUEST", Value: in.Request},
		{Kind: mountns.EnvSet, Name: "SHIFTER_IMAGE", Value: in.ImageID},
	}
	for _, kv := range in.Image {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			sets = append(sets, mountns.EnvOp{Kind: mountns.EnvSet, Name: k, Value: v})
		}
	}
	base = mountns.ApplyEnv(base, sets)
	for _, kv := range in.EnvFlags {
		k, v, _ := strings.Cut(kv, "=")
		after = append(after, mountns.EnvOp{Kind: mountns.EnvSet, Name: k, Value: v})
	}
	for _, m := range in.Modules {
		after = append(after, ruleOps(&m.Env)...)
	}
	if in.Site != nil {
		after = append(after, ruleOps(in.Site)...)
	}
	return base, after
}

// ruleOps are siteEnv, siteEnvAppend, siteEnvPrepend and siteEnvUnset
// as changes, in the order Shifter applies them.
func ruleOps(r *udiroot.EnvRules) []mountns.EnvOp {
	var ops []mountns.EnvOp
	add := func(kind mountns.EnvOpKind, vars []udiroot.EnvVar) {
		for _, v := range vars {
			ops = append(ops, mountns.EnvOp{Kind: kind, Name: v.Name, Value: v.Value})
		}
	}
	add(mountns.EnvSet, r.Set)
	add(mountns.EnvAppend, r.Append)
	add(mountns.EnvPrepend, r.Prepend)
	for _, n := range r.Unset {
		ops = append(ops, mountns.EnvOp{Kind: mountns.EnvUnset, Name: n})
	}
	return ops
}
