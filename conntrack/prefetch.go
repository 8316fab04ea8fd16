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

// PrefetchMax is the most hints PrefetchSlots and PrefetchFlows take at
// once.
const PrefetchMax = 64

// Hint is what the prefetch passes learn of a packet's tuple: its Hash,
// set by the caller (Table.Hash), and, from PrefetchFlows, the flow of the
// first index slot whose tag matched and the direction the tag gave. The
// flow is a guess, its tuple not yet compared: LookupHint checks it.
type Hint struct {
	Hash uint64
	Flow *Flow
	Dir  Dir
}

// Hash returns the hash of tu that a Hint holds.
func (t *Table) Hash(tu *Tuple) uint64 { return hashTuple(tu, &t.seed) }

// PrefetchSlots starts loading the home index slot of each hint's hash.
// ok[i] false skips hs[i]. len(hs) must not exceed PrefetchMax.
func (t *Table) PrefetchSlots(hs []Hint, ok []bool) {
	if !havePrefetch {
		return
	}
	var a [PrefetchMax]uintptr
	n := 0
	for i := range hs {
		if !ok[i] {
			continue
		}
		h := hs[i].Hash
		if sl := t.shard(h).idx.cur.Load(); sl != nil {
			a[n] = uintptr(unsafe.Pointer(&sl.s[home(h, len(sl.s))]))
			n++
		}
	}
	prefetchLines(&a[0], n, 1)
}

// PrefetchFlows looks in the slots a PrefetchSlots of the same hints should
// have brought in, records in each hint the flow whose tag matches (among
// the prefetchProbes slots from its home), and starts loading those flows.
// ok[i] false skips hs[i]. len(hs) must not exceed PrefetchMax.
func (t *Table) PrefetchFlows(hs []Hint, ok []bool) {
	if !havePrefetch {
		return
	}
	var a [PrefetchMax]uintptr
	n := 0
	for i := range hs {
		hs[i].Flow = nil
		if !ok[i] {
			continue
		}
		f, d := t.shard(hs[i].Hash).idx.peek(hs[i].Hash)
		if f != nil {
			hs[i].Flow, hs[i].Dir = f, d
			a[n] = uintptr(unsafe.Pointer(f))
			n++
		}
	}
	prefetchLines(&a[0], n, flowLines)
}

// LookupHint is Lookup of *tu, whose hint h a PrefetchFlows has filled:
// the hinted flow is the answer if it holds tu in the hinted direction and
// is live; else the index is searched. h.Hash must be t.Hash(tu).
func (t *Table) LookupHint(tu *Tuple, h *Hint, now int64) (*Flow, Dir) {
	// A hinted flow removed or timed out since may have a newer flow of the
	// same tuple in the index: search it then too.
	if f := h.Flow; f != nil && sameTuple(&f.Tuples[h.Dir], tu) && !f.Expired(now) {
		return f, h.Dir
	}
	return t.LookupHash(tu, h.Hash, now)
}

// peek returns the flow in the first slot, among the first prefetchProbes
// from h's home, whose tag matches h in either direction, and the direction
// in the tag, or nil. It is a guess: the tuple is not compared.
func (x *index) peek(h uint64) (*Flow, Dir) {
	sl := x.cur.Load()
	if sl == nil {
		return nil, Original
	}
	n := len(sl.s)
	want := tagOf(h, 0)
	for i, probes := home(h, n), 0; probes < prefetchProbes; probes++ {
		tg := sl.s[i].tag.Load()
		if tg == tagEmpty {
			return nil, Original
		}
		if tg&^1 == want {
			return sl.s[i].flow.Load(), Dir(tg & 1)
		}
		if i++; i == n {
			i = 0
		}
	}
	return nil, Original
}

const (
	// prefetchProbes bounds how far peek follows a probe sequence. Only
	// the home slot's line was prefetched, so reading past it stalls the
	// peek; but those misses overlap with the other peeks of the pass,
	// whereas a tuple the peek gives up on costs its packet a whole
	// dependent lookup later. With linear probing at the index's usual
	// load of 0.6, 6% of tuples lie 4 or more slots from home and 0.3% 16
	// or more; at the highest load, 0.8, 2.6% lie beyond 16
	// (TestPeekReach). 1M flows: 177, 166 and 160 ns/packet with 4, 8 and
	// 16 probes (bench/README.md, "Prefetching a batch").
	prefetchProbes = 16
	// flowLines is how many cache lines a Flow can span (160 bytes).
	flowLines = 3
)
