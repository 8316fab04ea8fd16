// Command natalg-plot draws the results of natalg bench: the cost per
// packet and the memory per flow against the flow count, side by side, as
// a PNG. It reads the JSON lines of natalg bench --json (from the files
// named, or standard input); a summary line of --rounds is skipped, and of
// several runs with the same flow count the last is drawn (with --rounds,
// the last round). The plotting library lives here, not in the natalg
// binary.
//
//	natalg bench --json --scenario established --flows 1000,10000,100000 | natalg-plot -o established.png
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/natalg/natalg/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("natalg-plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "bench.png", "PNG file to write")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var rs []*bench.Result
	read := func(name string, r io.Reader) error {
		got, err := readResults(r)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rs = append(rs, got...)
		return nil
	}
	if fs.NArg() == 0 {
		if err := read("standard input", stdin); err != nil {
			fmt.Fprintf(stderr, "natalg-plot: %v\n", err)
			return 1
		}
	}
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "natalg-plot: %v\n", err)
			return 1
		}
		err = read(name, f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "natalg-plot: %v\n", err)
			return 1
		}
	}
	rs = lastPerFlowCount(rs)
	if err := plotResults(*out, rs); err != nil {
		fmt.Fprintf(stderr, "natalg-plot: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "plot of %d runs written to %s\n", len(rs), *out)
	return 0
}

// readResults decodes the JSON lines of natalg bench --json: one Result per
// run; lines of another kind (the --rounds summary, which has "rounds") and
// blank lines are skipped.
func readResults(r io.Reader) ([]*bench.Result, error) {
	var rs []*bench.Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var kind struct {
			Rounds *int `json:"rounds"`
		}
		if err := json.Unmarshal(b, &kind); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if kind.Rounds != nil {
			continue
		}
		res := new(bench.Result)
		if err := json.Unmarshal(b, res); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if res.Flows <= 0 {
			return nil, fmt.Errorf("line %d: not a natalg bench result (no flow count)", line)
		}
		rs = append(rs, res)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, errors.New("no natalg bench --json results")
	}
	return rs, nil
}

// lastPerFlowCount keeps, for each flow count, the last result, in order
// of flow count.
func lastPerFlowCount(rs []*bench.Result) []*bench.Result {
	last := map[int]*bench.Result{}
	for _, r := range rs {
		last[r.Flows] = r
	}
	out := make([]*bench.Result, 0, len(last))
	for _, r := range last {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *bench.Result) int { return a.Flows - b.Flows })
	return out
}
