// SPDX-License-Identifier: BSD-3-Clause

package inflate

import hadler "hash/adler32"

// adler32 returns the Adler-32 checksum of b.
func adler32(b []byte) uint32 { return hadler.Checksum(b) }
