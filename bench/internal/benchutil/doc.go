// SPDX-License-Identifier: BSD-3-Clause

// Package benchutil holds what the benchmark drivers share: the
// deterministic data generator, the cached benchmark images (a debootstrap'd
// Debian rootfs plus big semi-compressible files, squashed with mksquashfs),
// medians and the markdown tables.
package benchutil
