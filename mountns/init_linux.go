// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
)

func init() {
	if len(os.Args) > 0 && os.Args[0] == initArg0 {
		runtime.LockOSThread()
		os.Exit(initMain())
	}
}

// initMain is the namespace init (work in progress: reports an error).
func initMain() int {
	st := os.NewFile(fdStatus, "status")
	_ = json.NewEncoder(st).Encode(statusMsg{Err: &errMsg{Kind: "setup", Msg: fmt.Sprintf("%v: namespace init not implemented yet", ErrSetup)}})
	return 125
}
