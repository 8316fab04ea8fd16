package seqdelta

import (
	"math/rand/v2"
	"testing"
)

// naive is the reference model: every rewrite ever made, kept forever, and
// offsets recomputed by summation.
type naive struct {
	rewrites []struct {
		start, end uint32
		delta      int32
	}
}

func (n *naive) record(start, end uint32, delta int32) {
	n.rewrites = append(n.rewrites, struct {
		start, end uint32
		delta      int32
	}{start, end, delta})
}

// seq: sum of the deltas of rewrites that ended at or before seq.
func (n *naive) seq(isn, seq uint32) uint32 {
	var off int32
	for _, r := range n.rewrites {
		if seq-isn >= r.end-isn {
			off += r.delta
		}
	}
	return seq + uint32(off)
}

// ack: walk the translated stream; an ack inside rewritten text maps to the
// rewrite's start.
func (n *naive) ack(isn, ack uint32) uint32 {
	var off int32
	for _, r := range n.rewrites {
		startT := r.start + uint32(off)
		endT := r.end + uint32(off+r.delta)
		if ack-isn < startT-isn {
			return ack - uint32(off)
		}
		if ack-isn < endT-isn {
			return r.start
		}
		off += r.delta
	}
	return ack - uint32(off)
}

func TestLedgerEmpty(t *testing.T) {
	var l Ledger
	for _, s := range []uint32{0, 1, 1 << 31, 0xffffffff} {
		if l.Seq(s) != s || l.Ack(s) != s {
			t.Fatalf("empty ledger moved %d", s)
		}
	}
}

func TestLedgerGrowShrink(t *testing.T) {
	var l Ledger
	// "PORT 198,18,0,2,4,1\r\n" at 1000..1021: address text grows by 4.
	l.Record(1005, 1019, +4)
	// later a shrink by 2 at 2000..2010
	l.Record(2000, 2010, -2)
	cases := []struct{ seq, want uint32 }{
		{999, 999}, {1000, 1000}, {1005, 1005}, {1010, 1010}, // before/inside first rewrite: old offset
		{1019, 1023}, {1500, 1504}, {2000, 2004}, {2010, 2012}, {3000, 3002},
	}
	for _, c := range cases {
		if got := l.Seq(c.seq); got != c.want {
			t.Errorf("Seq(%d) = %d, want %d", c.seq, got, c.want)
		}
	}
	acks := []struct{ ack, want uint32 }{
		{1000, 1000}, {1005, 1005}, // up to the start of rewritten text
		{1010, 1005}, {1022, 1005}, // inside the grown text: the original start, never further
		{1023, 1019}, {1504, 1500}, {2004, 2000},
		{2006, 2000}, // inside the shrunk text
		{2012, 2010}, {3002, 3000},
	}
	for _, c := range acks {
		if got := l.Ack(c.ack); got != c.want {
			t.Errorf("Ack(%d) = %d, want %d", c.ack, got, c.want)
		}
	}
}

func TestLedgerRetransmittedRewriteRecordsNothing(t *testing.T) {
	var l Ledger
	l.Record(100, 120, 5)
	l.Record(100, 120, 5) // identical rewrite of a retransmission
	l.Record(50, 60, 3)   // older than the newest point: ignored
	if l.Len() != 1 || l.Offset() != 5 {
		t.Fatalf("len %d offset %d, want 1 and 5", l.Len(), l.Offset())
	}
	l.Record(200, 210, 0)
	if l.Len() != 1 {
		t.Fatal("zero delta recorded a point")
	}
}

func TestLedgerWraparound(t *testing.T) {
	var l Ledger
	start := uint32(0xfffffff0)
	l.Record(start, start+0x14, 7) // spans the 2^32 wrap
	if got := l.Seq(start + 0x20); got != start+0x27 {
		t.Fatalf("Seq across wrap = %#x", got)
	}
	if got := l.Seq(start - 5); got != start-5 {
		t.Fatalf("Seq before wrap = %#x", got)
	}
	if got := l.Ack(start + 0x27); got != start+0x20 {
		t.Fatalf("Ack across wrap = %#x", got)
	}
}

// TestLedgerKeepsSeveralPoints is what the kernel's single correction point
// gets wrong: data sent before an earlier rewrite, retransmitted after a
// later one, must map with the offset of its own time.
func TestLedgerKeepsSeveralPoints(t *testing.T) {
	var l Ledger
	l.Record(100, 120, 4)
	l.Record(300, 320, 4)
	l.Record(500, 520, -3)
	for _, c := range []struct{ seq, want uint32 }{{50, 50}, {200, 204}, {400, 408}, {600, 605}} {
		if got := l.Seq(c.seq); got != c.want {
			t.Errorf("Seq(%d) = %d, want %d", c.seq, got, c.want)
		}
	}
}

