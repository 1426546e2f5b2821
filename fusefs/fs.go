// SPDX-License-Identifier: BSD-3-Clause

package fusefs

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/shifter-go/shifter/squashreader"
)

// Forever is the default entry, attribute and negative-entry timeout: the
// image never changes while it is mounted.
const Forever = 100 * 365 * 24 * time.Hour

// kernelBlksize is the st_blksize a kernel squashfs mount reports: the
// block size of its super block, sb_min_blocksize(sb, 1024) on a loop
// device with 512-byte sectors.
const kernelBlksize = 1024

// maxNameLen is SQUASHFS_NAME_LEN: the kernel's squashfs answers longer
// names with ENAMETOOLONG (FUSE would pass up to 1024 bytes).
const maxNameLen = 256

// Options tunes an FS. The zero value (or nil) means defaults.
type Options struct {
	// EntryTimeout, AttrTimeout and NegativeTimeout are how long the kernel
	// may cache a name, attributes, and the absence of a name. Default
	// Forever; a negative value means 0 (no caching).
	EntryTimeout    time.Duration
	AttrTimeout     time.Duration
	NegativeTimeout time.Duration
	// InodeCacheSize is the number of decoded inodes kept, keyed by node
	// id. Default 65536; negative disables the cache.
	InodeCacheSize int
	// Logger receives errors answered with EIO (corrupt image) at warn
	// level and request details at debug level. Default discards.
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	for _, d := range []*time.Duration{&c.EntryTimeout, &c.AttrTimeout, &c.NegativeTimeout} {
		switch {
		case *d == 0:
			*d = Forever
		case *d < 0:
			*d = 0
		}
	}
	if c.InodeCacheSize == 0 {
		c.InodeCacheSize = 65536
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// FS serves a squashreader.Reader as a fuse.RawFileSystem. Requests that
// FS does not implement get ENOSYS from the embedded default, which for
// OPEN, OPENDIR, FLUSH, POLL and the like tells the kernel to stop sending
// them.
type FS struct {
	fuse.RawFileSystem

	r       *squashreader.Reader
	opts    Options
	log     *slog.Logger
	rootRef squashreader.InodeRef
	root    *node
	sb      squashreader.Superblock
	cache   *inodeCache
	stats   stats

	mu        sync.Mutex // guards the fields below, set by Init
	noOpen    bool       // the kernel applies OPEN's flags itself when OPEN says ENOSYS
	noOpendir bool
}

var _ fuse.RawFileSystem = (*FS)(nil)

// New returns an FS serving r. r must stay open while the FS is mounted.
func New(r *squashreader.Reader, opts *Options) (*FS, error) {
	o := opts.withDefaults()
	root, err := r.Root()
	if err != nil {
		return nil, fmt.Errorf("read root inode: %w", err)
	}
	if root.Type != squashreader.TypeDir {
		return nil, fmt.Errorf("read root inode: %w", errRootNotDir)
	}
	f := &FS{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		r:             r,
		opts:          o,
		log:           o.Logger,
		rootRef:       root.Ref,
		sb:            r.Superblock(),
		cache:         newInodeCache(o.InodeCacheSize),
	}
	if f.root, err = f.newNode(root); err != nil {
		return nil, fmt.Errorf("read root inode: %w", err)
	}
	return f, nil
}

// String names the file system (go-fuse uses it as the default subtype).
func (f *FS) String() string { return "shifter-mount" }

// Init records which optional requests the kernel can do without.
func (f *FS) Init(s *fuse.Server) {
	flags := s.KernelSettings().Flags64()
	f.mu.Lock()
	f.noOpen = flags&fuse.CAP_NO_OPEN_SUPPORT != 0
	f.noOpendir = flags&fuse.CAP_NO_OPENDIR_SUPPORT != 0
	f.mu.Unlock()
}

// nodeID maps an inode reference to a FUSE node id: 1 for the root, the
// reference plus 2 for every other inode (references are below 2^48).
func (f *FS) nodeID(ref squashreader.InodeRef) uint64 {
	if ref == f.rootRef {
		return fuse.FUSE_ROOT_ID
	}
	return uint64(ref) + 2
}

// node is a decoded inode with what the attributes need beyond it.
type node struct {
	*squashreader.Inode
	// blocks is st_blocks as the kernel's squashfs computes it: 512-byte
	// units of a regular file's size less its sparse bytes, plus, for an
	// inode of any type with xattrs, those of its xattr id entry's size.
	blocks uint64
}

func (f *FS) newNode(in *squashreader.Inode) (*node, error) {
	n := &node{Inode: in}
	if in.Type == squashreader.TypeFile {
		// (i_size - sparse + 511) >> 9 in the kernel's unsigned 64-bit
		// arithmetic (a corrupt sparse count larger than the size wraps
		// there too).
		n.blocks = (in.Size - in.Sparse + 511) >> 9
	}
	if in.HasXattrs() {
		xs, err := f.r.XattrSize(in)
		if err != nil {
			return nil, err
		}
		// The kernel adds ((xattr_size - 1) >> 9) + 1 with an unsigned
		// int xattr_size.
		n.blocks += uint64((xs-1)>>9 + 1)
	}
	return n, nil
}

// node returns the node of a node id.
func (f *FS) node(op string, id uint64) (*node, fuse.Status) {
	if id == fuse.FUSE_ROOT_ID {
		return f.root, fuse.OK
	}
	if id < 2 {
		return nil, fuse.EINVAL
	}
	if n := f.cache.get(id); n != nil {
		return n, fuse.OK
	}
	in, err := f.r.Inode(squashreader.InodeRef(id - 2))
	if err != nil {
		return nil, f.status(op, id, err)
	}
	n, err := f.newNode(in)
	if err != nil {
		return nil, f.status(op, id, err)
	}
	f.cache.put(id, n)
	return n, fuse.OK
}

// status translates a reader error into a FUSE status. Anything but a
// missing name or xattr is a corrupt image (or an I/O error underneath):
// logged, and answered with EIO.
func (f *FS) status(op string, id uint64, err error) fuse.Status {
	switch {
	case err == nil:
		return fuse.OK
	case errors.Is(err, fs.ErrNotExist):
		return fuse.ENOENT
	case errors.Is(err, squashreader.ErrNoXattr):
		return fuse.ENOATTR
	}
	f.log.Warn("answering EIO", "op", op, "node", id, "err", err)
	return fuse.EIO
}

// fillAttr sets a from n exactly as the kernel's squashfs fills its inode.
func fillAttr(n *node, a *fuse.Attr) {
	mtime := uint64(max(n.Mtime, 0))
	*a = fuse.Attr{
		Ino:     uint64(n.Ino),
		Size:    n.Size,
		Blocks:  n.blocks,
		Atime:   mtime,
		Mtime:   mtime,
		Ctime:   mtime,
		Mode:    n.UnixMode(),
		Nlink:   n.Nlink,
		Owner:   fuse.Owner{Uid: n.UID, Gid: n.GID},
		Blksize: kernelBlksize,
	}
	if n.Type == squashreader.TypeBlockDev || n.Type == squashreader.TypeCharDev {
		// The kernel decodes FUSE's rdev with new_decode_dev, as squashfs
		// decodes the inode's: the on-disk value passes through unchanged.
		a.Rdev = n.Rdev
	}
}

func (f *FS) fillEntry(id uint64, n *node, out *fuse.EntryOut) {
	out.NodeId = id
	out.Generation = 0
	fillAttr(n, &out.Attr)
	out.SetEntryTimeout(f.opts.EntryTimeout)
	out.SetAttrTimeout(f.opts.AttrTimeout)
}

var errRootNotDir = errors.New("root inode is not a directory")
