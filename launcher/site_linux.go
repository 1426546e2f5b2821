// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/udiroot"
)

// udiImageDir is where Shifter puts optUdiImage, and module copyPaths
// below its modules directory.
const udiImageDir = "/opt/udiImage"

// udiImageVolumes makes optUdiImage and the active modules' copyPath
// appear read-only at /opt/udiImage and /opt/udiImage/modules/<name>
// (Shifter copies them there). optUdiImage is bound entry by entry, not
// as one directory, so that /opt/udiImage itself is in the container's
// own writable layer and the modules' mount points can be made in it
// (a mount point inside a read-only bind of a host directory could not
// be, and one inside a writable bind would be made on the host); in the
// same way an optUdiImage/modules directory is bound entry by entry, a
// module's copyPath taking the place of an entry of its name. The
// directories are the site's, read as root. An entry that is a symbolic
// link is bound as its target when that is inside optUdiImage; one that
// leads out of it is left out (said under -v): Shifter copies the link,
// which then resolves inside the container, and a bind would show the
// host's files there instead.
func udiImageVolumes(cfg *udiroot.Config, modules []*udiroot.Module, log *slog.Logger) ([]mountns.Volume, error) {
	var out []mountns.Volume
	add := func(src, dst string) {
		if fi, err := os.Lstat(src); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(src)
			base, berr := filepath.EvalSymlinks(cfg.OptUdiImage)
			if err != nil || berr != nil || !strings.HasPrefix(real, base+"/") {
				log.Info("optUdiImage: symbolic link leading out of it left out of /opt/udiImage", "path", src)
				return
			}
		}
		out = append(out, mountns.Volume{Source: src, Dest: dst, ReadOnly: true, Site: true, Propagation: cfg.MountPropagationStyle})
	}
	copied := map[string]bool{}
	for _, m := range modules {
		if m.CopyPath != "" {
			copied[m.Name] = true
		}
	}
	if cfg.OptUdiImage != "" {
		ents, err := readSiteDir(cfg, "optUdiImage", cfg.OptUdiImage)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			src := filepath.Join(cfg.OptUdiImage, e.Name())
			if e.Name() != "modules" || !e.IsDir() || len(copied) == 0 {
				add(src, path.Join(udiImageDir, e.Name()))
				continue
			}
			mods, err := readSiteDir(cfg, "optUdiImage", src)
			if err != nil {
				return nil, err
			}
			for _, me := range mods {
				if !copied[me.Name()] {
					add(filepath.Join(src, me.Name()), path.Join(udiImageDir, "modules", me.Name()))
				}
			}
		}
	}
	for _, m := range modules {
		if m.CopyPath == "" {
			continue
		}
		key := "module_" + m.Name + "_copyPath"
		if st, err := os.Stat(m.CopyPath); err != nil || !st.IsDir() {
			if err == nil {
				err = fmt.Errorf("%s is not a directory", m.CopyPath)
			}
			return nil, failf(ExitConfig, "%s:%d: %s: %v", cfg.File, cfg.Lines[key], key, err)
		}
		add(m.CopyPath, path.Join(udiImageDir, "modules", m.Name))
	}
	return out, nil
}

// readSiteDir lists a site directory named by key, sorted by name.
func readSiteDir(cfg *udiroot.Config, key, dir string) ([]os.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, failf(ExitConfig, "%s:%d: %s: %v", cfg.File, cfg.Lines[key], key, err)
	}
	return ents, nil
}

// postMountHook is the hook run after the site and user mounts: the
// site's sitePostMountHook, then each active module's roothook, in
// module order. Shifter runs roothooks as root by /bin/sh, with the
// container root as working directory, after the site mounts, the /etc
// files and the copy of /opt/udiImage: mountns's post-mount hook is the
// place with all of these in place (its pre-mount hook runs before the
// site mounts). A failing roothook stops the start, naming the module.
// Without roothooks the site's hook is passed as it is.
func postMountHook(cfg *udiroot.Config, modules []*udiroot.Module) string {
	var lines []string
	for _, m := range modules {
		if m.RootHook != "" {
			lines = append(lines, fmt.Sprintf(`/bin/sh %s || { s=$?; echo "shifter: module %s roothook %s failed (status $s)" >&2; exit $s; }`,
				shellQuote(m.RootHook), m.Name, strings.ReplaceAll(m.RootHook, `"`, "")))
		}
	}
	if len(lines) == 0 {
		return cfg.SitePostMountHook
	}
	if h := cfg.SitePostMountHook; h != "" {
		run := "/bin/sh " + shellQuote(h) // as mountns runs a hook file
		if isELF(h) {
			run = shellQuote(h)
		}
		lines = append([]string{run + " || exit $?"}, lines...)
	}
	return strings.Join(lines, "\n")
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isELF reports whether the file p starts with the ELF magic.
func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	n, _ := f.Read(b[:])
	return n == 4 && string(b[:]) == "\x7fELF"
}

// generatedEtc are the /etc files Shifter writes when
// populateEtcDynamically=1 (shifter_core.c), instead of the host's: the
// container's passwd and group are files, so NSS looks there.
var generatedEtc = map[string]string{
	"nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\nnetworks:   files dns\nservices: files\n" +
		"protocols: files\nrpc: files\nethers: files\nnetmasks: files\nnetgroup: files\npublickey: files\n" +
		"bootparams: files\nautomount: files\naliases: files\n",
	"host.conf": "order bind,hosts\nmulti on\n",
}

// etcData is the generated /etc content of the Spec: generatedEtc when
// populateEtcDynamically=1.
func etcData(cfg *udiroot.Config) map[string][]byte {
	if !cfg.PopulateEtcDynamically {
		return nil
	}
	out := make(map[string][]byte, len(generatedEtc))
	for name, content := range generatedEtc {
		out[name] = []byte(content)
	}
	return out
}