// TestLedgerFullRefuses: a full ledger records no more points and never
// folds one away; Prune makes room once the receiver has acknowledged the
// oldest rewrites, and data after the pruned points still maps exactly.
func TestLedgerFullRefuses(t *testing.T) {
	var l Ledger
	for i := 0; i < Capacity; i++ {
		s := uint32(1000 * (i + 1))
		if !l.Record(s, s+10, 1) {
			t.Fatalf("point %d refused", i)
		}
	}
	if !l.Full() {
		t.Fatal("not full")
	}
	before := l
	if l.Record(1000*(Capacity+1), 1000*(Capacity+1)+10, 1) {
		t.Fatal("a point beyond Capacity was recorded")
	}
	if l != before {
		t.Fatal("a refused point changed the ledger")
	}
	// Every point is still exact: data before the oldest maps to itself.
	if got := l.Seq(500); got != 500 {
		t.Fatalf("Seq before all points = %d, want 500", got)
	}
	if got := l.Seq(1500); got != 1501 {
		t.Fatalf("Seq after the oldest point = %d, want 1501", got)
	}
	// An acknowledgment inside the second rewrite frees only the first.
	l.Prune(2005)
	if l.Len() != Capacity-1 || l.Full() {
		t.Fatalf("after Prune(2005): len %d", l.Len())
	}
	if got := l.Seq(1500); got != 1501 {
		t.Fatalf("Seq after the pruned point = %d, want 1501", got)
	}
	if got := l.Seq(2010); got != 2012 {
		t.Fatalf("Seq after the second point = %d, want 2012", got)
	}
	if got := l.Ack(1501); got != 1500 {
		t.Fatalf("Ack(1501) = %d, want 1500", got)
	}
	if !l.Record(1000*(Capacity+1), 1000*(Capacity+1)+10, 1) {
		t.Fatal("no room after Prune")
	}
	// An old acknowledgment prunes nothing.
	l.Prune(1500)
	if l.Len() != Capacity {
		t.Fatalf("old ack pruned: len %d", l.Len())
	}
	l.Prune(1000 * (Capacity + 2))
	if l.Len() != 0 || l.Offset() != Capacity+1 {
		t.Fatalf("all acknowledged: len %d offset %d", l.Len(), l.Offset())
	}
}

// TestLedgerMatchesNaive compares Ledger with the reference model over random
// rewrite histories shorter than Capacity.
func TestLedgerMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 2000; iter++ {
		checkAgainstNaive(t, r.Uint32(), r)
	}
}

func checkAgainstNaive(t *testing.T, isn uint32, r *rand.Rand) {
	t.Helper()
	var l Ledger
	var ref naive
	pos := isn
	for k := r.IntN(Capacity + 1); k > 0; k-- {
		pos += uint32(r.IntN(200))
		length := uint32(1 + r.IntN(40))
		delta := int32(r.IntN(21) - 10)
		if delta == 0 {
			delta = 1
		}
		if int32(length)+delta < 0 {
			delta = -int32(length)
		}
		l.Record(pos, pos+length, delta)
		ref.record(pos, pos+length, delta)
		pos += length
	}
	end := pos + 300 - isn
	for i := 0; i < 50; i++ {
		s := isn + uint32(r.IntN(int(end)))
		if got, want := l.Seq(s), ref.seq(isn, s); got != want {
			// A sequence number inside rewritten text is not a segment start we
			// ever map; only compare outside rewrites.
			if !insideRewrite(&ref, isn, s) {
				t.Fatalf("isn %d: Seq(%d) = %d, naive %d", isn, s, got, want)
			}
		}
		a := isn + uint32(r.IntN(int(end)))
		if got, want := l.Ack(a), ref.ack(isn, a); got != want {
			t.Fatalf("isn %d: Ack(%d) = %d, naive %d (points %v)", isn, a, got, want, l.points[:l.n])
		}
	}
}

func insideRewrite(n *naive, isn, s uint32) bool {
	for _, r := range n.rewrites {
		if s-isn > r.start-isn && s-isn < r.end-isn {
			return true
		}
	}
	return false
}

