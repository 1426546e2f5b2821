// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// The container root is built from a plan: an ordered list of operations
// (what is mounted where, with which flags, in which order), computed from
// the init's config alone by planRoot, then executed one by one by a
// builder (build_linux.go). The plan is a pure function, so unprivileged
// tests assert it; the privileged tests of tests/runtime check that the
// executed plan gives the container they expect.

// opKind says what an operation does.
type opKind uint8

const (
	opStagingTmpfs opKind = iota // tmpfs on udiMount, with the lower, upper and work directories
	opImage                      // the image mounted on lower (loop, FUSE, or a bind of the local root)
	opUpper                      // (unprivileged) mount points and /etc files made in the upper layer
	opOverlay                    // the overlay of lower and upper on udiMount: the container root
	opEtc                        // (privileged) the site files of /etc written into the upper layer
	opMount                      // a new file system mounted in the root
	opBind                       // a bind mount into the root
	opHook                       // a site hook run
	opPerNodeCache               // a perNodeCache volume: a new file system on a loop device
	opReadOnly                   // the root remounted read-only
)

// op is one operation of the plan.
type op struct {
	kind opKind
	// dest is the path in the container (opMount, opBind), or the host
	// path of udiMount or lower (opStagingTmpfs, opImage, opOverlay).
	dest string
	// opMount, opStagingTmpfs, opOverlay, opReadOnly: mount(2)'s source,
	// type, flags and data (opOverlay: the data without userxattr).
	source, fstype string
	flags          uintptr
	data           string
	mode           MountMode // opImage: "" for a local root
	bind           bindReq   // opBind; opPerNodeCache: its volume, dest and user
	hook, hookName string    // opHook: the command and its udiRoot.conf name
}

// bindReq is one bind mount into the container root.
type bindReq struct {
	// The source: hostPath, opened by the init (site paths, trusted), or,
	// when hostPath is "", volume, the index of the volume in
	// initConfig.Volumes, whose source openSources has opened.
	hostPath string
	volume   int
	// dest is the destination in the container, resolved inside the root
	// (never through a symlink out of it).
	dest string
	// attrs are added to every mount of the bound tree.
	attrs mountAttrs
	// propagation of the new tree: "" (private), "private" or "slave".
	propagation string
	// recursive binds the source's submounts too (MS_REC).
	recursive bool
	// user marks a user volume: the user destination rules apply, and a
	// missing mount point below a mount other than the root's own file
	// system is made with the user's credentials.
	user bool
	// optional: when the destination is missing and would have to be made
	// on a mount other than the root's own file system (an image's symlink
	// such as /var -> /dev leading into a bound host directory), the bind
	// is skipped with a warning instead of failing. Mount points that are
	// not the user's are never made there.
	optional bool
	// recursiveInUserNS: in a user namespace, where the kernel refuses a
	// non-recursive bind of a tree with locked submounts (EINVAL), bind
	// recursively instead and drop the copy of the container itself that
	// comes along when udiMount lies below the source.
	recursiveInUserNS bool
}

