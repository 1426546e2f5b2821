// SPDX-License-Identifier: BSD-3-Clause

package benchutil

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Median returns the median of xs (the mean of the middle two for an even
// count), NaN for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Seconds formats a duration in seconds as baseline.md does: "36.3 ms",
// "0.310 s", "23.34 s"; "–" for NaN.
func Seconds(s float64) string {
	switch {
	case math.IsNaN(s):
		return "–"
	case s < 0.1:
		return fmt.Sprintf("%.1f ms", s*1000)
	case s < 10:
		return fmt.Sprintf("%.3f s", s)
	}
	return fmt.Sprintf("%.2f s", s)
}

// Ratio formats x/base as "1.2×"; "" when either is missing.
func Ratio(x, base float64) string {
	if math.IsNaN(x) || math.IsNaN(base) || base <= 0 {
		return ""
	}
	r := x / base
	if r < 0.095 {
		return fmt.Sprintf("%.2f×", r)
	}
	return fmt.Sprintf("%.1f×", r)
}

// Cell formats a median with its ratio to the baseline's median, as
// "0.310 s (8.5×)"; the baseline's own cell has no ratio.
func Cell(x, base float64, isBase bool) string {
	c := Seconds(x)
	if r := Ratio(x, base); r != "" && !isBase && !math.IsNaN(x) {
		c += " (" + r + ")"
	}
	return c
}

// MiB formats a byte count in MiB with one decimal.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Table is a markdown table: a header row and body rows; the first column
// is left-aligned, the others right-aligned.
type Table struct {
	Header []string
	Rows   [][]string
}

// Markdown renders the table.
func (t *Table) Markdown() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.Header, " | ") + " |\n|")
	for i := range t.Header {
		if i == 0 {
			b.WriteString("---|")
		} else {
			b.WriteString("---:|")
		}
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}
