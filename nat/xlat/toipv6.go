package xlat

import (
	"encoding/binary"
	"net/netip"

	"github.com/natalg/natalg/nat/checksum"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// ToIPv6 translates the IPv4 packet pkt into IPv6 (RFC 7915 §4), in place,
// and returns the IPv6 packet: pkt's array from pkt[0], resliced to the
// translated length, which may exceed len(pkt).
//
// The IPv6 header (RFC 7915 §4.1): Traffic Class = TOS, Flow Label 0,
// Payload Length = Total Length - IHL*4, Next Header = Protocol (ICMP 1
// becomes ICMPv6 58), Hop Limit = TTL (not decremented: see the package
// comment), source src and destination dst. IPv4 options are dropped, not
// translated. The transport segment is moved to follow the 40-byte header.
//
// Transport (RFC 7915 §4.5): the TCP or UDP checksum is updated
// incrementally for the pseudo-header change; the ports are not changed
// (rewrite them afterwards on a header.Parsed of the result). A UDP
// checksum of 0 (none) is forbidden in IPv6 (RFC 8200 §8.1), so one is
// computed over the whole datagram (RFC 7915 §4.5). ICMP echo and echo
// reply become ICMPv6 echo request and reply, their checksum updated
// incrementally for the type change and the ICMPv6 pseudo-header. ICMP
// errors are translated by toIPv6Error, using inner.
//
// Preconditions: pkt starts at the IPv4 header (bytes past Total Length are
// ignored); cap(pkt) >= len(pkt)+20 is always enough (the packet grows by 20
// minus the IPv4 options), and for an ICMP error cap(pkt) >= len(pkt)+40
// (both IP headers grow). With less room than the translated packet needs,
// ToIPv6 returns TooBig. inner is only used (and then required) for ICMP
// errors. ToIPv6 does not allocate.
//
// On any Reason but Ok, the returned slice is nil and pkt may have been
// partly rewritten.
func ToIPv6(pkt []byte, src, dst netip.Addr, inner *Inner) ([]byte, Reason) {
	if !src.Is6() || !dst.Is6() {
		return nil, BadAddress
	}
	var p header.Parsed
	if p.Decode(pkt) != header.Ok || p.Version != 4 {
		return nil, Malformed
	}
	if p.Fragment {
		return nil, Fragment
	}
	if p.L4Off == 0 {
		return nil, Unsupported
	}
	s6, d6 := src.As16(), dst.As16()
	if p.ICMPError {
		return toIPv6Error(pkt, &p, s6, d6, inner)
	}
	b := p.Buf
	h := p.IPHeaderLen
	l4 := b[h:]
	n := len(l4)
	if header.IPv6FixedHeaderSize+n > cap(pkt) {
		return nil, TooBig
	}
	tos, ttl := header.IPv4(b).TOS(), header.IPv4(b).TTL()
	proto := p.Proto
	oldPH := checksum.PseudoHeader(b[12:16], b[16:20], proto, uint32(n))
	udpZero := false
	switch proto {
	case ipproto.ICMPv4:
		m, r := icmp4to6Info(icmpMsg{typ: p.ICMPType, code: p.ICMPCode})
		if r != Ok {
			return nil, r
		}
		proto = ipproto.ICMPv6
		retypeICMP(l4, m.typ, 0, checksum.PseudoHeader(s6[:], d6[:], proto, uint32(n)))
	case ipproto.UDP:
		udpZero = binary.BigEndian.Uint16(l4[udpChecksumOff:]) == 0
		if !udpZero {
			adjustL4(l4, proto, oldPH, checksum.PseudoHeader(s6[:], d6[:], proto, uint32(n)))
		}
	default:
		adjustL4(l4, proto, oldPH, checksum.PseudoHeader(s6[:], d6[:], proto, uint32(n)))
	}
	out := pkt[:header.IPv6FixedHeaderSize+n]
	copy(out[header.IPv6FixedHeaderSize:], l4) // memmove: may overlap
	putIPv6(out, tos, uint16(n), proto, ttl, s6, d6)
	if udpZero {
		u := out[header.IPv6FixedHeaderSize:]
		ph := checksum.PseudoHeader(s6[:], d6[:], ipproto.UDP, uint32(n))
		binary.BigEndian.PutUint16(u[udpChecksumOff:], nonZero(checksum.Checksum(u, ph)))
	}
	return out, Ok
}

// toIPv6Error translates the ICMPv4 error message decoded in p (RFC 7915
// §4.2) and the IPv4 packet it quotes (§4.3) into an ICMPv6 error from s6 to
// d6, in place in pkt's array, and returns it.
//
// The type, code and MTU or pointer are mapped by icmp4to6Error. The quoted
// packet must decode with header.Parsed.DecodeInner as TCP, UDP or an ICMP
// echo or echo reply, not a fragment; its IPv4 header (options dropped) is
// replaced by an IPv6 header built like ToIPv6's (Payload Length from the
// quoted Total Length, Hop Limit = the quoted TTL) carrying inner.Src and
// inner.Dst; its transport header gets the ports of inner, and its
// checksum, as far as it is present, is updated incrementally (it is not
// verified; a quoted UDP checksum of 0 stays 0). The quote is cut so that
// the ICMPv6 error is at most 1280 bytes (maxICMPv6Error, RFC 4443 §2.4
// (c)), and at the RFC 4884 length attribute if there is one. The ICMPv6
// checksum is computed over the whole message and its pseudo-header.
//
// Layout: the quoted transport bytes are moved to offset 88; the outer IPv6
// header, the ICMPv6 header and the inner IPv6 header fill pkt[0:88].
func toIPv6Error(pkt []byte, p *header.Parsed, s6, d6 [16]byte, inner *Inner) ([]byte, Reason) {
	b := p.Buf
	icmp := b[p.L4Off:]
	m := icmpMsg{typ: p.ICMPType, code: p.ICMPCode, rest: binary.BigEndian.Uint32(icmp[4:8])}
	quote := b[p.PayloadOff:]
	switch m.typ {
	case header.ICMPv4DstUnreachable, header.ICMPv4TimeExceeded, header.ICMPv4ParamProblem:
		// RFC 4884 §4.5: the length of the original datagram, in 32-bit
		// words; what follows is an extension structure, removed here.
		if l := int(icmp[5]) * 4; l != 0 && l < len(quote) {
			quote = quote[:l]
		}
	}
	var q header.Parsed
	if q.DecodeInner(quote) != header.Ok || q.Version != 4 {
		return nil, Malformed
	}
	qb := q.Buf
	innerTotal := header.IPv4(qb).TotalLength()
	m6, r := icmp4to6Error(m, innerTotal)
	if r != Ok {
		return nil, r
	}
	if q.Fragment {
		return nil, Fragment
	}
	if q.L4Off == 0 {
		return nil, Unsupported
	}
	if inner == nil {
		return nil, InnerMissing
	}
	if !inner.Src.Is6() || !inner.Dst.Is6() {
		return nil, BadAddress
	}
	const hdrs = 2*header.IPv6FixedHeaderSize + header.ICMPv6MinimumSize // 88
	il4 := qb[q.L4Off:]
	qlen := min(len(il4), maxICMPv6Error-hdrs)
	if hdrs+qlen > cap(pkt) {
		return nil, TooBig
	}
	iproto := q.Proto
	ulen := int(innerTotal) - q.IPHeaderLen // DecodeInner: Total Length >= IHL*4
	is6, id6 := inner.Src.As16(), inner.Dst.As16()
	oldPH := checksum.PseudoHeader(qb[12:16], qb[16:20], iproto, uint32(ulen))
	echoReq := false
	if iproto == ipproto.ICMPv4 {
		mi, r := icmp4to6Info(icmpMsg{typ: q.ICMPType})
		if r != Ok {
			return nil, r
		}
		echoReq = q.ICMPType == header.ICMPv4Echo
		iproto = ipproto.ICMPv6
		retypeICMP(il4, mi.typ, 0, checksum.PseudoHeader(is6[:], id6[:], iproto, uint32(ulen)))
	} else {
		adjustL4(il4, iproto, oldPH, checksum.PseudoHeader(is6[:], id6[:], iproto, uint32(ulen)))
	}
	setInnerPorts(il4, iproto, echoReq, inner)

	itos, ittl := header.IPv4(qb).TOS(), header.IPv4(qb).TTL()
	tos, ttl := header.IPv4(b).TOS(), header.IPv4(b).TTL()
	out := pkt[:hdrs+qlen]
	copy(out[hdrs:], il4[:qlen]) // memmove: may overlap
	putIPv6(out[48:88], itos, uint16(ulen), iproto, ittl, is6, id6)
	msg := out[header.IPv6FixedHeaderSize:]
	msg[0], msg[1], msg[2], msg[3] = m6.typ, m6.code, 0, 0
	binary.BigEndian.PutUint32(msg[4:8], m6.rest)
	ph := checksum.PseudoHeader(s6[:], d6[:], ipproto.ICMPv6, uint32(len(msg)))
	binary.BigEndian.PutUint16(msg[2:], checksum.Checksum(msg, ph))
	putIPv6(out, tos, uint16(len(msg)), ipproto.ICMPv6, ttl, s6, d6)
	return out, Ok
}