// FuzzLedger checks Seq and Ack against the naive model and that Ack(Seq(x))
// returns x for every x outside rewritten text; then it runs a long history
// of rewrites and acknowledgments (checkBounded).
func FuzzLedger(f *testing.F) {
	f.Add(uint32(0), uint64(1))
	f.Add(uint32(0xffffff00), uint64(42))
	f.Add(uint32(7), uint64(0x1234567))
	f.Fuzz(func(t *testing.T, isn uint32, seed uint64) {
		r := rand.New(rand.NewPCG(seed, seed>>7))
		checkAgainstNaive(t, isn, r)
		var l Ledger
		pos := isn
		for i := 0; i < Capacity; i++ {
			pos += uint32(r.IntN(100))
			l.Record(pos, pos+10, int32(r.IntN(11)-5))
			pos += 10
		}
		for i := 0; i < 20; i++ {
			x := isn + uint32(r.IntN(int(pos-isn+50)))
			inside := false
			for j := 0; j < l.Len(); j++ {
				p := l.Point(j)
				if x-isn > p.Start-isn && x-isn < p.Pos-isn {
					inside = true
				}
			}
			if !inside && l.Ack(l.Seq(x)) != x {
				t.Fatalf("Ack(Seq(%d)) = %d", x, l.Ack(l.Seq(x)))
			}
		}
		checkBounded(t, isn, r)
	})
}

// TestLedgerBoundedMatchesNaive runs checkBounded over random histories.
func TestLedgerBoundedMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 500; iter++ {
		checkBounded(t, r.Uint32(), r)
	}
}

// checkBounded runs many more rewrites than Capacity, interleaved with
// acknowledgments, against the naive model, which keeps every rewrite the
// ledger accepted. It checks that Record refuses exactly when Capacity
// unacknowledged points are held, that the ledger never holds more, and
// that every sequence number the sender may still send (at or after the
// highest acknowledgment) and every acknowledgment the receiver may still
// send (at or after the translated highest acknowledgment) maps as the
// naive model says.
func checkBounded(t *testing.T, isn uint32, r *rand.Rand) {
	t.Helper()
	var l Ledger
	var ref naive
	pos := isn   // end of the data sent so far
	acked := isn // highest acknowledgment, original space
	for step := 0; step < 60; step++ {
		switch r.IntN(3) {
		case 0, 1: // a rewrite
			pos += uint32(r.IntN(100))
			length := uint32(1 + r.IntN(40))
			delta := int32(r.IntN(21) - 10)
			if delta == 0 {
				delta = 1
			}
			if int32(length)+delta < 0 {
				delta = -int32(length)
			}
			full := l.Full()
			ok := l.Record(pos, pos+length, delta)
			if ok == full {
				t.Fatalf("Record with %d points held returned %v", l.Len(), ok)
			}
			if ok {
				ref.record(pos, pos+length, delta)
			}
			pos += length
		case 2: // the receiver acknowledges some of what was sent
			if pos == acked {
				continue
			}
			acked += uint32(r.IntN(int(pos-acked) + 1))
			l.Prune(acked)
		}
		if l.Len() > Capacity {
			t.Fatalf("%d points held", l.Len())
		}
		for i := 0; i < l.Len(); i++ {
			if p := l.Point(i); !before(acked, p.Pos) {
				t.Fatalf("point %+v kept after ack %d", p, acked)
			}
		}
		for i := 0; i < 10; i++ {
			s := acked + uint32(r.IntN(int(pos-acked)+50))
			if insideRewrite(&ref, isn, s) {
				continue
			}
			if got, want := l.Seq(s), ref.seq(isn, s); got != want {
				t.Fatalf("isn %d acked %d: Seq(%d) = %d, naive %d", isn, acked, s, got, want)
			}
			lo := ref.seq(isn, acked)
			hi := ref.seq(isn, pos+50)
			a := lo + uint32(r.IntN(int(hi-lo)+1))
			if got, want := l.Ack(a), ref.ack(isn, a); got != want {
				t.Fatalf("isn %d acked %d: Ack(%d) = %d, naive %d", isn, acked, a, got, want)
			}
		}
	}
}

func BenchmarkLedgerSeq(b *testing.B) {
	var l Ledger
	for i := uint32(0); i < 4; i++ {
		l.Record(i*100, i*100+10, 3)
	}
	b.ReportAllocs()
	var sink uint32
	for i := 0; i < b.N; i++ {
		sink += l.Seq(uint32(i)) + l.Ack(uint32(i))
	}
	_ = sink
}
