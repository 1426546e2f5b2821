// SPDX-License-Identifier: BSD-3-Clause

package main

import "encoding/json"

func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }
