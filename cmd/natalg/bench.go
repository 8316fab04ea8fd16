package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/natalg/natalg/bench"
)

// cmdBench implements "natalg bench"; the harness lives in package bench.
func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "established", "scenario: "+strings.Join(bench.Scenarios, ", "))
	flows := fs.String("flows", "", "concurrent flows, or a comma-separated list of counts (e.g. 1000,10000,100000,1000000)")
	cores := fs.Int("cores", 1, "workers (Serve loops on one engine, each with its own device); GOMAXPROCS is set to it")
	asJSON := fs.Bool("json", false, "print one JSON object per run, the last run's on the last line")
	size := fs.Int("size", bench.DefaultSize, "IP length of data packets, 40..1500 (mixed uses IMIX sizes)")
	packets := fs.Int("packets", bench.DefaultPackets, "packets to time, about")
	maxTime := fs.Duration("time", bench.DefaultMaxTime, "bound on each timed phase")
	batch := fs.Int("batch", bench.DefaultBatch, "packets per batch")
	seed := fs.Int64("seed", 1, "generator seed")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the runs to this file")
	rounds := fs.Int("rounds", 1, "run the list of flow counts this many times in turn and summarize: medians per count, and the median of the CPU-time ratios to the first count within each round")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "natalg bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *flows == "" {
		fmt.Fprintln(stderr, "natalg bench: --flows is required")
		return 2
	}
	var counts []int
	for _, s := range strings.Split(*flows, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(s, "_", "")))
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "natalg bench: bad flow count %q\n", s)
			return 2
		}
		counts = append(counts, n)
	}
	if *rounds < 1 {
		fmt.Fprintln(stderr, "natalg bench: --rounds must be at least 1")
		return 2
	}
	known := false
	for _, s := range bench.Scenarios {
		known = known || s == *scenario
	}
	if !known {
		fmt.Fprintf(stderr, "natalg bench: unknown scenario %q (want %s)\n", *scenario, strings.Join(bench.Scenarios, ", "))
		return 2
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "natalg bench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "natalg bench: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	var rs []*bench.Result
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !*asJSON {
		fmt.Fprintln(tw, "scenario\tflows\tworkers\tsize\tpackets\tns/packet\tMpps\tallocs/packet\tbytes/flow\tdevice ns/packet\textra\t")
	}
	var order []int
	for range *rounds {
		order = append(order, counts...)
	}
	for _, n := range order {
		r, err := bench.Run(bench.Options{Scenario: *scenario, Flows: n, Workers: *cores, Size: *size,
			Packets: *packets, MaxTime: *maxTime, Batch: *batch, Seed: *seed})
		if err != nil {
			fmt.Fprintf(stderr, "natalg bench: %v\n", err)
			return 1
		}
		rs = append(rs, r)
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintf(stdout, "%s\n", b)
			continue
		}
		var extra []string
		if r.FlowsPerSecond > 0 {
			extra = append(extra, fmt.Sprintf("%.0f flows/s", r.FlowsPerSecond))
		}
		if r.NsPerControlSegment > 0 {
			extra = append(extra, fmt.Sprintf("%.0f ns/control segment", r.NsPerControlSegment))
		}
		if r.Rewrites > 0 {
			extra = append(extra, fmt.Sprintf("%d rewrites, %d data flows", r.Rewrites, r.DataFlows))
		}
		extra = append(extra, fmt.Sprintf("cpu %.1f ns/packet, load %.2f", r.CPUNsPerPacket, r.LoadAverage))
		if r.Dropped > 0 {
			extra = append(extra, fmt.Sprintf("%d dropped %v", r.Dropped, r.Drops))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\t%.2f\t%.4f\t%.0f\t%.1f\t%s\t\n", r.Scenario, r.Flows, r.Workers,
			r.PacketSize, r.Packets, r.NsPerPacket, r.PacketsPerSecond/1e6, r.AllocsPerPacket, r.BytesPerFlow,
			r.DeviceNsPerPacket, strings.Join(extra, "; "))
	}
	tw.Flush()
	if !*asJSON && len(rs) > 0 {
		fmt.Fprintf(stdout, "%s, GOMAXPROCS=%d of %d CPUs; ns/packet is per worker\n", rs[0].GoVersion, rs[0].GOMAXPROCS, rs[0].NumCPU)
	}
	if *rounds > 1 {
		sum, err := bench.Summarize(rs, counts, *rounds)
		if err != nil {
			fmt.Fprintf(stderr, "natalg bench: %v\n", err)
			return 1
		}
		if *asJSON {
			b, _ := json.Marshal(sum)
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			printBenchSummary(stdout, sum)
		}
	}
	return 0
}

// printBenchSummary prints the medians of natalg bench --rounds.
func printBenchSummary(w io.Writer, s *bench.Summary) {
	fmt.Fprintf(w, "\nmedians of %d rounds (%s, %d worker(s)):\n", s.Rounds, s.Scenario, s.Workers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "flows\tcpu ns/packet\tns/packet\tMpps\tbytes/flow\tcpu ratio to first (min-max)\t")
	for _, c := range s.Counts {
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.2f\t%.0f\t%.2f (%.2f-%.2f)\t\n", c.Flows, c.CPUNsPerPacket, c.NsPerPacket,
			c.PacketsPerSecond/1e6, c.BytesPerFlow, c.CPURatio, c.CPURatioMin, c.CPURatioMax)
	}
	tw.Flush()
}
