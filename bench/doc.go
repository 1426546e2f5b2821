// SPDX-License-Identifier: BSD-3-Clause

// Package bench holds the project's benchmarks (run them with `make bench`,
// see README.md): go test benchmarks for the squashfs reader against
// unsquashfs here, and drivers under cmd/ that time mounts (mountbench),
// container start-up (startbench) and gateway pulls (pullbench) against the
// kernel, squashfuse_ll and Charliecloud. The package has no API; its
// helpers live in bench/internal/benchutil.
package bench
