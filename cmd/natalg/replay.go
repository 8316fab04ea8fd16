package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"github.com/natalg/natalg/cmd/internal/pcapreplay"
	"github.com/natalg/natalg/nat"
)

// cmdReplay implements "natalg replay".
func cmdReplay(args []string, stdout, stderr io.Writer, log *slog.Logger) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf natFlags
	nf.register(fs)
	expect := fs.String("expect", "", "golden capture to compare the output with")
	maxDiffs := fs.Int("max-diffs", 20, "differences to print at most")
	show := fs.Bool("show", false, "print every rewritten payload, before and after")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 2 {
		fmt.Fprintf(stderr, "natalg replay: want IN.pcap OUT.pcap, got %d file names\n", len(pos))
		return 2
	}
	cfg, err := nf.config()
	if err != nil {
		fmt.Fprintf(stderr, "natalg replay: %v\n", err)
		return 2
	}
	eng, err := nat.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "natalg replay: %v\n", err)
		return 2
	}
	in, err := os.Open(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "natalg replay: %v\n", err)
		return 1
	}
	defer in.Close()
	out, err := os.Create(pos[1])
	if err != nil {
		fmt.Fprintf(stderr, "natalg replay: %v\n", err)
		return 1
	}
	var opt pcapreplay.Options
	if *show {
		opt.OnRewrite = func(rw pcapreplay.Rewrite) {
			fmt.Fprintf(stdout, "packet %d: %s\n   before %q\n   after  %q\n", rw.Index,
				pcapreplay.Endpoints(rw.Before, rw.After), rw.Payloads[0], rw.Payloads[1])
		}
	}
	sum, err := pcapreplay.ReplayWith(eng, in, out, opt)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "natalg replay: %s: %v\n", pos[0], err)
		return 1
	}
	printSummary(stdout, sum)
	log.Debug("replay done", "in", pos[0], "out", pos[1])
	if *expect == "" {
		return 0
	}
	diffs, err := compareFiles(pos[1], *expect, cfg, *maxDiffs)
	if err != nil {
		fmt.Fprintf(stderr, "natalg replay: %v\n", err)
		return 1
	}
	if len(diffs) > 0 {
		fmt.Fprintf(stdout, "DIFFERENT from %s:\n", *expect)
		for _, d := range diffs {
			fmt.Fprintln(stdout, d)
		}
		return 1
	}
	fmt.Fprintf(stdout, "identical to %s (IP layer; TTL and IPv4 header checksum ignored)\n", *expect)
	return 0
}

func compareFiles(outPath, goldenPath string, cfg nat.Config, max int) ([]string, error) {
	read := func(p string) ([]pcapreplay.Packet, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ps, err := pcapreplay.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return ps, nil
	}
	o, err := read(outPath)
	if err != nil {
		return nil, err
	}
	g, err := read(goldenPath)
	if err != nil {
		return nil, err
	}
	return pcapreplay.Compare(o, g, cfg.Inside, max), nil
}

func printSummary(w io.Writer, s pcapreplay.Summary) {
	e := s.Engine
	fmt.Fprintf(w, "packets: in %d, out %d, dropped %d\n", s.In, s.Out, s.Dropped)
	if s.Held > 0 || e.Reassembled > 0 {
		fmt.Fprintf(w, "fragments: %d held, %d datagrams reassembled, %d fragments sent\n", s.Held, e.Reassembled, e.FragmentsOut)
	}
	fmt.Fprintf(w, "translated %d, passed unchanged %d (not to/from the NAT), non-IP %d\n", e.Translated, e.Passed, s.NotIP)
	if s.CaptureTruncated > 0 {
		fmt.Fprintf(w, "dropped, cut short by the capture's snap length: %d\n", s.CaptureTruncated)
	}
	printCounts(w, "dropped by reason", e.Drops)
	fmt.Fprintf(w, "flows: created %d (%d from expectations), live at end %d; expectations pending %d\n", e.FlowsMade, e.DataFlows, s.Flows, s.Expectations)
	fmt.Fprintf(w, "ftp: payload rewrites %d, segments with SEQ/ACK/SACK shifted %d\n", e.Rewrites, e.SeqAdjusted)
	printCounts(w, "ftp gateway events", e.ALG)
}

func printCounts(w io.Writer, title string, m map[string]uint64) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "%s:", title)
	for _, k := range keys {
		fmt.Fprintf(w, " %s=%d", k, m[k])
	}
	fmt.Fprintln(w)
}
