// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shifter-go/shifter/gateway/client"
	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/udiroot"
)

// Main runs shifter with args (without argv[0]) and returns the exit
// status. Setup failures print one line, "shifter: ...", on stderr.
func Main(ctx context.Context, args []string, deps Deps) int {
	if deps.Stdout == nil {
		deps.Stdout = os.Stdout
	}
	if deps.Stderr == nil {
		deps.Stderr = os.Stderr
	}
	code, err := run(ctx, args, deps)
	if err != nil {
		msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
		fmt.Fprintf(deps.Stderr, "shifter: %s\n", msg)
		return ExitCode(err)
	}
	return code
}

func run(ctx context.Context, args []string, deps Deps) (int, error) {
	environ := os.Environ()
	callerEnvKept := deps.Early.CallerEnv != nil
	if callerEnvKept {
		environ = deps.Early.CallerEnv
	}
	// --help and --version work without a configuration.
	if o, err := ParseArgs(args, environ, "docker"); err == nil && (o.Help || o.Version) {
		if o.Help {
			fmt.Fprint(deps.Stdout, Usage())
		} else {
			fmt.Fprintf(deps.Stdout, "shifter %s\n", deps.Version)
		}
		return 0, nil
	}
	if err := checkLimits(); err != nil {
		return 0, err
	}
	mode, err := DetectMode()
	if err != nil {
		return 0, fail(ExitConfig, err)
	}
	cfgPath := udiroot.DefaultPath
	if p := os.Getenv("SHIFTER_CONFIG"); p != "" && mode != ModeSetuid {
		cfgPath = p
	}
	cfg, err := udiroot.Load(cfgPath, mode == ModeSetuid)
	if err != nil {
		return 0, fail(ExitConfig, err)
	}
	if len(cfg.ImageGateway) > 0 && cfg.System == "" {
		return 0, failf(ExitConfig, "%s: imageGateway is set but system is not", cfg.File)
	}
	opts, err := ParseArgs(args, environ, cfg.DefaultImageType)
	if err != nil {
		return 0, err
	}
	level := slog.LevelWarn
	if opts.Verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(deps.Stderr, &slog.HandlerOptions{Level: level}))
	for _, k := range cfg.Ignored {
		log.Info("udiRoot.conf: key accepted with no effect, or a different one, here", "note", k)
	}
	if deps.Early.Scrubbed > 0 {
		log.Debug("Go runtime variables (GO*, TZ, ZONEINFO) kept from the setuid runtime, passed to the command", "count", deps.Early.Scrubbed)
	}
	if l := deps.Early.AddressSpace; l != nil {
		log.Debug("address-space limit raised for the runtime; the command gets it back through /bin/sh in the container",
			"soft_kib", limitKiB(l.Cur), "hard_kib", limitKiB(l.Max))
	}
	cred, err := CallerCredential()
	if err != nil {
		return 0, err
	}
	imported, err := ImportUsers(cfg.UsersToImport, log)
	if err != nil {
		return 0, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		log.Warn("current directory unknown, using /", "err", err)
		cwd = "/"
	}
	var lookup Lookup
	if len(cfg.ImageGateway) > 0 {
		lookup, err = gatewayLookup(cfg, mode, log)
		if err != nil {
			return 0, fail(ExitConfig, err)
		}
	}
	in := &buildInput{
		Opts: opts, Cfg: cfg, Mode: mode, Cred: cred, Cwd: cwd, Environ: environ,
		Lookup: lookup, ParseVolumes: deps.ParseVolumes, Log: log, ImportUsers: imported,
		MountHelper:   findMountHelper(mode, log),
		CallerEnvKept: callerEnvKept, AddressSpace: deps.Early.AddressSpace,
	}
	spec, err := buildSpec(ctx, in)
	if in.ReleaseShared != nil {
		defer in.ReleaseShared()
	}
	if err != nil {
		return 0, err
	}
	if spec.Image != nil {
		defer spec.Image.Close()
	}
	log.Debug("starting container", "mode", mode.String(), "image", spec.ImagePath,
		"imageMount", string(spec.Mode), "argv", strings.Join(spec.Argv, " "), "workdir", spec.Workdir)
	spec.Prefork = deps.Early.Prefork
	code, err := deps.Run(ctx, spec)
	if err != nil {
		return 0, runError(err)
	}
	return code, nil
}

