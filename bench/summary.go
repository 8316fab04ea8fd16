package bench

import (
	"fmt"
	"slices"
)

// Summary gathers the runs of several rounds over a list of flow counts,
// run in turn (1k, 1M, 1k, 1M, ...) in one process, as natalg bench
// --rounds does. On a machine whose speed changes from minute to minute,
// the cost at N flows against the cost at the first count is best read as
// the median of the ratios of runs taken side by side in the same round,
// not as the ratio of two medians taken at different times.
type Summary struct {
	Scenario string         `json:"scenario"`
	Workers  int            `json:"workers"`
	Rounds   int            `json:"rounds"`
	Counts   []CountSummary `json:"counts"`

	// The medians of the last flow count, under the names of a Result.
	Medians
}

// Medians are the medians over the rounds of one flow count's figures,
// under the names of a Result (in JSON too: the struct is embedded).
type Medians struct {
	Flows            int     `json:"flows"`
	NsPerPacket      float64 `json:"ns_per_packet"`
	CPUNsPerPacket   float64 `json:"cpu_ns_per_packet"`
	PacketsPerSecond float64 `json:"packets_per_second"`
	AllocsPerPacket  float64 `json:"allocs_per_packet"`
	BytesPerFlow     float64 `json:"bytes_per_flow"`
}

// CountSummary is the medians over the rounds of one flow count.
type CountSummary struct {
	Medians
	// CPURatio is the median over the rounds of this count's CPU time per
	// packet divided by the first count's in the same round; CPURatioMin
	// and CPURatioMax are its range.
	CPURatio    float64 `json:"cpu_ratio_to_first"`
	CPURatioMin float64 `json:"cpu_ratio_to_first_min"`
	CPURatioMax float64 `json:"cpu_ratio_to_first_max"`
}

// Summarize summarizes rs, the results of rounds rounds over counts in
// order: rs[r*len(counts)+i] is round r's run of counts[i].
func Summarize(rs []*Result, counts []int, rounds int) (*Summary, error) {
	if len(counts) == 0 || rounds <= 0 || len(rs) != rounds*len(counts) {
		return nil, fmt.Errorf("bench: %d results for %d rounds of %d counts", len(rs), rounds, len(counts))
	}
	s := &Summary{Scenario: rs[0].Scenario, Workers: rs[0].Workers, Rounds: rounds}
	for i, n := range counts {
		var ns, cpu, pps, allocs, bpf, ratio []float64
		for r := range rounds {
			x, first := rs[r*len(counts)+i], rs[r*len(counts)]
			if x.Flows != n {
				return nil, fmt.Errorf("bench: round %d run %d is of %d flows, want %d", r, i, x.Flows, n)
			}
			ns, cpu, pps = append(ns, x.NsPerPacket), append(cpu, x.CPUNsPerPacket), append(pps, x.PacketsPerSecond)
			allocs, bpf = append(allocs, x.AllocsPerPacket), append(bpf, x.BytesPerFlow)
			if first.CPUNsPerPacket > 0 {
				ratio = append(ratio, x.CPUNsPerPacket/first.CPUNsPerPacket)
			}
		}
		c := CountSummary{Medians: Medians{Flows: n, NsPerPacket: median(ns), CPUNsPerPacket: median(cpu),
			PacketsPerSecond: median(pps), AllocsPerPacket: median(allocs), BytesPerFlow: median(bpf)}}
		if len(ratio) > 0 {
			c.CPURatio, c.CPURatioMin, c.CPURatioMax = median(ratio), slices.Min(ratio), slices.Max(ratio)
		}
		s.Counts = append(s.Counts, c)
	}
	s.Medians = s.Counts[len(s.Counts)-1].Medians
	return s, nil
}

// median returns the median of xs (the mean of the middle two for an even
// count); xs is reordered.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
