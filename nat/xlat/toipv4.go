package xlat

import (
	"encoding/binary"
	"net/netip"

	"github.com/natalg/natalg/nat/checksum"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// ToIPv4 translates the IPv6 packet pkt into IPv4 (RFC 7915 §5), in place,
// and returns the IPv4 packet: a subslice of pkt's array that starts later
// than pkt[0] (the IPv4 header is written just before the transport header,
// over the IPv6 header) and ends at the end of the translated packet.
//
// The IPv4 header (RFC 7915 §5.1): version 4, IHL 5, TOS = Traffic Class,
// Total Length = 20 + the transport segment, Identification and DF as
// putIPv4 says (DF set above 1260 bytes), TTL = Hop Limit (not decremented:
// see the package comment), Protocol = the transport protocol (ICMPv6 58
// becomes ICMP 1), source src and destination dst, header checksum
// computed. Hop-by-Hop Options, Destination Options and Routing headers with
// Segments Left 0 are dropped (checkExt6).
//
// Transport (RFC 7915 §5.5): the TCP or UDP checksum is updated
// incrementally for the pseudo-header change; the ports are not changed:
// rewrite them afterwards on a header.Parsed of the result (SetSrcPort,
// SetDstPort keep the checksum right). A UDP checksum of 0, invalid in
// IPv6, is kept 0 ("none" in IPv4). ICMPv6 echo request and reply become
// ICMPv4 echo and echo reply with the checksum updated incrementally
// (identifier kept: the caller rewrites it as a port). ICMPv6 errors are
// translated by toIPv4Error, using inner.
//
// pkt must start at the IPv6 header; bytes past 40 + Payload Length
// (link-layer padding) are ignored. inner is only used (and then required)
// for ICMPv6 error messages. ToIPv4 does not allocate.
//
// On any Reason but Ok, the returned slice is nil and pkt may have been
// partly rewritten.
func ToIPv4(pkt []byte, src, dst netip.Addr, inner *Inner) ([]byte, Reason) {
	return shared.ToIPv4(pkt, src, dst, inner)
}

// ToIPv4 is the package-level ToIPv4 with Identification values from g.
func (g *IDs) ToIPv4(pkt []byte, src, dst netip.Addr, inner *Inner) ([]byte, Reason) {
	src, dst = src.Unmap(), dst.Unmap()
	if !src.Is4() || !dst.Is4() {
		return nil, BadAddress
	}
	var p header.Parsed
	if p.Decode(pkt) != header.Ok || p.Version != 6 {
		return nil, Malformed
	}
	if p.Fragment {
		return nil, Fragment
	}
	if r := checkExt6(p.Buf, p.IPHeaderLen); r != Ok {
		return nil, r
	}
	if p.L4Off == 0 {
		return nil, Unsupported
	}
	if p.ICMPError {
		return toIPv4Error(&p, src.As4(), dst.As4(), inner, g)
	}
	b := p.Buf
	l4 := b[p.L4Off:]
	n := len(l4)
	if header.IPv4MinimumSize+n > 0xffff {
		return nil, TooBig
	}
	tc, hop := header.IPv6(b).TrafficClass(), header.IPv6(b).HopLimit()
	s4, d4 := src.As4(), dst.As4()
	proto := p.Proto
	oldPH := checksum.PseudoHeader(b[8:24], b[24:40], proto, uint32(n))
	if proto == ipproto.ICMPv6 {
		m, r := icmp6to4Info(icmpMsg{typ: p.ICMPType, code: p.ICMPCode})
		if r != Ok {
			return nil, r
		}
		proto = ipproto.ICMPv4
		retypeICMP(l4, m.typ, oldPH, 0)
	} else {
		adjustL4(l4, proto, oldPH, checksum.PseudoHeader(s4[:], d4[:], proto, uint32(n)))
	}
	out := b[p.L4Off-header.IPv4MinimumSize:]
	putIPv4(out, tc, uint16(len(out)), hop, proto, s4, d4, g)
	return out, Ok
}

// toIPv4Error translates the ICMPv6 error message decoded in p (RFC 7915
// §5.2) and the IPv6 packet it quotes (§5.3) into an ICMPv4 error from src
// to dst, in place, and returns it.
//
// The type, code and MTU or pointer are mapped by icmp6to4Error. The quoted
// packet must decode with header.Parsed.DecodeInner as TCP, UDP or an ICMPv6
// echo request or reply, not a fragment; its IPv6 header is replaced by an
// IPv4 header built like ToIPv4's (with Identification 0, Total Length from
// the quoted Payload Length, TTL = the quoted Hop Limit) carrying inner.Src
// and inner.Dst; its transport header gets the ports of inner, and its
// checksum, as far as it is present, is updated incrementally (it is not
// verified). The quote is cut so that the ICMPv4 error is at most 576 bytes
// (maxICMPv4Error), and at the RFC 4884 length attribute if there is one.
// The ICMPv4 checksum is computed over the whole message.
//
// Layout: the transport header of the quote does not move; the inner IPv4
// header, the ICMPv4 header and the outer IPv4 header are written
// backwards from it, all inside the space the IPv6 headers occupied.
func toIPv4Error(p *header.Parsed, s4, d4 [4]byte, inner *Inner, g *IDs) ([]byte, Reason) {
	b := p.Buf
	icmp := b[p.L4Off:]
	m := icmpMsg{typ: p.ICMPType, code: p.ICMPCode, rest: binary.BigEndian.Uint32(icmp[4:8])}
	m4, r := icmp6to4Error(m)
	if r != Ok {
		return nil, r
	}
	if inner == nil {
		return nil, InnerMissing
	}
	is, id := inner.Src.Unmap(), inner.Dst.Unmap()
	if !is.Is4() || !id.Is4() {
		return nil, BadAddress
	}
	quote := b[p.PayloadOff:]
	if m.typ == header.ICMPv6DstUnreachable || m.typ == header.ICMPv6TimeExceeded {
		// RFC 4884 §4.5: the length of the original datagram, in 64-bit
		// words; what follows is an extension structure, removed here.
		if l := int(icmp[4]) * 8; l != 0 && l < len(quote) {
			quote = quote[:l]
		}
	}
	var q header.Parsed
	if q.DecodeInner(quote) != header.Ok || q.Version != 6 {
		return nil, Malformed
	}
	if q.Fragment {
		return nil, Fragment
	}
	if r := checkExt6(q.Buf, q.IPHeaderLen); r != Ok {
		return nil, r
	}
	if q.L4Off == 0 {
		return nil, Unsupported
	}
	qb := q.Buf
	iproto := q.Proto
	il4 := qb[q.L4Off:]
	// The quoted packet's own transport length, from its Payload Length.
	ulen := int(binary.BigEndian.Uint16(qb[4:])) - (q.L4Off - header.IPv6FixedHeaderSize)
	oldPH := checksum.PseudoHeader(qb[8:24], qb[24:40], iproto, uint32(ulen))
	is4, id4 := is.As4(), id.As4()
	echoReq := false
	if iproto == ipproto.ICMPv6 {
		mi, r := icmp6to4Info(icmpMsg{typ: q.ICMPType})
		if r != Ok {
			return nil, r
		}
		echoReq = q.ICMPType == header.ICMPv6EchoRequest
		iproto = ipproto.ICMPv4
		retypeICMP(il4, mi.typ, oldPH, 0)
	} else {
		adjustL4(il4, iproto, oldPH, checksum.PseudoHeader(is4[:], id4[:], iproto, uint32(ulen)))
	}
	setInnerPorts(il4, iproto, echoReq, inner)

	const hdrs = 2*header.IPv4MinimumSize + header.ICMPv4MinimumSize // 48
	qlen := min(len(il4), maxICMPv4Error-hdrs)
	innerTotal := min(header.IPv4MinimumSize+ulen, 0xffff)
	itc, ihop := header.IPv6(qb).TrafficClass(), header.IPv6(qb).HopLimit()
	tc, hop := header.IPv6(b).TrafficClass(), header.IPv6(b).HopLimit()

	l4abs := p.PayloadOff + q.L4Off // the quoted transport header in b
	out := b[l4abs-hdrs : l4abs+qlen]
	putIPv4(out[28:48], itc, uint16(innerTotal), ihop, iproto, is4, id4, nil)
	msg := out[header.IPv4MinimumSize:]
	msg[0], msg[1], msg[2], msg[3] = m4.typ, m4.code, 0, 0
	binary.BigEndian.PutUint32(msg[4:8], m4.rest)
	binary.BigEndian.PutUint16(msg[2:], checksum.Checksum(msg, 0))
	putIPv4(out, tc, uint16(len(out)), hop, ipproto.ICMPv4, s4, d4, g)
	return out, Ok
}