// runError gives mountns.Run's error an exit status.
func runError(err error) error {
	switch {
	case hasCode(err):
		return err
	case errors.Is(err, mountns.ErrBadVolume):
		return fail(ExitBadVolume, err)
	case errors.Is(err, mountns.ErrAccess), errors.Is(err, fs.ErrPermission):
		return fail(ExitNoPerm, err)
	case errors.Is(err, mountns.ErrUserNS), errors.Is(err, mountns.ErrFUSE), errors.Is(err, mountns.ErrUnavailable):
		return fail(ExitUnavailable, err)
	case errors.Is(err, mountns.ErrEnvFile):
		return fail(ExitUsage, err)
	case errors.Is(err, mountns.ErrSpec):
		return fail(ExitConfig, err)
	}
	return fail(ExitSetup, err) // ErrMount, ErrHook, ErrSetup
}

// gatewayLookup returns a Lookup through the configured gateways. A
// setuid shifter makes the request as the caller (see asCaller), so the
// gateway sees the caller's uid (unix socket peer credentials, munge),
// and runs munge by absolute path.
func gatewayLookup(cfg *udiroot.Config, mode RunMode, log *slog.Logger) (Lookup, error) {
	opts := []client.Option{client.WithLogger(log)}
	if mode == ModeSetuid {
		opts = append(opts, client.WithMungeCommand(MungeCommand))
	}
	c, err := client.New(cfg.ImageGateway, opts...)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, itype, tag string) (string, error) {
		if cfg.GatewayTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(cfg.GatewayTimeout)*time.Second)
			defer cancel()
		}
		var id string
		err := asCaller(mode, func() error {
			img, err := c.Lookup(ctx, cfg.System, itype, tag)
			if err != nil {
				return err
			}
			id = img.ID
			return nil
		})
		return id, err
	}, nil
}

// findMountHelper finds shifter-mount: next to the running shifter
// binary, then DefaultMountHelper, then (not when setuid) in PATH. A
// setuid shifter takes a helper only when it and its directories are
// root-owned and not writable by others (udiroot.OpenTrusted). It returns
// "" when there is none; fuse mode then fails in mountns.
func findMountHelper(mode RunMode, log *slog.Logger) string {
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "shifter-mount"))
	}
	candidates = append(candidates, DefaultMountHelper)
	for _, p := range candidates {
		if mode == ModeSetuid {
			f, err := udiroot.OpenTrusted(p)
			if err != nil {
				log.Debug("mount helper not usable", "path", p, "err", err)
				continue
			}
			st, err := f.Stat()
			f.Close()
			if err == nil && st.Mode()&0o111 != 0 {
				return p
			}
			continue
		}
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if mode != ModeSetuid {
		if p, err := exec.LookPath("shifter-mount"); err == nil {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
		}
	}
	log.Debug("no shifter-mount found; fuse mode is not available", "looked", strings.Join(candidates, " "))
	return ""
}

// buildInput is everything buildSpec works from.
type buildInput struct {
	Opts         *Options
	Cfg          *udiroot.Config
	Mode         RunMode
	Cred         mountns.Credential
	Cwd          string
	Environ      []string // the caller's environment
	Lookup       Lookup
	ParseVolumes func(string) ([]mountns.Volume, error)
	MountHelper  string
	Log          *slog.Logger
	ImportUsers  []mountns.Account // usersToImport, from the host's NSS
	// CallerEnvKept: Environ is the caller's environment as it was before
	// the Go runtime started (Early.CallerEnv), not os.Environ().
	CallerEnvKept bool
	// AddressSpace is the caller's RLIMIT_AS when the runtime raised it
	// (Early.AddressSpace).
	AddressSpace *Limit
	// ReleaseShared, set by buildSpec when the container uses shifterd's
	// shared mount, drops this process's copy of the reference after Run.
	ReleaseShared func()
}

