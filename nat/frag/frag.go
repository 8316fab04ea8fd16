// Package frag reassembles IPv4 and IPv6 fragments for the NAT engine,
// with bounded memory and time. It does no I/O.
//
// RFC 4787 REQ-14 and RFC 6146 §3.4 require a NAT to receive fragments in
// order and out of order, to limit the resources that fragments may hold
// (so that fragmentation-based DoS attacks do not compromise the processing
// of unfragmented packets: those never reach this package) and to let the
// fragments of a datagram arrive over a configurable interval of at least
// FRAGMENT_MIN, 2 seconds. A Reassembler holds at most Config.MaxBytes of
// memory (data buffers, headers and a fixed overhead per datagram) and
// Config.MaxDatagrams datagrams in progress, at most Config.MaxPerSource
// datagrams and Config.MaxBytesPerSource bytes of them per source
// address, each for at most its family's timeout; every fragment it does
// not hold is counted by reason (Stats).
//
// Overlapping fragments discard the whole datagram, and every later
// fragment of it until its timeout (RFC 5722 §4 for IPv6; natalg applies
// the same rule to IPv4, as Linux does). An exact duplicate of a fragment
// already held is dropped alone. Atomic fragments (an IPv6 Fragment header
// with offset 0 and M clear) are not fragments (RFC 6946 §4): Add refuses
// them with NotFragment, and the caller processes them as whole packets.
package frag

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	// DefaultTimeout4 is the IPv4 reassembly timeout: RFC 791 §3.2
	// recommends 15 seconds as the initial reassembly timer.
	DefaultTimeout4 = 15 * time.Second
	// DefaultTimeout6 is the IPv6 reassembly timeout: RFC 8200 §4.5
	// abandons reassembly 60 seconds after the first-arriving fragment.
	DefaultTimeout6 = 60 * time.Second
	// MinTimeout is FRAGMENT_MIN of RFC 6146 §3.4 and §5: the default
	// interval MUST be at least 2 seconds.
	MinTimeout = 2 * time.Second

	DefaultMaxBytes          = 4 << 20 // like Linux's ipfrag_high_thresh
	DefaultMaxDatagrams      = 4096
	DefaultMaxPerSource      = 64
	DefaultMaxBytesPerSource = 1 << 20

	// overhead is what a datagram in progress is charged beyond its data.
	overhead = 256
)

// Config bounds a Reassembler. Zero fields take the defaults above.
type Config struct {
	Timeout4, Timeout6 time.Duration
	MaxBytes           int
	MaxDatagrams       int
	MaxPerSource       int
	MaxBytesPerSource  int
}

func (c *Config) fill() {
	if c.Timeout4 <= 0 {
		c.Timeout4 = DefaultTimeout4
	}
	if c.Timeout6 <= 0 {
		c.Timeout6 = DefaultTimeout6
	}
	c.Timeout4, c.Timeout6 = max(c.Timeout4, MinTimeout), max(c.Timeout6, MinTimeout)
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxDatagrams <= 0 {
		c.MaxDatagrams = DefaultMaxDatagrams
	}
	if c.MaxPerSource <= 0 {
		c.MaxPerSource = DefaultMaxPerSource
	}
	if c.MaxBytesPerSource <= 0 {
		c.MaxBytesPerSource = DefaultMaxBytesPerSource
	}
}

// Reason is the outcome of Add, and what Stats count.
type Reason uint8

