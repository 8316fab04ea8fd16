// Package promtext writes metrics in the Prometheus text exposition format
// (version 0.0.4): one writer for every natalg component that exports
// counters (the engine, the NFQUEUE and TUN front ends, the kernel
// datapath), so that each metric family gets its HELP and TYPE lines once,
// before its first sample, however many components write to one page.
package promtext

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Type is a metric family's type.
type Type string

// Metric types natalg exports.
const (
	Counter Type = "counter"
	Gauge   Type = "gauge"
)

// Family is a metric family: its name, type and help text.
type Family struct {
	Name string
	Type Type
	Help string
}

// Writer writes families and samples to an underlying io.Writer. It is an
// io.Writer itself, so a component that takes an io.Writer gets the same
// Writer back from New and shares its record of the families written.
// The first write error sticks and is returned by Err.
type Writer struct {
	w        io.Writer
	declared map[string]bool
	line     []byte
	err      error
}

// New returns a Writer on w, or w itself when it is a *Writer.
func New(w io.Writer) *Writer {
	if pw, ok := w.(*Writer); ok {
		return pw
	}
	return &Writer{w: w, declared: map[string]bool{}}
}

// Write writes b through unchanged.
func (pw *Writer) Write(b []byte) (int, error) {
	if pw.err != nil {
		return 0, pw.err
	}
	n, err := pw.w.Write(b)
	pw.err = err
	return n, err
}

// Err returns the first write error.
func (pw *Writer) Err() error { return pw.err }

// Declare writes f's HELP and TYPE lines, unless written already: a
// family with no sample is still announced.
func (pw *Writer) Declare(f Family) {
	if pw.declared[f.Name] {
		return
	}
	pw.declared[f.Name] = true
	pw.line = append(pw.line[:0], "# HELP "...)
	pw.line = append(pw.line, f.Name...)
	pw.line = append(pw.line, ' ')
	pw.line = append(pw.line, escapeHelp(f.Help)...)
	pw.line = append(pw.line, "\n# TYPE "...)
	pw.line = append(pw.line, f.Name...)
	pw.line = append(pw.line, ' ')
	pw.line = append(pw.line, f.Type...)
	pw.line = append(pw.line, '\n')
	_, _ = pw.Write(pw.line)
}

// Uint writes a sample of f with value v; labels are name, value pairs.
func (pw *Writer) Uint(f Family, v uint64, labels ...string) {
	pw.Sample(f, strconv.FormatUint(v, 10), labels...)
}

// Sample writes a sample of f whose value is already text (a number read
// from /proc, for example); labels are name, value pairs, the values
// quoted and escaped.
func (pw *Writer) Sample(f Family, value string, labels ...string) {
	pw.Declare(f)
	if len(labels)%2 != 0 {
		panic("promtext: labels are name, value pairs")
	}
	pw.line = append(pw.line[:0], f.Name...)
	for i := 0; i < len(labels); i += 2 {
		if i == 0 {
			pw.line = append(pw.line, '{')
		} else {
			pw.line = append(pw.line, ',')
		}
		pw.line = append(pw.line, labels[i]...)
		pw.line = append(pw.line, '=')
		pw.line = strconv.AppendQuote(pw.line, labels[i+1])
	}
	if len(labels) > 0 {
		pw.line = append(pw.line, '}')
	}
	pw.line = append(pw.line, ' ')
	pw.line = append(pw.line, value...)
	pw.line = append(pw.line, '\n')
	_, _ = pw.Write(pw.line)
}

// escapeHelp escapes a help text as the format wants: backslash and
// newline.
func escapeHelp(s string) string {
	if !strings.ContainsAny(s, "\\\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// String returns the family's HELP and TYPE lines, for documentation.
func (f Family) String() string {
	return fmt.Sprintf("# HELP %s %s\n# TYPE %s %s", f.Name, escapeHelp(f.Help), f.Name, f.Type)
}