// buildSpec turns the request into a mountns.Spec. On success the caller
// owns spec.Image and must close it.
func buildSpec(ctx context.Context, in *buildInput) (spec *mountns.Spec, err error) {
	o, cfg := in.Opts, in.Cfg
	if o.Image.Raw == "" {
		return nil, failf(ExitUsage, "no image: use --image=[TYPE:]TAG or set SHIFTER_IMAGE and SHIFTER_IMAGETYPE (see shifter --help)")
	}
	modules, err := selectModules(cfg, o.Modules)
	if err != nil {
		return nil, err
	}
	for _, m := range modules {
		if m.RootHook != "" && in.Mode == ModeUser {
			return nil, failf(ExitUnavailable, "shifter module %q has a roothook, which runs as root: it needs shifter installed setuid root (or run by root)", m.Name)
		}
	}
	var userVols []mountns.Volume
	if strings.TrimSpace(o.Volumes) != "" {
		if in.ParseVolumes == nil {
			return nil, failf(ExitSoftware, "volume parsing is not available")
		}
		userVols, err = in.ParseVolumes(o.Volumes)
		if err != nil {
			return nil, fail(ExitBadVolume, fmt.Errorf("--volume: %w", err))
		}
		for _, v := range userVols {
			if v.Site {
				return nil, failf(ExitBadVolume, "--volume: %s is not a user volume", v.Dest)
			}
		}
	}
	r := &imageResolver{cfg: cfg, cred: &in.Cred, mode: in.Mode, lookup: in.Lookup, log: in.Log}
	img, err := r.resolve(ctx, o.Image)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && img.File != nil {
			img.File.Close()
		}
	}()
	argv, err := resolveArgv(o.Command, o.Entrypoint, img.Meta)
	if err != nil {
		return nil, err
	}
	var hooks []string
	for _, m := range modules {
		if m.UserHook != "" {
			hooks = append(hooks, m.UserHook)
		}
	}
	if argv, err = wrapUserHooks(argv, hooks); err != nil {
		return nil, fail(ExitSoftware, err)
	}
	if argv, err = wrapAddressSpace(argv, in.AddressSpace); err != nil {
		return nil, fail(ExitSoftware, err)
	}
	workdir, err := resolveWorkdir(o.Workdir, img.Meta, in.Cwd)
	if err != nil {
		return nil, err
	}
	vols, err := siteVolumes(cfg, modules)
	if err != nil {
		return nil, err
	}
	udiVols, err := udiImageVolumes(cfg, modules, in.Log)
	if err != nil {
		return nil, err
	}
	vols = append(append(vols, udiVols...), userVols...)
	pnc, err := perNodeCacheConfig(cfg, vols, in.Mode, in.Log)
	if err != nil {
		return nil, err
	}
	etc, err := etcFiles(cfg)
	if err != nil {
		return nil, err
	}
	mountMode, err := imageMountMode(cfg, img, in.Log)
	if err != nil {
		return nil, err
	}
	shared, release, err := sharedMount(ctx, cfg, in.Mode, img, &in.Cred, in.Log)
	if err != nil {
		return nil, err
	}
	if shared != nil {
		mountMode, in.ReleaseShared = mountns.MountShared, release
	}
	var imageEnv []string
	if img.Meta != nil {
		imageEnv = img.Meta.Env
	}
	spec = &mountns.Spec{
		Image:         img.File,
		ImagePath:     img.Path,
		LocalRoot:     img.LocalRoot,
		Mode:          mountMode,
		Shared:        shared,
		MountHelper:   in.MountHelper,
		UDIMount:      cfg.UDIMount,
		Volumes:       vols,
		PerNodeCache:  pnc,
		EtcFiles:      etc,
		EtcData:       etcData(cfg),
		PreMountHook:  cfg.SitePreMountHook,
		PostMountHook: postMountHook(cfg, modules),
		Argv:          argv,
		Workdir:       workdir,
		Cred:          in.Cred,
		ImportUsers:   in.ImportUsers,
		Unprivileged:  in.Mode == ModeUser,
		Setuid:        in.Mode == ModeSetuid,
		Logger:        in.Log,
	}
	// The --env-file files are read in the container, as the user
	// (mountns.Spec.EnvFiles), as Shifter reads them.
	base, after := envParts(envInputs{
		Caller:   in.Environ,
		ClearEnv: o.ClearEnv,
		Setuid:   in.Mode == ModeSetuid,
		Original: in.CallerEnvKept,
		Request:  o.Image.Raw,
		ImageID:  img.ID,
		Image:    imageEnv,
		EnvFlags: o.Env,
		Modules:  modules,
		Site:     &cfg.Env,
	})
	if len(o.EnvFiles) > 0 {
		spec.Env, spec.EnvFiles, spec.EnvAfter = base, o.EnvFiles, after
	} else {
		spec.Env = mountns.ApplyEnv(base, after)
	}
	spec.MountHelperArgs = mountHelperArgs(cfg, img, in.Mode, mountMode, in.Log)
	return spec, nil
}