// Outcomes. Complete and Held keep the fragment; every other Reason is a
// discard, counted.
const (
	Complete     Reason = iota // the datagram is whole (counts datagrams)
	Held                       // the fragment is stored; the datagram is not whole yet
	NotFragment                // not an IPv4 or IPv6 fragment (an atomic fragment included)
	Malformed                  // truncated or inconsistent header, empty fragment
	BadLength                  // a fragment with more to follow whose length is not a multiple of 8, or past 65535 bytes
	Inconsistent               // lengths that disagree with the datagram's last fragment: the datagram is discarded
	Overlap                    // overlaps a fragment held (RFC 5722 §4): the datagram is discarded
	Discarded                  // a fragment of a datagram discarded for overlap, before its timeout
	Duplicate                  // an exact copy of a fragment held
	SourceLimit                // the source's datagrams or bytes are at their cap
	TooBig                     // the reassembled datagram does not fit 65535 bytes or the output buffer
	Timeout                    // a datagram expired incomplete (counts datagrams)
	Evicted                    // a datagram dropped to make room under the global caps (counts datagrams)
	numReasons
)

var reasonNames = [numReasons]string{"complete", "held", "not_fragment", "malformed", "bad_length",
	"inconsistent", "overlap", "discarded_after_overlap", "duplicate", "source_limit", "too_big", "timeout", "evicted"}

// String returns r's snake_case name, for metrics labels.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons returns every Reason in order.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// Stats count outcomes by Reason.
type Stats struct{ Count [numReasons]atomic.Uint64 }

// Datagram is a reassembled datagram.
type Datagram struct {
	// Packet is the whole IP datagram, in the buffer given to Add: the
	// first fragment's header (IPv4: MF and offset cleared; IPv6: the
	// unfragmentable part, the Fragment header removed as RFC 8200 §4.5
	// reassembles) followed by the fragmentable part.
	Packet []byte
	// Sizes are the lengths of the fragmentable parts of the fragments
	// received, in offset order: the original fragment boundaries.
	Sizes []int
	// MaxFragment is the length of the largest fragment received.
	MaxFragment int
	// ID is the Identification of the fragments (16 bits in IPv4).
	ID uint32
}

type key struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8 // IPv4 Protocol; 0 for IPv6 (RFC 8200 §4.5 keys on addresses and ID)
}

type span struct{ off, end int }

type datagram struct {
	k          key
	v6         bool
	deadline   int64
	hdr        []byte // unfragmentable part of the offset-0 fragment; nil until it arrives
	nextHeader uint8  // IPv6: the Fragment header's Next Header
	nhOff      int    // IPv6: offset in hdr of the Next Header field that named the Fragment header
	data       []byte
	spans      []span // sorted by off, disjoint
	total      int    // fragmentable length once the last fragment arrived, else -1
	charged    int
	maxFrag    int
	discarded  bool // overlap seen (RFC 5722 §4)
	prev, next *datagram
}

type perSource struct{ datagrams, bytes int }

// Reassembler holds datagrams in progress. It is safe for concurrent use.
type Reassembler struct {
	cfg   Config
	Stats Stats

	mu         sync.Mutex
	m          map[key]*datagram
	src        map[netip.Addr]perSource
	head, tail [2]*datagram // per family (IPv4, IPv6), in order of first arrival and so of deadline
	bytes      int
	done       Datagram // the datagram add completed
}

// New returns a Reassembler bounded by cfg.
func New(cfg Config) *Reassembler {
	cfg.fill()
	return &Reassembler{cfg: cfg, m: map[key]*datagram{}, src: map[netip.Addr]perSource{}}
}

// Config returns the bounds in force (defaults filled in).
func (r *Reassembler) Config() Config { return r.cfg }

// Len returns the number of datagrams in progress.
func (r *Reassembler) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// Bytes returns the bytes charged to datagrams in progress.
func (r *Reassembler) Bytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// fragment is one parsed fragment.
type fragment struct {
	k          key
	v6         bool
	hdr        []byte // unfragmentable part (IPv4 header; IPv6 headers before the Fragment header)
	nhOff      int
	nextHeader uint8
	payload    []byte
	off        int
	more       bool
	size       int // whole fragment
}

