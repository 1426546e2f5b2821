// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/udiroot"
)

// optional is a flag with an optional value (--entrypoint[=cmd],
// --workdir[=path]): unset, set bare, or set with a value.
type optional struct {
	set   bool
	bare  bool
	value string
}

// bareValue is what pflag passes to Set for a flag given without a value.
const bareValue = "\x00bare"

func (o *optional) String() string { return o.value }
func (o *optional) Type() string   { return "string" }
func (o *optional) Set(v string) error {
	o.set = true
	o.bare = v == bareValue
	o.value = ""
	if !o.bare {
		if v == "" {
			return errors.New("empty value")
		}
		o.value = v
	}
	return nil
}

// Options is the parsed command line and environment.
type Options struct {
	// Image is the requested image; Image.Raw is "" when none was given.
	Image ImageRef
	// Volumes is the user's volume list, ';'-joined (--volume, else
	// SHIFTER_VOLUME).
	Volumes string
	// Modules is the module selection (--module, else SHIFTER_MODULE);
	// nil means the configuration's defaultModules.
	Modules    []string
	Entrypoint optional
	Workdir    optional
	Env        []string // --env NAME=VALUE, in order
	EnvFiles   []string // --env-file paths, in order
	ClearEnv   bool
	Verbose    bool
	Help       bool
	Version    bool
	Command    []string // the command and its arguments (may be empty)
}

// ImageRef is an image descriptor [type:]tag.
type ImageRef struct {
	Type string // docker, id or local
	Tag  string // docker: the tag; id: the hex id; local: the host path
	Raw  string // as given (SHIFTER_IMAGEREQUEST)
}

func (r ImageRef) String() string { return r.Type + ":" + r.Tag }

// ParseArgs parses the command line (without argv[0]) and the image
// selection from the environment. defaultType is udiRoot.conf's
// defaultImageType. Errors carry ExitUsage.
func ParseArgs(args []string, environ []string, defaultType string) (*Options, error) {
	o := &Options{}
	fs := pflag.NewFlagSet("shifter", pflag.ContinueOnError)
	fs.SetInterspersed(false) // options end at the first non-option, like Shifter (POSIXLY_CORRECT)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	image := fs.StringP("image", "i", "", "")
	volumes := fs.StringArrayP("volume", "V", nil, "")
	fs.Var(&o.Entrypoint, "entrypoint", "")
	fs.Lookup("entrypoint").NoOptDefVal = bareValue
	fs.Var(&o.Entrypoint, "entry", "") // Shifter's alias
	fs.Lookup("entry").NoOptDefVal = bareValue
	fs.MarkHidden("entry")
	fs.VarP(&o.Workdir, "workdir", "w", "")
	fs.Lookup("workdir").NoOptDefVal = bareValue
	fs.StringArrayVarP(&o.Env, "env", "e", nil, "")
	fs.StringArrayVar(&o.EnvFiles, "env-file", nil, "")
	fs.BoolVarP(&o.ClearEnv, "clearenv", "E", false, "")
	module := fs.StringP("module", "m", "", "")
	fs.BoolVarP(&o.Verbose, "verbose", "v", false, "")
	fs.BoolVarP(&o.Help, "help", "h", false, "")
	fs.BoolVar(&o.Version, "version", false, "")
	fs.BoolP("n", "n", false, "") // in Shifter's getopt string, does nothing
	fs.MarkHidden("n")
	if err := fs.Parse(attachWorkdir(args)); err != nil {
		return nil, failf(ExitUsage, "%v", err)
	}
	o.Command = fs.Args()
	if o.Help || o.Version {
		return o, nil
	}
	for _, e := range o.Env {
		name, _, ok := strings.Cut(e, "=")
		if !ok || !udiroot.ValidEnvName(name) || strings.ContainsRune(e, 0) {
			return nil, failf(ExitUsage, "--env %q: want NAME=VALUE", e)
		}
	}
	if o.Workdir.set && !o.Workdir.bare && !path.IsAbs(o.Workdir.value) {
		return nil, failf(ExitUsage, "--workdir %q: want an absolute path", o.Workdir.value)
	}

	// The environment first (Shifter's parse_environment), then the
	// command line overrides.
	env := envMap(environ)
	pick := func(name string) string {
		if v := env[name]; v != "" {
			return v
		}
		return env["SLURM_SPANK_"+name]
	}
	var err error
	itype, tag := pick("SHIFTER_IMAGETYPE"), pick("SHIFTER_IMAGE")
	switch {
	case itype != "" && tag != "":
		o.Image, err = parseImageRef(itype+":"+tag, defaultType)
		if err != nil {
			return nil, failf(ExitUsage, "SHIFTER_IMAGETYPE/SHIFTER_IMAGE: %v", err)
		}
		if req := pick("SHIFTER_IMAGEREQUEST"); req != "" {
			o.Image.Raw = req
		}
	case pick("SHIFTER_IMAGEREQUEST") != "":
		o.Image, err = parseImageRef(pick("SHIFTER_IMAGEREQUEST"), defaultType)
		if err != nil {
			return nil, failf(ExitUsage, "SHIFTER_IMAGEREQUEST: %v", err)
		}
	}
	o.Volumes = pick("SHIFTER_VOLUME")
	mods := pick("SHIFTER_MODULE")
	modsSet := mods != ""

	if fs.Changed("image") {
		o.Image, err = parseImageRef(*image, defaultType)
		if err != nil {
			return nil, failf(ExitUsage, "--image: %v", err)
		}
	}
	if fs.Changed("volume") {
		o.Volumes = strings.Join(*volumes, ";") // the first -V discards SHIFTER_VOLUME
	}
	if fs.Changed("module") {
		mods, modsSet = *module, true
	}
	if modsSet {
		o.Modules, err = udiroot.ParseModuleList(mods)
		if err != nil {
			return nil, failf(ExitUsage, "--module: %v", err)
		}
		if o.Modules == nil {
			o.Modules = []string{}
		}
	}
	return o, nil
}