// planRoot returns the operations that build the container root for cfg,
// in order. hostHas reports whether a host path exists (/tmp and /var/tmp
// are bound only when they do).
func planRoot(cfg *initConfig, hostHas func(string) bool) []op {
	udi := cfg.UDIMount
	lower := path.Join(udi, "lower")
	plan := []op{
		{kind: opStagingTmpfs, dest: udi, source: "shifter", fstype: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=0755"},
		{kind: opImage, dest: lower, mode: cfg.Mode, source: cfg.ImagePath},
	}
	if cfg.LocalRoot != "" {
		plan[1].mode, plan[1].source = "", cfg.LocalRoot
	}
	if cfg.Unprivileged {
		plan = append(plan, op{kind: opUpper, dest: path.Join(udi, "upper")})
	} else {
		plan = append(plan, op{kind: opEtc, dest: path.Join(udi, "upper")})
	}
	plan = append(plan, op{kind: opOverlay, dest: udi, source: "overlay", fstype: "overlay",
		flags: unix.MS_NOSUID | unix.MS_NODEV, data: "lowerdir=lower,upperdir=upper,workdir=work"})

	// The system mounts.
	noexec := mountAttrs{nosuid: true, nodev: true, noexec: true}
	if cfg.Unprivileged {
		// A fresh proc needs the PID namespace's owner; bind the host's.
		plan = append(plan, bindOp(bindReq{hostPath: "/proc", dest: "/proc", attrs: noexec, recursive: true}))
	} else {
		plan = append(plan, op{kind: opMount, dest: "/proc", source: "proc", fstype: "proc", flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC})
	}
	plan = append(plan,
		bindOp(bindReq{hostPath: "/sys", dest: "/sys", attrs: noexec, recursive: true}),
		// /dev as the host has it: GPUs, InfiniBand, /dev/shm for MPI.
		bindOp(bindReq{hostPath: "/dev", dest: "/dev", attrs: mountAttrs{nosuid: true}, recursive: true}))
	// The host's /tmp and /var/tmp, without what is mounted below them
	// (like Shifter; a recursive bind would also copy udiMount when it
	// lies under /tmp).
	for _, t := range []string{"/tmp", "/var/tmp"} {
		if hostHas(t) {
			plan = append(plan, bindOp(bindReq{hostPath: t, dest: t, attrs: mountAttrs{nosuid: true, nodev: true},
				optional: true, recursiveInUserNS: true}))
		}
	}

	if cfg.PreMountHook != "" {
		plan = append(plan, op{kind: opHook, hookName: "sitePreMountHook", hook: cfg.PreMountHook})
	}
	for i, v := range cfg.Volumes {
		if v.PerNodeCache != nil {
			plan = append(plan, op{kind: opPerNodeCache, dest: v.Dest, fstype: v.PerNodeCache.FsType,
				flags: unix.MS_NOSUID | unix.MS_NODEV, data: fmt.Sprint(v.PerNodeCache.Size),
				bind: bindReq{volume: i, dest: v.Dest, user: !v.Site}})
			continue
		}
		attrs := mountAttrs{rdonly: v.ReadOnly, nosuid: true, nodev: true}
		if v.Site {
			attrs.nodev = !under(v.Source, "/dev")
		}
		plan = append(plan, bindOp(bindReq{volume: i, dest: v.Dest, attrs: attrs, propagation: v.Propagation, recursive: true, user: !v.Site}))
	}
	if cfg.PostMountHook != "" {
		plan = append(plan, op{kind: opHook, hookName: "sitePostMountHook", hook: cfg.PostMountHook})
	}
	// The image, and the site files with it, become read-only; the mounts
	// on top keep their own flags.
	plan = append(plan, op{kind: opReadOnly, dest: "/", flags: unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV})
	return plan
}

func bindOp(b bindReq) op { return op{kind: opBind, dest: b.dest, bind: b} }

// String renders the operation for tests and debug logs, e.g.
// "bind /dev on /dev rec nosuid private".
func (o op) String() string {
	switch o.kind {
	case opStagingTmpfs:
		return fmt.Sprintf("tmpfs on %s %s %s, mkdir lower upper work", o.dest, mountFlagString(o.flags), o.data)
	case opImage:
		if o.mode == "" {
			return fmt.Sprintf("image local %s on %s ro,nosuid,nodev rec", o.source, o.dest)
		}
		return fmt.Sprintf("image %s %s on %s ro,nosuid,nodev", o.mode, o.source, o.dest)
	case opUpper:
		return "mount points and /etc files in " + o.dest
	case opOverlay:
		return fmt.Sprintf("overlay on %s %s %s", o.dest, mountFlagString(o.flags), o.data)
	case opEtc:
		return "/etc files in " + o.dest
	case opMount:
		return fmt.Sprintf("mount %s %s on %s %s", o.fstype, o.source, o.dest, mountFlagString(o.flags))
	case opBind:
		return o.bind.String()
	case opHook:
		return "hook " + o.hookName
	case opPerNodeCache:
		who := "site"
		if o.bind.user {
			who = "user"
		}
		return fmt.Sprintf("perNodeCache volume %d: %s of %s bytes on %s %s %s", o.bind.volume, o.fstype, o.data, o.dest, mountFlagString(o.flags), who)
	case opReadOnly:
		return "remount / " + mountFlagString(o.flags)
	}
	return fmt.Sprintf("op %d", o.kind)
}

func (b bindReq) String() string {
	src := b.hostPath
	if src == "" {
		src = fmt.Sprintf("volume %d", b.volume)
	}
	words := []string{"bind", src, "on", b.dest}
	if b.recursive {
		words = append(words, "rec")
	}
	var attrs []string
	for _, a := range []struct {
		set  bool
		name string
	}{{b.attrs.rdonly, "ro"}, {b.attrs.nosuid, "nosuid"}, {b.attrs.nodev, "nodev"}, {b.attrs.noexec, "noexec"}} {
		if a.set {
			attrs = append(attrs, a.name)
		}
	}
	if len(attrs) > 0 {
		words = append(words, strings.Join(attrs, ","))
	}
	prop := b.propagation
	if prop == "" {
		prop = "private"
	}
	words = append(words, prop)
	for _, f := range []struct {
		set  bool
		name string
	}{{b.user, "user"}, {b.optional, "optional"}, {b.recursiveInUserNS, "rec-in-userns"}} {
		if f.set {
			words = append(words, f.name)
		}
	}
	return strings.Join(words, " ")
}