// parse reads pkt as a fragment (RFC 791 §3.1, RFC 8200 §4.5).
func parse(pkt []byte, f *fragment) Reason {
	if len(pkt) < 1 {
		return Malformed
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return Malformed
		}
		ihl := int(pkt[0]&0xf) * 4
		tl := int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < 20 || tl < ihl || tl > len(pkt) {
			return Malformed
		}
		ff := binary.BigEndian.Uint16(pkt[6:])
		if ff&0x3fff == 0 {
			return NotFragment
		}
		f.k = key{src: netip.AddrFrom4([4]byte(pkt[12:16])), dst: netip.AddrFrom4([4]byte(pkt[16:20])),
			id: uint32(binary.BigEndian.Uint16(pkt[4:])), proto: pkt[9]}
		f.hdr, f.payload = pkt[:ihl], pkt[ihl:tl]
		f.off, f.more, f.size = int(ff&0x1fff)*8, ff&0x2000 != 0, tl
		return parsed4
	case 6:
		if len(pkt) < 40 {
			return Malformed
		}
		tl := 40 + int(binary.BigEndian.Uint16(pkt[4:]))
		if tl > len(pkt) {
			return Malformed
		}
		pkt = pkt[:tl]
		nh, nhOff, off := pkt[6], 6, 40
		for n := 0; ; n++ {
			switch nh {
			case 0, 43, 60: // Hop-by-Hop, Routing, Destination Options (RFC 8200 §4.1)
				if n >= 8 || nh == 0 && off != 40 || off+8 > tl {
					return Malformed
				}
				l := (int(pkt[off+1]) + 1) * 8
				if off+l > tl {
					return Malformed
				}
				nh, nhOff, off = pkt[off], off, off+l
				continue
			case 44:
			default:
				return NotFragment
			}
			break
		}
		if off+8 > tl {
			return Malformed
		}
		fh := pkt[off : off+8]
		offM := binary.BigEndian.Uint16(fh[2:])
		if offM&0xfff9 == 0 {
			return NotFragment // atomic fragment (RFC 6946 §4)
		}
		f.v6 = true
		f.k = key{src: netip.AddrFrom16([16]byte(pkt[8:24])), dst: netip.AddrFrom16([16]byte(pkt[24:40])), id: binary.BigEndian.Uint32(fh[4:])}
		f.hdr, f.nhOff, f.nextHeader, f.payload = pkt[:off], nhOff, fh[0], pkt[off+8:]
		f.off, f.more, f.size = int(offM&0xfff8), offM&1 != 0, tl
		return parsed6
	}
	return Malformed
}

// Results of parse that are not outcomes (never counted).
const (
	parsed4 Reason = 100 + iota
	parsed6
)

// Headroom is the room past a reassembled datagram that Add leaves in a
// buffer it allocates: a translation may grow the datagram (NAT64 by 20
// bytes, a gateway rewrite by more).
const Headroom = 1024

// Add takes one fragment, pkt, starting at its IP header, that arrived at
// now (nanoseconds). When it completes its datagram, the datagram is
// written into out[:cap(out)] (a new buffer with Headroom to spare when
// out has no capacity) and returned with Complete; out may not alias
// pkt. Otherwise the fragment is copied and held (Held), or
// discarded (any other Reason). Add expires the datagrams whose timeout
// passed first.
func (r *Reassembler) Add(pkt []byte, now int64, out []byte) (Datagram, Reason) {
	var f fragment
	res := parse(pkt, &f)
	if res != parsed4 && res != parsed6 {
		r.Stats.Count[res].Add(1)
		return Datagram{}, res
	}
	res = r.add(&f, now, out)
	var dg Datagram
	if res == Complete {
		dg = r.done
		r.done = Datagram{}
	}
	r.mu.Unlock()
	r.Stats.Count[res].Add(1)
	return dg, res
}

