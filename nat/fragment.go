package nat

import (
	"encoding/binary"

	"github.com/natalg/natalg/nat/frag"
	"github.com/natalg/natalg/nat/header"
)

// reassemble takes a fragment of a packet the engine translates (NAT44, or
// NAT64 in either direction): RFC 4787 REQ-14 and RFC 6146 §3.4 require
// fragments to be received in order and out of order. The fragment is held
// (Verdict Held) until its datagram is whole; the fragment that completes
// it gets the datagram translated as any whole packet, then cut into
// fragments again (refragment). Fragments of passing traffic never get
// here: they are forwarded unchanged before.
func (e *Engine) reassemble(p *header.Parsed, now int64, c *counts, more *[][]byte) (Verdict, []byte, DropReason) {
	if e.frags == nil {
		v, dr := e.Stats.drop(DropFragment)
		return v, nil, dr
	}
	inVersion := p.Version
	dg, res := e.frags.Add(p.Buf, now, nil)
	switch res {
	case frag.Held:
		return Held, nil, DropNone
	case frag.Complete:
	default:
		v, dr := e.Stats.drop(DropFragment)
		return v, nil, dr
	}
	var q header.Parsed
	if q.Decode(dg.Packet) == header.Ok && q.Fragment {
		// A Fragment header inside the reassembled datagram: a fragment
		// of a fragment. Not reassembled again (RFC 8200 §4.5 allows one
		// Fragment header per packet).
		v, dr := e.Stats.drop(DropFragment)
		return v, nil, dr
	}
	e.Stats.Reassembled.Add(1)
	c.in-- // process counts the datagram in again
	v, out, dr := e.process(dg.Packet, now, nil, c, nil, nil)
	if v != Accept || more == nil {
		// A front end that sends one packet per packet read gets the
		// datagram whole (see SingleOutput).
		return v, out, dr
	}
	return e.refragment(out, inVersion, &dg, more)
}

// refragment cuts the translated datagram out, reassembled from fragments
// of IP version inVersion, into fragments: Out gets the first, *more the
// others.
//
//   - IPv4 out of IPv4 (NAT44): on the original boundaries, with the
//     original Identification and DF, as the kernel's defrag does
//     (ip_do_fragment with frag_max_size); if a gateway rewrite changed
//     the length, in pieces of the largest fragment received.
//   - IPv4 out of IPv6 (NAT64, RFC 7915 §5.1.1): each IPv6 fragment becomes
//     an IPv4 fragment of the same data: Identification the low-order 16
//     bits of the IPv6 one, DF clear, MF and offset as in IPv6.
//   - IPv6 out of IPv6 (NAT44 for IPv6): on the original boundaries, with
//     the original Identification.
//   - IPv6 out of IPv4 (NAT64, RFC 7915 §4.1): each IPv4 fragment becomes
//     an IPv6 fragment (Identification the IPv4 one, high-order bits zero;
//     offset and M copied), itself cut so that no IPv6 fragment is larger
//     than lowest-ipv6-mtu (Config.NAT64MTU6).
func (e *Engine) refragment(out []byte, inVersion uint8, dg *frag.Datagram, more *[][]byte) (Verdict, []byte, DropReason) {
	var frags [][]byte
	if out[0]>>4 == 4 {
		ihl := int(out[0]&0xf) * 4
		maxChunk := dg.MaxFragment - ihl
		df := inVersion == 4 && binary.BigEndian.Uint16(out[6:])&0x4000 != 0
		frags = frag.Split4(out, frag.Plan(len(out)-ihl, dg.Sizes, maxChunk), uint16(dg.ID), df)
	} else {
		un, _, ok := frag.Unfragmentable(out)
		if ok {
			maxChunk := dg.MaxFragment - un - 8
			id := dg.ID
			if inVersion == 4 {
				maxChunk = e.cfg.NAT64MTU6 - un - 8
				id = uint32(uint16(id))
			}
			frags = frag.Split6(out, frag.Plan(len(out)-un, dg.Sizes, maxChunk), id)
		}
	}
	if len(frags) == 0 {
		v, dr := e.Stats.drop(DropMalformed)
		return v, nil, dr
	}
	e.Stats.FragmentsOut.Add(uint64(len(frags)))
	*more = append(*more, frags[1:]...)
	return Accept, frags[0], DropNone
}

// split64 cuts a whole IPv4 packet with DF clear that NAT64 translated
// into out, an IPv6 packet larger than lowest-ipv6-mtu, into IPv6
// fragments of at most that size (RFC 7915 §4.1: "the packet SHOULD be
// fragmented so that the resulting IPv6 packet (with Fragment Header
// added to each fragment) will be less than or equal to lowest-ipv6-mtu";
// Identification: the low-order 16 bits copied from the IPv4 one).
func (e *Engine) split64(out []byte, id uint16, more *[][]byte) []byte {
	frags := frag.Split6(out, frag.Plan(len(out)-header.IPv6FixedHeaderSize, nil, e.cfg.NAT64MTU6-header.IPv6FixedHeaderSize-8), uint32(id))
	if len(frags) == 0 {
		return out
	}
	e.Stats.FragmentsOut.Add(uint64(len(frags)))
	*more = append(*more, frags[1:]...)
	return frags[0]
}