// siteVolumes parses the site's and the active modules' siteFs, with the
// site destination rules; mountPropagationStyle is the default
// propagation.
func siteVolumes(cfg *udiroot.Config, modules []*udiroot.Module) ([]mountns.Volume, error) {
	var out []mountns.Volume
	for _, l := range siteFsLists(cfg, modules) {
		if strings.TrimSpace(l.value) == "" {
			continue
		}
		vols, err := mountns.ParseSiteVolumes(l.value)
		if err != nil {
			return nil, failf(ExitConfig, "%s:%d: %s: %v", cfg.File, l.line, l.key, err)
		}
		for i := range vols {
			vols[i].Site = true
			if vols[i].Propagation == "" {
				vols[i].Propagation = cfg.MountPropagationStyle
			}
		}
		out = append(out, vols...)
	}
	return out, nil
}

// siteFsList is one line's value of a siteFs key.
type siteFsList struct {
	key   string
	line  int
	value string
}

// siteFsLists are the site's siteFs and the active modules' ones, line by
// line (a key may be given on several lines, which add up).
func siteFsLists(cfg *udiroot.Config, modules []*udiroot.Module) []siteFsList {
	var lists []siteFsList
	add := func(key, value string) {
		if lines := cfg.SiteFsLines[key]; len(lines) > 0 {
			for _, l := range lines {
				lists = append(lists, siteFsList{key, l.Line, l.Value})
			}
			return
		}
		lists = append(lists, siteFsList{key, cfg.Lines[key], value})
	}
	add("siteFs", cfg.SiteFs)
	for _, m := range modules {
		add("module_"+m.Name+"_siteFs", m.SiteFs)
	}
	return lists
}

// etcSiteFiles are copied from the host's /etc when
// populateEtcDynamically=1, as Shifter does; nsswitch.conf and host.conf
// are generated then (generatedEtc, written in dir).
var etcSiteFiles = []string{"hosts", "resolv.conf"}

// etcGenerated are written by mountns from the credential and never
// copied.
var etcGenerated = []string{"passwd", "group", "shadow", "gshadow"}

// etcFiles lists the site files for the container's /etc (with
// populateEtcDynamically=1, generatedEtc's are added as Spec.EtcData).
func etcFiles(cfg *udiroot.Config) (map[string]string, error) {
	out := map[string]string{}
	if cfg.PopulateEtcDynamically {
		for _, n := range etcSiteFiles {
			p := filepath.Join("/etc", n)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				out[n] = p
			}
		}
		for n := range generatedEtc {
			delete(out, n)
		}
		return out, nil
	}
	ents, err := os.ReadDir(cfg.EtcPath)
	if err != nil {
		return nil, fail(ExitConfig, fmt.Errorf("etcPath: %w", err))
	}
	for _, e := range ents {
		if slices.Contains(etcGenerated, e.Name()) {
			continue
		}
		p := filepath.Join(cfg.EtcPath, e.Name())
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			out[e.Name()] = p
		}
	}
	return out, nil
}

// limitKiB formats a limit in KiB for messages.
func limitKiB(v uint64) string {
	if v == Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(v/1024, 10)
}

// imageMountMode is the image mount mode: the configured one (imageMount),
// except that an image file an ordinary user could have written
// (img.Untrusted) never reaches the kernel's squashfs driver: in auto mode
// it is served through FUSE (said under -v), and imageMount=loop refuses
// it.
func imageMountMode(cfg *udiroot.Config, img *resolvedImage, log *slog.Logger) (mountns.MountMode, error) {
	mode := mountns.MountMode(cfg.ImageMount)
	if img.Untrusted == "" || img.File == nil {
		return mode, nil
	}
	if mode == mountns.MountLoop {
		return "", failf(ExitNoPerm, "image %s: %s is %s: such a file is never loop-mounted, and udiRoot.conf says imageMount=loop", img.ID, img.Path, img.Untrusted)
	}
	log.Info("image file not trusted for the kernel's squashfs driver: served through FUSE", "image", img.Path, "reason", img.Untrusted)
	return mountns.MountFUSE, nil
}