// add is Add under r.mu, which it takes and leaves held; a completed
// datagram is left in r.done.
func (r *Reassembler) add(f *fragment, now int64, out []byte) Reason {
	n := len(f.payload)
	end := f.off + n
	limit := 0xffff - 20 // RFC 791: Total Length, with at least a 20-byte header
	if f.v6 {
		limit = 0xffff - (len(f.hdr) - 40) // RFC 8200 §4.5: Payload Length of the reassembled packet
	}
	r.mu.Lock()
	r.expire(now)
	if n == 0 {
		return Malformed
	}
	if f.more && n%8 != 0 || end > limit {
		return BadLength // RFC 8200 §4.5; RFC 791 §3.2 (fragments in units of 8 octets)
	}
	d := r.m[f.k]
	if d == nil {
		s := r.src[f.k.src]
		if s.datagrams >= r.cfg.MaxPerSource || s.bytes+overhead > r.cfg.MaxBytesPerSource {
			return SourceLimit
		}
		for len(r.m) >= r.cfg.MaxDatagrams {
			r.evict(r.oldest(nil), Evicted)
		}
		d = &datagram{k: f.k, v6: f.v6, deadline: now + r.timeout(f.v6), total: -1}
		r.m[f.k] = d
		r.link(d)
		s.datagrams++
		r.src[f.k.src] = s
		r.charge(d, overhead)
	}
	if d.discarded {
		return Discarded
	}
	switch {
	case !f.more && d.total >= 0 && end != d.total,
		!f.more && len(d.spans) > 0 && d.spans[len(d.spans)-1].end > end,
		f.more && d.total >= 0 && end > d.total:
		r.evict(d, Inconsistent)
		return Inconsistent
	}
	i, _ := slices.BinarySearchFunc(d.spans, f.off, func(s span, off int) int { return s.off - off })
	if i < len(d.spans) && d.spans[i].off == f.off && d.spans[i].end == end {
		return Duplicate
	}
	if i > 0 && d.spans[i-1].end > f.off || i < len(d.spans) && d.spans[i].off < end {
		// RFC 5722 §4: the datagram and its fragments not yet received
		// are silently discarded. The entry stays, without its data,
		// until its timeout, to discard those.
		d.discarded = true
		r.charge(d, -(d.charged - overhead))
		d.data, d.spans, d.hdr = nil, nil, nil
		return Overlap
	}
	// What is charged is the memory held: the data buffer's capacity
	// (a fragment far into the datagram costs the buffer up to it, not
	// its own length), the header and overhead.
	newCap := cap(d.data)
	if end > newCap {
		newCap = min(max(end, 2*newCap), limit)
	}
	grow := newCap - cap(d.data)
	if f.off == 0 {
		grow += len(f.hdr)
	}
	if s := r.src[f.k.src]; s.bytes+grow > r.cfg.MaxBytesPerSource {
		return SourceLimit
	}
	for r.bytes+grow > r.cfg.MaxBytes {
		o := r.oldest(d)
		if o == nil {
			r.remove(d) // alone over the cap: counted once, by Add
			return Evicted
		}
		r.evict(o, Evicted)
	}
	if newCap > cap(d.data) {
		grown := make([]byte, len(d.data), newCap)
		copy(grown, d.data)
		d.data = grown
	}
	if end > len(d.data) {
		d.data = d.data[:end]
	}
	copy(d.data[f.off:], f.payload)
	d.spans = slices.Insert(d.spans, i, span{f.off, end})
	r.charge(d, grow)
	d.maxFrag = max(d.maxFrag, f.size)
	if !f.more {
		d.total = end
	}
	if f.off == 0 {
		d.hdr = append([]byte(nil), f.hdr...)
		d.nhOff, d.nextHeader = f.nhOff, f.nextHeader
	}
	if d.total < 0 || d.hdr == nil || d.spans[0].off != 0 {
		return Held
	}
	for j := 1; j < len(d.spans); j++ {
		if d.spans[j].off != d.spans[j-1].end {
			return Held
		}
	}
	// Whole: the spans run from 0 to total without a gap.
	size := len(d.hdr) + d.total
	if cap(out) == 0 {
		out = make([]byte, 0, size+Headroom)
	}
	if size > cap(out) || !f.v6 && size > 0xffff || f.v6 && size-40 > 0xffff {
		r.evict(d, TooBig)
		return TooBig
	}
	pkt := out[:size]
	copy(pkt, d.hdr)
	copy(pkt[len(d.hdr):], d.data[:d.total])
	if f.v6 {
		// RFC 8200 §4.5: the Next Header of the last unfragmentable header
		// comes from the Fragment header; the Payload Length is the
		// unfragmentable headers after the fixed one plus the data.
		pkt[d.nhOff] = d.nextHeader
		binary.BigEndian.PutUint16(pkt[4:], uint16(size-40))
	} else {
		binary.BigEndian.PutUint16(pkt[2:], uint16(size))
		binary.BigEndian.PutUint16(pkt[6:], binary.BigEndian.Uint16(pkt[6:])&0x4000) // keep DF; MF and offset 0
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:], ipv4Checksum(pkt[:len(d.hdr)]))
	}
	sizes := make([]int, len(d.spans))
	for j, s := range d.spans {
		sizes[j] = s.end - s.off
	}
	r.done = Datagram{Packet: pkt, Sizes: sizes, MaxFragment: d.maxFrag, ID: d.k.id}
	r.remove(d)
	return Complete
}

