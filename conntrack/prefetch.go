package conntrack

import "unsafe"

// Prefetching: a packet of an established flow in a large table costs two
// dependent misses, the index slot and then the Flow, each usually with a
// TLB miss as well. A worker holding a batch knows the packets to come: it
// hashes every packet's tuple, asks for all their slots, then for all their
// flows, and only then processes the packets (see nat.Engine.ProcessBatch).
// These are hints: they change no state and read only what a lookup reads,
// under the same rules (index.go).
//
// The requests for a batch are issued back to back, from a loop of a few
// instructions per address (prefetchLines). On the machines measured a
// prefetch that misses the TLB holds up retirement until its page walk is
// done, so a prefetch issued between two packets' worth of other work
// overlaps with little; in a tight loop the processor has the next
// prefetches in its window and their walks overlap (bench/README.md,
// "Prefetching a batch").

// PrefetchMax is the most hashes PrefetchSlots and PrefetchFlows take at
// once.
const PrefetchMax = 64

// Hash returns the hash of tu that PrefetchSlots and PrefetchFlows take.
func (t *Table) Hash(tu *Tuple) uint64 { return hashTuple(tu, &t.seed) }

// PrefetchSlots starts loading the home index slot of each hash in hs.
// ok[i] false skips hs[i]. len(hs) must not exceed PrefetchMax.
func (t *Table) PrefetchSlots(hs []uint64, ok []bool) {
	if !havePrefetch {
		return
	}
	var a [PrefetchMax]uintptr
	n := 0
	for i, h := range hs {
		if !ok[i] {
			continue
		}
		if sl := t.shard(h).idx.cur.Load(); sl != nil {
			a[n] = uintptr(unsafe.Pointer(&sl.s[home(h, len(sl.s))]))
			n++
		}
	}
	prefetchLines(&a[0], n, 1)
}

// PrefetchFlows starts loading the flow of each hash in hs, found in the
// slots a PrefetchSlots of the same hashes should have brought in: the
// first few slots from the home slot are looked at. ok[i] false skips
// hs[i]. len(hs) must not exceed PrefetchMax.
func (t *Table) PrefetchFlows(hs []uint64, ok []bool) {
	if !havePrefetch {
		return
	}
	var a [PrefetchMax]uintptr
	n := 0
	for i, h := range hs {
		if !ok[i] {
			continue
		}
		if f := t.shard(h).idx.peek(h); f != nil {
			a[n] = uintptr(unsafe.Pointer(f))
			n++
		}
	}
	prefetchLines(&a[0], n, flowLines)
}

// peek returns the flow in the first slot, among the first prefetchProbes
// from h's home, whose tag matches h in either direction, or nil. It is a
// guess for a prefetch: the tuple is not compared.
func (x *index) peek(h uint64) *Flow {
	sl := x.cur.Load()
	if sl == nil {
		return nil
	}
	n := len(sl.s)
	want := tagOf(h, 0)
	for i, probes := home(h, n), 0; probes < prefetchProbes; probes++ {
		tg := sl.s[i].tag.Load()
		if tg == tagEmpty {
			return nil
		}
		if tg&^1 == want {
			return sl.s[i].flow.Load()
		}
		if i++; i == n {
			i = 0
		}
	}
	return nil
}

const (
	prefetchProbes = 4
	// flowLines is how many cache lines a Flow can span (160 bytes).
	flowLines = 3
)
