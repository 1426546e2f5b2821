// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// vlogHeaderSize is the header of a badger v4 value-log file: the
// encryption key id (8 bytes, big-endian, 0 for plain text) and a random
// 12-byte base IV. A value-log file closed with nothing in it is exactly
// this long.
const vlogHeaderSize = 20

// sealValueLog makes the value log in dbDir, which a clean Close has just
// closed, end in an empty file, when its last file holds entries.
//
// Why: badger's Open reads the whole last value-log file, entry by entry,
// to find where a torn write would have left it (and copies every entry as
// it goes), then starts a new file. After a session that stored chunks,
// the last file holds them all: the next open of the cache read 112 MiB
// and took 70 ms against 5 ms (a warm cache's mount after a full read of
// the bench image). An empty last file is what badger itself leaves after
// a session that wrote nothing; this writes the same: an all-zero key id
// (the cache does not encrypt) and a random base IV, in a file named as
// badger names them (%06d.vlog, the next file id), through a temporary
// name badger ignores, then renamed and the directory synced. After a
// crash there is nothing to seal and badger checks the last file as
// before. An error leaves the log as badger left it (only slower to open).
func sealValueLog(dbDir string) error {
	ents, err := os.ReadDir(dbDir)
	if err != nil {
		return err
	}
	var maxFid uint64
	found := false
	var lastSize int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".vlog")
		if !ok {
			continue
		}
		fid, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return fmt.Errorf("value log file %s: %w", e.Name(), err)
		}
		if found && fid <= maxFid {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		maxFid, found, lastSize = fid, true, info.Size()
	}
	if !found || lastSize <= vlogHeaderSize || maxFid+1 > 1<<32-1 {
		return nil
	}
	hdr := make([]byte, vlogHeaderSize)
	if _, err := rand.Read(hdr[8:]); err != nil {
		return err
	}
	name := filepath.Join(dbDir, fmt.Sprintf("%06d.vlog", maxFid+1))
	tmp := name + ".seal"
	os.Remove(tmp) // left by a crash here: the cache's lock is held, nothing else writes it
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(hdr)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// RENAME_NOREPLACE: never over a file badger made meanwhile.
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, name, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dbDir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
