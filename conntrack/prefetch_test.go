package conntrack

import "testing"

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
