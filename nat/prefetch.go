package nat

import (
	"encoding/binary"
	"net/netip"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/header"
)

// Software prefetch over a batch. In a table too large for the caches, an
// established packet waits for two dependent misses: its index slot, then
// its Flow. ProcessBatch asks for the slot of the packet prefetchSlot ahead
// and for the flow of the packet prefetchFlow ahead while it processes the
// current one, so the misses of several packets overlap with work. The
// hints change nothing: each packet is then processed exactly as without
// them, and a packet the peek cannot read (IPv6 with extension headers,
// ICMP, fragments) is simply not prefetched.
const (
	prefetchSlot = 8
	prefetchFlow = 4
	prefetchRing = 16 // > prefetchSlot, a power of two
)

// prefetchMin is the table size from which ProcessBatch prefetches: below
// it the table stays in the caches and the hints only cost. Tests lower it.
var prefetchMin = 1 << 15

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
		tu.Proto = b[9]
		tu.Src = netip.AddrFrom4([4]byte(b[12:16]))
		tu.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		l4 = int(b[0]&0xf) * 4
	case 6:
		if len(b) < 40 {
			return false
		}
		tu.Proto = b[6]
		tu.Src = netip.AddrFrom16([16]byte(b[8:24]))
		tu.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		l4 = 40
	default:
		return false
	}
	if tu.Proto != header.ProtoTCP && tu.Proto != header.ProtoUDP || len(b) < l4+4 {
		return false
	}
	tu.SrcPort = binary.BigEndian.Uint16(b[l4:])
	tu.DstPort = binary.BigEndian.Uint16(b[l4+2:])
	return true
}

// prefetchBatch is ProcessBatch with prefetch hints.
func (e *Engine) prefetchBatch(ps []Packet, c *counts) {
	var hs [prefetchRing]uint64
	var ok [prefetchRing]bool
	var tu conntrack.Tuple
	slot := func(j int) {
		if j < len(ps) {
			p := &ps[j]
			k := j & (prefetchRing - 1)
			if ok[k] = peekTuple(p.Buf[:p.N], &tu); ok[k] {
				hs[k] = e.table.Prefetch(&tu)
			}
		}
	}
	for j := range min(prefetchSlot, len(ps)) {
		slot(j)
	}
	for j := prefetchSlot - prefetchFlow; j < min(prefetchSlot, len(ps)); j++ {
		if k := j & (prefetchRing - 1); ok[k] {
			e.table.PrefetchFlow(hs[k])
		}
	}
	for i := range ps {
		slot(i + prefetchSlot)
		if j := i + prefetchFlow; j < len(ps) {
			if k := j & (prefetchRing - 1); ok[k] {
				e.table.PrefetchFlow(hs[k])
			}
		}
		p := &ps[i]
		p.Verdict, p.Out, p.Reason = e.process(p.Buf[:p.N], p.Time.UnixNano(), c)
	}
}
