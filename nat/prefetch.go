package nat

import (
	"encoding/binary"
	"net/netip"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// Software prefetch over a batch. In a table too large for the caches, an
// established packet waits for two dependent misses: its index slot, then
// its Flow. ProcessBatch hashes the packets of a group ahead, asks for their
// slots, then, a group later, for their flows, so that the misses of many
// packets overlap with work (prefetchBatch). The hints change nothing: each
// packet is then processed exactly as without them, and a packet the peek
// cannot read (IPv6 with extension headers, ICMP, fragments) is simply not
// prefetched. The hash of a peeked tuple is handed to the lookup.

// prefetchMin is the table size (flows) from which ProcessBatch
// prefetches: below it the table stays in the caches and the hints only
// cost (bench/README.md, "Prefetching a batch", has the measurements
// behind the value). Tests lower it.
var prefetchMin = 2048

// peekTuple reads the flow tuple of a plain TCP or UDP packet, without the
// checks of a full decode, for a prefetch hint.
func peekTuple(b []byte, tu *conntrack.Tuple) bool {
	if len(b) < 1 {
		return false
	}
	var l4 int
	switch b[0] >> 4 {
	case 4:
		if len(b) < header.IPv4MinimumSize {
			return false
		}
		if binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 { // MF or an offset
			return false
		}
		tu.Proto = ipproto.Proto(b[9])
		tu.Src = netip.AddrFrom4([4]byte(b[12:16]))
		tu.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		l4 = int(b[0]&0xf) * 4
	case 6:
		if len(b) < 40 {
			return false
		}
		tu.Proto = ipproto.Proto(b[6])
		tu.Src = netip.AddrFrom16([16]byte(b[8:24]))
		tu.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		l4 = 40
	default:
		return false
	}
	if tu.Proto != ipproto.TCP && tu.Proto != ipproto.UDP || len(b) < l4+4 {
		return false
	}
	tu.SrcPort = binary.BigEndian.Uint16(b[l4:])
	tu.DstPort = binary.BigEndian.Uint16(b[l4+2:])
	return true
}

// prefetchGroup is how many packets' hints are issued together (see
// prefetchBatch): the whole of a default batch of 64. A prefetch that
// misses the TLB holds up the instructions behind it until its page walk
// is done, so each pass costs about one walk plus the walks it queues; the
// more walks a pass has, the less the first one weighs. Larger batches are
// pipelined in groups of this size. (bench/README.md, "Prefetching a
// batch", item 7, compares group sizes.)
const prefetchGroup = 64

// prefetchHints holds the hashes of three groups of packets in flight.
type prefetchHints struct {
	hs [3][prefetchGroup]conntrack.Hint
	ok [3][prefetchGroup]bool
	tu conntrack.Tuple
}

// group returns group g of ps, empty past its end.
func group(ps []Packet, g int) []Packet {
	lo := min(g*prefetchGroup, len(ps))
	return ps[lo:min(lo+prefetchGroup, len(ps))]
}

// slots hashes the tuples of group g of ps and asks for their index slots.
func (h *prefetchHints) slots(e *Engine, ps []Packet, g int) {
	b := group(ps, g)
	hs, ok := h.hs[g%3][:len(b)], h.ok[g%3][:len(b)]
	for j := range b {
		p := &b[j]
		if ok[j] = peekTuple(p.Buf[:p.N], &h.tu); ok[j] {
			hs[j].Hash = e.table.Hash(&h.tu)
		}
	}
	e.table.PrefetchSlots(hs, ok)
}

// flows asks for the flows of group g of ps, whose slots were asked for.
func (h *prefetchHints) flows(e *Engine, ps []Packet, g int) {
	n := len(group(ps, g))
	e.table.PrefetchFlows(h.hs[g%3][:n], h.ok[g%3][:n])
}

// prefetchBatch is ProcessBatch with prefetch hints, software-pipelined
// over groups of prefetchGroup packets: while it processes group g, it
// asks for the flows of group g+1 and for the index slots of group g+2.
// Each group's requests go out back to back (see conntrack.PrefetchSlots).
func (e *Engine) prefetchBatch(ps []Packet, split bool, c *counts) {
	var h prefetchHints
	h.slots(e, ps, 0)
	h.slots(e, ps, 1)
	h.flows(e, ps, 0)
	for g := 0; g*prefetchGroup < len(ps); g++ {
		h.slots(e, ps, g+2)
		h.flows(e, ps, g+1)
		hs, ok := &h.hs[g%3], &h.ok[g%3]
		for j, b := 0, group(ps, g); j < len(b); j++ {
			var hint *conntrack.Hint
			if ok[j] {
				hint = &hs[j]
			}
			p := &b[j]
			p.Verdict, p.Out, p.Reason = e.process(p.Buf[:p.N], p.Time.UnixNano(), hint, c, p.more(split), e.factsOf(p))
		}
	}
}
