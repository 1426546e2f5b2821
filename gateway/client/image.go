// SPDX-License-Identifier: BSD-3-Clause

package client

import (
	"fmt"
	"strings"
)

// DefaultType is the image type of a reference without one.
const DefaultType = "docker"

// Types are the image types a reference may start with ("type:tag").
var Types = []string{"docker", "custom", "id", "local"}

// ParseImage splits a "[type:]tag" reference as shifterimg and shifter
// take it: "docker:ubuntu:22.04" and "ubuntu:22.04" both give docker and
// "ubuntu:22.04"; "127.0.0.1:5000/x:1" gives docker and the whole
// reference, since "127.0.0.1" is not a type.
func ParseImage(ref string) (itype, tag string, err error) {
	if ref == "" {
		return "", "", fmt.Errorf("parsing image %q: empty", ref)
	}
	itype, tag = DefaultType, ref
	if t, rest, ok := strings.Cut(ref, ":"); ok {
		for _, known := range Types {
			if t == known {
				itype, tag = t, rest
				break
			}
		}
	}
	if tag == "" {
		return "", "", fmt.Errorf("parsing image %q: empty tag", ref)
	}
	if strings.ContainsAny(tag, " \t\n\x00") {
		return "", "", fmt.Errorf("parsing image %q: tag contains white space or NUL", ref)
	}
	for _, seg := range strings.Split(tag, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", fmt.Errorf("parsing image %q: bad path segment %q", ref, seg)
		}
	}
	return itype, tag, nil
}

// RegistryHost returns the registry a docker tag names: its first path
// component when that looks like a host ("127.0.0.1:5000/x", "ghcr.io/x",
// "localhost/x"), otherwise "default" (the default registry), the key
// Shifter uses in authorized_locations.
func RegistryHost(tag string) string {
	first, _, ok := strings.Cut(tag, "/")
	if !ok {
		return "default"
	}
	if strings.ContainsAny(first, ".:") || first == "localhost" {
		switch first {
		case "docker.io", "index.docker.io", "registry-1.docker.io":
			return "default"
		}
		return first
	}
	return "default"
}
