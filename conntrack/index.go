package conntrack

import (
	"math/bits"
	"net/netip"
	"sync/atomic"
	"unsafe"
)

// index is one shard's open-addressing hash table from tuples to flows,
// with linear probing. Each slot is a 32-bit tag (0 empty, 1 deleted, else
// hash bits with the low bit the direction of the tuple in its flow) and a
// flow pointer, side by side: 16 bytes a slot where a Go map of Tuple keys
// spends 65, so a flow, indexed under both its tuples, costs about 53 bytes
// of index at the usual load. A probe compares tags and dereferences a flow
// only on a tag match; the tuple is then compared with the flow's own copy,
// so the index stores no keys.
//
// Tag and pointer share a slot, and so a cache line and a page, rather than
// living in two arrays: in a table far larger than the caches, each page a
// lookup touches is a TLB miss, and on the virtual machines measured the
// page walk, not the line, is most of a miss's cost (bench/README.md,
// "Index slots").
//
// Readers take no lock: slots are read and written atomically, writers
// (holding the shard's lock) store a slot's flow before its tag, and a
// resize publishes a new slot array, leaving the old one to readers still
// on it. A lookup therefore sees every flow inserted before it began and
// not yet removed; a flow inserted or removed meanwhile may or may not be
// seen, and callers recheck under the lock (Insert) or through the flow's
// removed mark (Expired).
type index struct {
	cur  atomic.Pointer[slots]
	used int // live + deleted slots; writers only
	live int
}

type slots struct {
	s []slot
}

// slot is one index entry. Four share a 64-byte line.
type slot struct {
	tag  atomic.Uint32
	flow atomic.Pointer[Flow]
}

const (
	tagEmpty   = 0
	tagDeleted = 1
	minSlots   = 16
	// The table grows past maxLoad used slots per 10 to twice its live
	// slots: the load stays between 0.4 and 0.8.
	maxLoad = 8
)

// hashTuple mixes a tuple with the table's seed (wyhash-style multiply and
// fold): its top bits pick the shard, bits 32-47 make the tag, the low 32
// bits the slot.
func hashTuple(tu *Tuple, seed *[6]uint64) uint64 {
	s0, s1 := addrWords(&tu.Src)
	d0, d1 := addrWords(&tu.Dst)
	p := uint64(tu.SrcPort)<<24 | uint64(tu.DstPort)<<8 | uint64(tu.Proto)
	h1 := mix(s1^seed[0], d1^seed[1])
	h2 := mix(s0^d0^seed[2], p^seed[3])
	return mix(h1^seed[4], h2^seed[5])
}

// addrWords returns the first 16 bytes of a's representation, the 128-bit
// address in today's netip.Addr. As16 would do, but the compiler builds its
// array on the stack and copies it in 16-byte moves that cannot be
// forwarded from the 8-byte stores: a stall of a dozen cycles per address,
// 10% of an established packet. Whatever the layout, equal Addrs (==, field
// by field, no padding) have equal bytes, so the hash stays consistent; only
// its spread depends on the layout.
func addrWords(a *netip.Addr) (uint64, uint64) {
	w := (*[2]uint64)(unsafe.Pointer(a))
	return w[0], w[1]
}

// A netip.Addr of at least 16 bytes without padding: checked at compile time.
var _ [unsafe.Sizeof(netip.Addr{}) - 16]byte

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// tagOf returns the slot tag of a tuple of hash h and direction dir.
func tagOf(h uint64, dir Dir) uint32 { return uint32(h>>32)&^1 | 2 | uint32(dir) }

// home returns the first slot to probe for hash h in n slots.
func home(h uint64, n int) int { return int(uint64(uint32(h)) * uint64(n) >> 32) }

// get returns the flow holding tuple tu (of hash h) and tu's direction.
// It takes no lock.
func (x *index) get(tu *Tuple, h uint64) (*Flow, Dir) {
	sl := x.cur.Load()
	if sl == nil {
		return nil, Original
	}
	n := len(sl.s)
	want := tagOf(h, 0)
	for i, probes := home(h, n), 0; probes < n; probes++ {
		tg := sl.s[i].tag.Load()
		if tg == tagEmpty {
			return nil, Original
		}
		if tg&^1 == want {
			d := Dir(tg & 1)
			if f := sl.s[i].flow.Load(); f != nil && sameTuple(&f.Tuples[d], tu) {
				return f, d
			}
		}
		if i++; i == n {
			i = 0
		}
	}
	return nil, Original
}

