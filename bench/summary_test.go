package bench

import (
	"math"
	"testing"
)

// TestSummarize checks the medians and the same-round ratios against
// figures worked out by hand.
func TestSummarize(t *testing.T) {
	counts := []int{1000, 1000000}
	cpu := [][2]float64{{100, 190}, {150, 240}, {95, 200}} // three rounds
	var rs []*Result
	for _, r := range cpu {
		for i, n := range counts {
			rs = append(rs, &Result{Scenario: "established", Workers: 1, Flows: n, CPUNsPerPacket: r[i],
				NsPerPacket: r[i] + 1, BytesPerFlow: float64(200 + i)})
		}
	}
	s, err := Summarize(rs, counts, 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.Counts[0].CPUNsPerPacket != 100 || s.Counts[1].CPUNsPerPacket != 200 || s.NsPerPacket != 201 {
		t.Fatalf("medians %+v", s)
	}
	// ratios 1.9, 1.6, 2.105...: median 1.9, where the ratio of medians is 2.0
	if c := s.Counts[1]; math.Abs(c.CPURatio-1.9) > 1e-9 || math.Abs(c.CPURatioMin-1.6) > 1e-9 || math.Abs(c.CPURatioMax-200.0/95) > 1e-9 {
		t.Fatalf("ratio %+v", c)
	}
	if s.Counts[0].CPURatio != 1 || s.Flows != 1000000 || s.BytesPerFlow != 201 {
		t.Fatalf("summary %+v", s)
	}
	if _, err := Summarize(rs[:5], counts, 3); err == nil {
		t.Fatal("5 results for 3 rounds of 2 accepted")
	}
	rs[1], rs[0] = rs[0], rs[1]
	if _, err := Summarize(rs, counts, 3); err == nil {
		t.Fatal("runs out of order accepted")
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Fatalf("median %v", m)
	}
}
