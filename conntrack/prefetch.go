package conntrack

import "unsafe"

// Prefetching: a packet of an established flow in a large table costs two
// dependent cache misses (the index slot, then the Flow), each usually with
// a TLB miss. A worker holding a batch knows the packets to come: it can ask
// for the slot of packet i+2k and the flow of packet i+k while it processes
// packet i, so that the misses of several packets overlap (see
// nat.Engine.ProcessBatch). These are hints: they change no state and read
// only what a lookup reads, under the same rules (index.go).

// Prefetch hashes tu, starts loading its home slot and returns the hash for
// PrefetchFlow.
func (t *Table) Prefetch(tu *Tuple) uint64 {
	h := hashTuple(tu, &t.seed)
	if !havePrefetch {
		return h
	}
	if sl := t.shard(h).idx.cur.Load(); sl != nil {
		i := home(h, len(sl.tags))
		prefetch2(uintptr(unsafe.Pointer(&sl.tags[i])), uintptr(unsafe.Pointer(&sl.flows[i])))
	}
	return h
}

// PrefetchFlow starts loading the flow in the home slot of hash h, which a
// Prefetch of the same hash should have brought in, if the slot's tag
// matches.
func (t *Table) PrefetchFlow(h uint64) {
	if !havePrefetch {
		return
	}
	sl := t.shard(h).idx.cur.Load()
	if sl == nil {
		return
	}
	// The tuple is at its home slot or a few after it (linear probing):
	// look at the first prefetchProbes, a line of tags or two.
	n := len(sl.tags)
	want := tagOf(h, 0)
	for i, probes := home(h, n), 0; probes < prefetchProbes; probes++ {
		tg := sl.tags[i].Load()
		if tg == tagEmpty {
			return
		}
		if tg&^1 == want {
			if f := sl.flows[i].Load(); f != nil {
				prefetchFlow(uintptr(unsafe.Pointer(f)))
			}
			return
		}
		if i++; i == n {
			i = 0
		}
	}
}

const prefetchProbes = 4