// sameTuple is a == b, field by field: the compiler compiles == on a Tuple
// to a call of the runtime's memequal, which costs more than the compare.
// The ports and protocol first: they tell apart most of the tuples that
// share a tag.
func sameTuple(a, b *Tuple) bool {
	return a.SrcPort == b.SrcPort && a.DstPort == b.DstPort && a.Proto == b.Proto &&
		a.Src == b.Src && a.Dst == b.Dst
}

// put adds f under its tuple of direction dir, hash h; the tuple must not
// be in the index. The caller holds the shard's lock.
func (x *index) put(f *Flow, dir Dir, h uint64, seed *[6]uint64) {
	sl := x.cur.Load()
	if sl == nil || (x.used+1)*10 > len(sl.s)*maxLoad {
		sl = x.resize(max(minSlots, 2*(x.live+1)), seed)
	}
	n := len(sl.s)
	for i := home(h, n); ; {
		if tg := sl.s[i].tag.Load(); tg == tagEmpty || tg == tagDeleted {
			if tg == tagEmpty {
				x.used++
			}
			sl.s[i].flow.Store(f)
			sl.s[i].tag.Store(tagOf(h, dir))
			x.live++
			return
		}
		if i++; i == n {
			i = 0
		}
	}
}

// del removes f's tuple of direction dir, hash h, if f holds it. The caller
// holds the shard's lock.
func (x *index) del(f *Flow, dir Dir, h uint64) {
	sl := x.cur.Load()
	if sl == nil {
		return
	}
	n := len(sl.s)
	want := tagOf(h, dir)
	for i, probes := home(h, n), 0; probes < n; probes++ {
		tg := sl.s[i].tag.Load()
		if tg == tagEmpty {
			return
		}
		if tg == want && sl.s[i].flow.Load() == f {
			sl.s[i].tag.Store(tagDeleted)
			sl.s[i].flow.Store(nil)
			x.live--
			// A deleted slot followed by an empty one is on no live
			// tuple's probe path: empty it, and the deleted ones before it.
			if sl.s[(i+1)%n].tag.Load() == tagEmpty {
				for sl.s[i].tag.Load() == tagDeleted {
					sl.s[i].tag.Store(tagEmpty)
					x.used--
					if i--; i < 0 {
						i = n - 1
					}
				}
			}
			if x.live == 0 && n > 4*minSlots {
				x.cur.Store(nil)
				x.used = 0
			}
			return
		}
		if i++; i == n {
			i = 0
		}
	}
}

// each calls fn with the flow of every slot holding an original tuple.
func (x *index) each(fn func(*Flow) bool) bool {
	sl := x.cur.Load()
	if sl == nil {
		return true
	}
	for i := range sl.s {
		if tg := sl.s[i].tag.Load(); tg >= 2 && tg&1 == 0 {
			if f := sl.s[i].flow.Load(); f != nil && !fn(f) {
				return false
			}
		}
	}
	return true
}

// resize rehashes the live slots into n new slots and publishes them.
func (x *index) resize(n int, seed *[6]uint64) *slots {
	nw := &slots{s: make([]slot, n)}
	x.used, x.live = 0, 0
	if old := x.cur.Load(); old != nil {
		for i := range old.s {
			tg := old.s[i].tag.Load()
			if tg < 2 {
				continue
			}
			f := old.s[i].flow.Load()
			// The tag holds 31 bits of the hash, not the slot bits: rehash.
			h := hashTuple(&f.Tuples[tg&1], seed)
			for j := home(h, n); ; {
				if nw.s[j].tag.Load() == tagEmpty {
					nw.s[j].flow.Store(f)
					nw.s[j].tag.Store(tg)
					break
				}
				if j++; j == n {
					j = 0
				}
			}
			x.used++
			x.live++
		}
	}
	x.cur.Store(nw)
	return nw
}
