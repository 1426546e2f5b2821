// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
)

// progress shows a pull's state: on a terminal one self-overwriting line
// with a bar; otherwise a status line each time the state or message
// changes, in Shifter's form
// "2006-01-02T15:04:05 Pulling Image: docker:tag, status: STATE".
type progress struct {
	a     *app
	ref   string
	tty   bool
	last  *api.Image
	drawn bool // a bar line is on the terminal
}

func newProgress(a *app, ref string) *progress {
	return &progress{a: a, ref: ref, tty: a.isTerminal(a.stdout)}
}

func (p *progress) lastState() string {
	if p.last == nil {
		return "none"
	}
	return p.last.Status
}

func (p *progress) line(img *api.Image) string {
	s := fmt.Sprintf("%s Pulling Image: %s, status: %s", time.Now().Format("2006-01-02T15:04:05"), p.ref, img.Status)
	if img.StatusMessage != "" {
		s += ", " + oneLine(img.StatusMessage)
	}
	return s
}

func (p *progress) update(img *api.Image) {
	prev := p.last
	p.last = img
	if !p.tty {
		if prev == nil || prev.Status != img.Status || prev.StatusMessage != img.StatusMessage {
			fmt.Fprintln(p.a.stdout, p.line(img))
		}
		return
	}
	width := termWidth(p.a.stdout)
	s := bar(p.ref, img, width)
	fmt.Fprintf(p.a.stdout, "\r\x1b[2K%s", s)
	p.drawn = true
}

// note prints a transient remark.
func (p *progress) note(msg string) {
	if p.tty {
		fmt.Fprintf(p.a.stdout, "\r\x1b[2K%s: %s", p.ref, msg)
		p.drawn = true
		return
	}
	fmt.Fprintf(p.a.stdout, "%s %s: %s\n", time.Now().Format("2006-01-02T15:04:05"), p.ref, msg)
}

// finish prints the final state on its own line.
func (p *progress) finish(img *api.Image) {
	if p.tty {
		fmt.Fprintf(p.a.stdout, "\r\x1b[2K%s\n", p.line(img))
		p.drawn = false
		return
	}
	if p.last != img { // update already printed it otherwise
		fmt.Fprintln(p.a.stdout, p.line(img))
	}
}

// abort ends a bar line so that an error message starts on a fresh line.
func (p *progress) abort() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.a.stdout)
		p.drawn = false
	}
}

// bar renders "REF  STATE  [#####.....]  1.2 MiB / 4.0 MiB  message"
// within width columns.
func bar(ref string, img *api.Image, width int) string {
	s := fmt.Sprintf("%s  %-10s", ref, img.Status)
	if pr := img.Progress; pr != nil && (pr.BytesTotal > 0 || pr.BytesDone > 0) {
		if pr.BytesTotal > 0 {
			const n = 20
			done := min(n, max(0, int(pr.BytesDone*n/pr.BytesTotal)))
			s += fmt.Sprintf("  [%s%s] %s / %s", strings.Repeat("#", done), strings.Repeat(".", n-done),
				humanBytes(pr.BytesDone), humanBytes(pr.BytesTotal))
		} else {
			s += "  " + humanBytes(pr.BytesDone)
		}
	}
	if img.StatusMessage != "" {
		s += "  " + oneLine(img.StatusMessage)
	}
	if width > 1 && len(s) > width-1 {
		s = s[:width-1]
	}
	return strings.TrimRight(s, " ")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n), "B"
	for _, next := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if f < unit {
			break
		}
		f, u = f/unit, next
	}
	return fmt.Sprintf("%.1f %s", f, u)
}

// oneLine keeps a gateway message on one line, without control
// characters that could move the cursor.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
