package zstd

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

func TestSmoke(t *testing.T) {
	in, _ := os.ReadFile("/usr/bin/zstd")
	txt, _ := os.ReadFile("/usr/share/common-licenses/GPL-3")
	for _, data := range [][]byte{in[:300000], txt, []byte("hello hello hello hello"), nil, bytes.Repeat([]byte("ab"), 100000)} {
		for _, lvl := range []string{"-1", "-3", "-9", "-19", "--ultra -22"} {
			cmd := exec.Command("sh", "-c", "zstd -c -q --check "+lvl)
			cmd.Stdin = bytes.NewReader(data)
			z, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(make([]byte, 0, len(data)+10), z)
			if err != nil {
				t.Fatalf("%d %s: %v", len(data), lvl, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%d %s: mismatch", len(data), lvl)
			}
		}
	}
}
