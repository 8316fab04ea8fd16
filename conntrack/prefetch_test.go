package conntrack

import (
	"testing"

	"github.com/natalg/natalg/nat/ipproto"
)

// TestLookupHint: a hint from PrefetchFlows answers the lookup when its
// flow holds the tuple in the hinted direction and is live; a wrong, stale
// or empty hint falls back to the index, which then gives what Lookup
// gives.
func TestLookupHint(t *testing.T) {
	tb := NewTable(Config{})
	a, b := snatFlow(40000), snatFlow(40001)
	for _, f := range []*Flow{a, b} {
		if _, _, err := tb.Insert(f, 0); err != nil {
			t.Fatal(err)
		}
	}
	hint := func(f *Flow, d Dir) []Hint {
		hs := []Hint{{Hash: tb.Hash(&f.Tuples[d])}}
		tb.PrefetchFlows(hs, []bool{true})
		return hs
	}
	for _, d := range []Dir{Original, Reply} {
		hs := hint(a, d)
		if havePrefetch && (hs[0].Flow != a || hs[0].Dir != d) {
			t.Fatalf("%v: PrefetchFlows found %p %v, want %p", d, hs[0].Flow, hs[0].Dir, a)
		}
		if g, gd := tb.LookupHint(&a.Tuples[d], &hs[0], 1); g != a || gd != d {
			t.Fatalf("%v: LookupHint %p %v", d, g, gd)
		}
		// A hint naming another flow, or the wrong direction.
		for _, h := range []Hint{{Hash: hs[0].Hash, Flow: b, Dir: d}, {Hash: hs[0].Hash, Flow: a, Dir: d.Other()}, {Hash: hs[0].Hash}} {
			if g, gd := tb.LookupHint(&a.Tuples[d], &h, 1); g != a || gd != d {
				t.Fatalf("%v: hint %+v gave %p %v", d, h, g, gd)
			}
		}
	}
	// The hinted flow was removed and a new flow took its tuples.
	hs := hint(a, Original)
	tb.Remove(a)
	c := snatFlow(40000)
	if _, _, err := tb.Insert(c, 2); err != nil {
		t.Fatal(err)
	}
	hs[0].Flow = a
	if g, _ := tb.LookupHint(&c.Tuples[Original], &hs[0], 3); g != c {
		t.Fatalf("stale hint gave %p, want the new flow %p", g, c)
	}
	// Removed and not replaced: nothing.
	tb.Remove(c)
	hs[0].Flow = c
	if g, _ := tb.LookupHint(&c.Tuples[Original], &hs[0], 3); g != nil {
		t.Fatalf("hint of a removed flow gave %p", g)
	}
}

// TestPeekReach: peek finds a tuple's flow exactly when its slot lies
// within prefetchProbes of its home, and at the most loaded an index gets
// (just below a resize) that covers all but a few tuples, so that few
// packets fall back from the hinted lookup to a probe of the index that
// misses the caches again.
func TestPeekReach(t *testing.T) {
	var seed [6]uint64
	for i := range seed {
		seed[i] = uint64(i+1) * 0x9e3779b97f4a7c15
	}
	var x index
	var fs []*Flow
	for k := 0; ; k++ {
		if sl := x.cur.Load(); sl != nil && len(sl.s) > 1<<17 && (x.used+1)*10 > len(sl.s)*maxLoad {
			break
		}
		o := Tuple{Src: inside, Dst: remote, SrcPort: uint16(k), DstPort: uint16(k >> 16), Proto: ipproto.TCP}
		f := NewFlow(o, o)
		x.put(f, Original, hashTuple(&o, &seed), &seed)
		fs = append(fs, f)
	}
	sl := x.cur.Load()
	n := len(sl.s)
	at := make(map[*Flow]int, len(fs))
	for i := range sl.s {
		if f := sl.s[i].flow.Load(); f != nil {
			at[f] = i
		}
	}
	found := 0
	for _, f := range fs {
		h := hashTuple(&f.Tuples[Original], &seed)
		g, _ := x.peek(h)
		near := (at[f]-home(h, n)+n)%n < prefetchProbes
		if g == f {
			found++
		}
		// Another flow with the same 31 tag bits may come first.
		if near && g != f && (g == nil || tagOf(hashTuple(&g.Tuples[Original], &seed), 0) != tagOf(h, 0)) {
			t.Fatalf("peek missed a flow %d slots from home", (at[f]-home(h, n)+n)%n)
		}
		if !near && g == f {
			t.Fatalf("peek found a flow beyond %d probes", prefetchProbes)
		}
	}
	load := float64(x.live) / float64(n)
	share := float64(found) / float64(len(fs))
	t.Logf("load %.3f: peek found %.4f of %d flows", load, share, len(fs))
	if share < 0.96 {
		t.Errorf("at load %.3f peek found only %.4f of the flows", load, share)
	}
}