// attachWorkdir rewrites Shifter's "-wPATH" (getopt's optional argument
// attached to the short option) to "--workdir=PATH", which pflag
// understands; pflag would read "-w/x" as -w followed by flags "/x".
func attachWorkdir(args []string) []string {
	out := slices.Clone(args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		switch {
		case a == "--" || a == "-" || !strings.HasPrefix(a, "-"):
			return out
		case slices.Contains([]string{"-i", "-V", "-e", "-m", "--image", "--volume", "--env", "--env-file", "--module"}, a):
			i++ // the next argument is this option's value
		case strings.HasPrefix(a, "-w") && len(a) > 2 && a[2] != '=':
			out[i] = "--workdir=" + a[2:]
		}
	}
	return out
}

// parseImageRef parses [type:]tag as Shifter's parse_ImageDescriptor: the
// text before the first ':' is the type when it is one of docker, custom
// (an image imported through the gateway's doimport), id, local;
// otherwise all of it is a tag of defaultType.
func parseImageRef(s, defaultType string) (ImageRef, error) {
	r := ImageRef{Raw: s, Type: defaultType, Tag: strings.TrimSpace(s)}
	if t, rest, ok := strings.Cut(r.Tag, ":"); ok {
		switch t {
		case "docker", "custom", "id", "local":
			r.Type, r.Tag = t, rest
		}
	}
	if r.Tag == "" {
		return r, fmt.Errorf("image %q: empty tag", s)
	}
	switch r.Type {
	case "docker":
		for _, c := range r.Tag {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_:.+-@/", c)) {
				return r, fmt.Errorf("image %q: character %q is not allowed in a tag", s, c)
			}
		}
		if len(r.Tag) > 512 {
			return r, fmt.Errorf("image %q: tag too long", s)
		}
	case "custom":
		tag, err := api.ParseCustomTag(r.Tag)
		if err != nil {
			return r, fmt.Errorf("image %q: %w", s, err)
		}
		r.Tag = tag
	case "id":
		r.Tag = strings.ToLower(strings.TrimPrefix(r.Tag, "sha256:"))
		if !imagestore.ValidID(r.Tag) {
			return r, fmt.Errorf("image %q: an id is 64 hex digits", s)
		}
	case "local":
		if !path.IsAbs(r.Tag) || strings.ContainsRune(r.Tag, 0) {
			return r, fmt.Errorf("image %q: a local image is an absolute host path", s)
		}
		r.Tag = path.Clean(r.Tag)
	default:
		return r, fmt.Errorf("image %q: unknown image type %q", s, r.Type)
	}
	return r, nil
}

// envMap turns a KEY=VALUE list into a map; the first occurrence wins
// (as getenv).
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m
}

// Usage is the --help text.
func Usage() string {
	var b strings.Builder
	b.WriteString(`Usage: shifter [options] [--] [command [args...]]

Run a command in a container image, as yourself. Options end at the first
argument that is not an option.

Options:
  -i, --image=[TYPE:]TAG   image to use; TYPE is docker (default from
                           udiRoot.conf defaultImageType), custom (an image
                           imported through the gateway), id (an image id)
                           or local (a host directory, if the site allows)
  -V, --volume=SRC:DST[:ro][;...]
                           bind SRC (host) at DST (container); repeatable
                           and ';'-separated; DST may not be under /etc,
                           /var (except /var/tmp), /opt/udiImage, /proc,
                           /sys, /dev; ro makes it read-only
      --entrypoint[=CMD]   bare: run the image's ENTRYPOINT with the
                           command as its arguments (or the image's CMD);
                           =CMD: run CMD instead (the image's CMD is not
                           used)
  -w, --workdir[=PATH]     bare: start in the image's WORKDIR; =PATH (or
                           -wPATH): start in PATH; default: the current
                           directory (/ if it does not exist inside)
  -e, --env=NAME=VALUE     set a variable; repeatable
      --env-file=PATH      read NAME=VALUE lines ('#' comments) from PATH in
                           the container (as Shifter: the container's path,
                           relative to the working directory), with your
                           own permissions; repeatable
  -E, --clearenv           do not pass your environment into the container
  -m, --module=A,B         site modules to use instead of the defaults
                           ("none": no module)
  -v, --verbose            say what is done (image, mount mode and why)
  -h, --help               this text
      --version            print the version

Without a command, /bin/sh is run.

Without --image, SHIFTER_IMAGETYPE and SHIFTER_IMAGE (both needed), else
SHIFTER_IMAGEREQUEST, select the image; SHIFTER_VOLUME and SHIFTER_MODULE
give volumes and modules; each falls back to SLURM_SPANK_SHIFTER_*. The
first --volume discards SHIFTER_VOLUME; --module replaces SHIFTER_MODULE.

Environment inside the container, later wins: your environment (unless
--clearenv; a setuid shifter drops the dynamic loader's variables such as
LD_PRELOAD and LD_LIBRARY_PATH), SHIFTER_IMAGEREQUEST and SHIFTER_IMAGE,
the image's ENV, --env-file, --env, the modules' siteEnv, siteEnvAppend,
siteEnvPrepend, siteEnvUnset, then the site's (udiRoot.conf).

Exit status: the command's (128+N if it was killed by signal N, 127 if
it could not be run), or for a failure before it started:
`)
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %d  %s\n", e.code, e.text)
	}
	return b.String()
}
