// SPDX-License-Identifier: BSD-3-Clause

// Package pull fetches container images from OCI/Docker registries and
// converts them into squashfs files: it resolves a reference to one
// platform image manifest (Resolve), downloads the layer blobs into a
// verified local cache shared by concurrent pulls, flattens the layers
// (whiteouts, opaque directories, cross-layer hard links) into one tar
// stream and pipes it into `mksquashfs - OUT -tar` (Build), so no layer is
// ever extracted onto the gateway's disk.
//
// Everything that comes from a registry is untrusted: manifests and
// configs are size-capped and validated, every blob is checked against its
// digest, size and diff_id, and tar entries are sanitized (see package
// flatten). A registry cannot steer the gateway elsewhere: the dialer
// refuses internal addresses (loopback, link-local, private, unspecified),
// checked on the address actually connected to, except for the registry
// named in the reference and Options.AllowInternalHosts; credentials go
// only to the registry's own host and its Registry.AuthHosts, whatever
// token realm or redirect the registry names. A redirect chain is cut at
// 10 hops, and a blob arriving slower than Options.MinSpeed is cut off
// (ErrTooSlow), so a registry cannot hold a worker by trickling bytes.
package pull