// ipv4Checksum computes the checksum of an IPv4 header whose checksum
// field is zero (RFC 791 §3.1).
func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Expire drops the datagrams whose timeout passed at now and returns how
// many it dropped.
func (r *Reassembler) Expire(now int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.expire(now)
}

// expire drops expired datagrams: each family's list is in deadline
// order, so only its head is looked at until one is not due.
func (r *Reassembler) expire(now int64) int {
	n := 0
	for fam := range r.head {
		for d := r.head[fam]; d != nil && d.deadline <= now; d = r.head[fam] {
			r.evict(d, Timeout)
			n++
		}
	}
	return n
}

// oldest returns the datagram that arrived first of the two families'
// oldest, other than except; nil if there is none.
func (r *Reassembler) oldest(except *datagram) *datagram {
	var best *datagram
	for fam := range r.head {
		d := r.head[fam]
		if d != nil && d == except {
			d = d.next
		}
		if d != nil && (best == nil || d.deadline-r.timeout(d.v6) < best.deadline-r.timeout(best.v6)) {
			best = d
		}
	}
	return best
}

func (r *Reassembler) timeout(v6 bool) int64 {
	if v6 {
		return int64(r.cfg.Timeout6)
	}
	return int64(r.cfg.Timeout4)
}

func (r *Reassembler) charge(d *datagram, n int) {
	d.charged += n
	r.bytes += n
	s := r.src[d.k.src]
	s.bytes += n
	r.src[d.k.src] = s
}

// evict removes d and counts why (Timeout, Evicted or a discard whose
// fragment Add counts itself).
func (r *Reassembler) evict(d *datagram, why Reason) {
	if why == Timeout || why == Evicted {
		r.Stats.Count[why].Add(1)
	}
	r.remove(d)
}

func (r *Reassembler) remove(d *datagram) {
	r.charge(d, -d.charged)
	s := r.src[d.k.src]
	s.datagrams--
	if s.datagrams <= 0 {
		delete(r.src, d.k.src)
	} else {
		r.src[d.k.src] = s
	}
	delete(r.m, d.k)
	fam := family(d.v6)
	if d.prev != nil {
		d.prev.next = d.next
	} else {
		r.head[fam] = d.next
	}
	if d.next != nil {
		d.next.prev = d.prev
	} else {
		r.tail[fam] = d.prev
	}
	d.prev, d.next = nil, nil
}

func (r *Reassembler) link(d *datagram) {
	fam := family(d.v6)
	d.prev = r.tail[fam]
	if r.tail[fam] != nil {
		r.tail[fam].next = d
	} else {
		r.head[fam] = d
	}
	r.tail[fam] = d
}

func family(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}
