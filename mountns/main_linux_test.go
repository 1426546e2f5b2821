// SPDX-License-Identifier: BSD-3-Clause

package mountns

import "runtime"

// The main goroutine keeps the main thread, so no test goroutine that
// unshares its thread's mount namespace (TestLoopUnusable) can land on
// it: a goroutine that exits locked to the main thread leaves the thread
// wedged rather than ended, and /proc/self (the thread group leader's
// view) would then show the other namespace for the rest of the run.
func init() { runtime.LockOSThread() }
