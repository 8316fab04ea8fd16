package xlat

import "github.com/natalg/natalg/nat/header"

// This file maps ICMP types, codes and the 4-byte rest of the header between
// ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) per RFC 7915 §4.2 and §5.2. The
// checksums and the quoted packet are handled by the callers.

// icmpMsg is an ICMP header without its checksum: type, code and the 32-bit
// field that follows the checksum (echo identifier and sequence, MTU,
// pointer, or unused).
type icmpMsg struct {
	typ, code uint8
	rest      uint32
}

// rfc1191Plateaus are the MTU plateaus of RFC 1191 §7, largest first.
var rfc1191Plateaus = [...]uint16{65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68}

// ipv6MinMTU is the minimum link MTU of IPv6 (RFC 8200 §5).
const ipv6MinMTU = 1280

// icmp4to6Info maps an ICMPv4 informational message (RFC 7915 §4.2): echo
// request and reply become ICMPv6 echo request and reply (types 128 and
// 129), identifier and sequence kept. Everything else (timestamp, address
// mask, information request, router advertisement and solicitation, unknown
// types) is dropped: Unsupported.
func icmp4to6Info(m icmpMsg) (icmpMsg, Reason) {
	switch m.typ {
	case header.ICMPv4Echo:
		m.typ = header.ICMPv6EchoRequest
	case header.ICMPv4EchoReply:
		m.typ = header.ICMPv6EchoReply
	default:
		return m, Unsupported
	}
	return m, Ok
}

// icmp6to4Info maps an ICMPv6 informational message (RFC 7915 §5.2): echo
// request and reply become ICMPv4 echo and echo reply (types 8 and 0). MLD,
// Neighbor Discovery and unknown informational messages are dropped:
// Unsupported.
func icmp6to4Info(m icmpMsg) (icmpMsg, Reason) {
	switch m.typ {
	case header.ICMPv6EchoRequest:
		m.typ = header.ICMPv4Echo
	case header.ICMPv6EchoReply:
		m.typ = header.ICMPv4EchoReply
	default:
		return m, Unsupported
	}
	return m, Ok
}

// icmp4to6Error maps an ICMPv4 error message to ICMPv6 (RFC 7915 §4.2).
// innerTotalLen is the Total Length field of the quoted IPv4 header (for the
// RFC 1191 plateau rule). The RFC 4884 length attribute is not carried over
// (ICMP extensions are removed).
//
// Destination Unreachable (3), by code: 0, 1, 5, 6, 7, 8, 11, 12 -> type 1
// code 0; 2 (protocol) -> Parameter Problem type 4 code 1 with pointer 6
// (the Next Header field); 3 -> type 1 code 4; 4 (fragmentation needed) ->
// Packet Too Big (type 2) with the MTU below; 9, 10, 13, 15 -> type 1 code
// 1; 14 and unknown codes -> ICMPNoMapping. Time Exceeded (11) -> type 3,
// code kept. Parameter Problem (12) codes 0 and 2 -> type 4 code 0 with the
// pointer mapped by RFC 7915 Figure 3 (ICMPNoMapping where it says n/a or for
// pointers it does not list); code 1 and unknown codes -> ICMPNoMapping.
// Source Quench, Redirect and any other error -> ICMPNoMapping.
//
// Packet Too Big MTU (RFC 7915 §4.2): the ICMPv4 next-hop MTU plus 20; when
// it is 0 (a router predating RFC 1191), the largest RFC 1191 plateau below
// innerTotalLen, plus 20. Simplifications: the next-hop MTUs the RFC also
// takes the minimum with are unknown here, and the result is raised to 1280
// (RFC 8200 §5: no IPv6 path has a smaller MTU, and RFC 8021 deprecates the
// atomic fragments a smaller value would call for).
func icmp4to6Error(m icmpMsg, innerTotalLen uint16) (icmpMsg, Reason) {
	out := icmpMsg{}
	switch m.typ {
	case header.ICMPv4DstUnreachable:
		out.typ = header.ICMPv6DstUnreachable
		switch m.code {
		case 0, 1, 5, 6, 7, 8, 11, 12:
			out.code = 0 // no route to destination
		case 2:
			out.typ, out.code, out.rest = header.ICMPv6ParamProblem, 1, 6
		case 3:
			out.code = 4 // port unreachable
		case 4:
			out.typ = header.ICMPv6PacketTooBig
			mtu := uint32(uint16(m.rest))
			if mtu == 0 {
				mtu = uint32(plateauBelow(innerTotalLen))
			}
			out.rest = max(mtu+20, ipv6MinMTU)
		case 9, 10, 13, 15:
			out.code = 1 // administratively prohibited
		default: // 14 (host precedence violation) and unknown codes
			return out, ICMPNoMapping
		}
	case header.ICMPv4TimeExceeded:
		out.typ, out.code = header.ICMPv6TimeExceeded, m.code
	case header.ICMPv4ParamProblem:
		if m.code != 0 && m.code != 2 {
			return out, ICMPNoMapping
		}
		p, ok := pointer4to6(uint8(m.rest >> 24))
		if !ok {
			return out, ICMPNoMapping
		}
		out.typ, out.code, out.rest = header.ICMPv6ParamProblem, 0, uint32(p)
	default:
		return out, ICMPNoMapping
	}
	return out, Ok
}

// icmp6to4Error maps an ICMPv6 error message to ICMPv4 (RFC 7915 §5.2). The
// RFC 4884 length attribute is not carried over.
//
// Destination Unreachable (1), by code: 0, 2, 3 -> type 3 code 1 (host
// unreachable); 1 -> type 3 code 10 (administratively prohibited); 4 -> type
// 3 code 3 (port unreachable); others -> ICMPNoMapping. Packet Too Big (2)
// -> type 3 code 4 with next-hop MTU = MTU - 20 (RFC 7915 §5.2; the IPv4
// next-hop MTU the RFC also takes the minimum with is unknown here), kept
// within [68, 65535] (RFC 791's minimum, and the 16-bit field). Time Exceeded
// (3) -> type 11, code kept. Parameter Problem (4): code 0 -> type 12 code 0
// with the pointer mapped by RFC 7915 Figure 6 (ICMPNoMapping where it says
// n/a or for pointers it does not list); code 1 -> type 3 code 2 (protocol
// unreachable); other codes -> ICMPNoMapping.
func icmp6to4Error(m icmpMsg) (icmpMsg, Reason) {
	out := icmpMsg{}
	switch m.typ {
	case header.ICMPv6DstUnreachable:
		out.typ = header.ICMPv4DstUnreachable
		switch m.code {
		case 0, 2, 3:
			out.code = 1
		case 1:
			out.code = 10
		case 4:
			out.code = 3
		default:
			return out, ICMPNoMapping
		}
	case header.ICMPv6PacketTooBig:
		out.typ, out.code = header.ICMPv4DstUnreachable, 4
		mtu := m.rest
		if mtu < 20+68 {
			mtu = 68
		} else {
			mtu = min(mtu-20, 0xffff)
		}
		out.rest = mtu
	case header.ICMPv6TimeExceeded:
		out.typ, out.code = header.ICMPv4TimeExceeded, m.code
	case header.ICMPv6ParamProblem:
		switch m.code {
		case 0:
			p, ok := pointer6to4(m.rest)
			if !ok {
				return out, ICMPNoMapping
			}
			out.typ, out.code, out.rest = header.ICMPv4ParamProblem, 0, uint32(p)<<24
		case 1:
			out.typ, out.code = header.ICMPv4DstUnreachable, 2
		default:
			return out, ICMPNoMapping
		}
	default:
		return out, ICMPNoMapping
	}
	return out, Ok
}

// plateauBelow returns the largest RFC 1191 §7 plateau smaller than
// totalLen, or 68 if there is none.
func plateauBelow(totalLen uint16) uint16 {
	for _, p := range rfc1191Plateaus {
		if p < totalLen {
			return p
		}
	}
	return 68
}

// pointer4to6 maps an IPv4 Parameter Problem pointer to the IPv6 one (RFC
// 7915 §4.2, Figure 3). ok is false for the fields the figure marks n/a
// (Identification, Flags, Fragment Offset, Header Checksum) and for
// pointers past the fixed header (options).
func pointer4to6(p uint8) (uint8, bool) {
	switch {
	case p == 0: // Version/IHL -> Version/Traffic Class
		return 0, true
	case p == 1: // Type of Service -> Traffic Class
		return 1, true
	case p == 2 || p == 3: // Total Length -> Payload Length
		return 4, true
	case p == 8: // Time to Live -> Hop Limit
		return 7, true
	case p == 9: // Protocol -> Next Header
		return 6, true
	case p >= 12 && p <= 15: // Source Address
		return 8, true
	case p >= 16 && p <= 19: // Destination Address
		return 24, true
	}
	return 0, false
}

// pointer6to4 maps an IPv6 Parameter Problem pointer to the IPv4 one (RFC
// 7915 §5.2, Figure 6). ok is false for the Flow Label (n/a) and pointers
// past the fixed header.
func pointer6to4(p uint32) (uint8, bool) {
	switch {
	case p == 0: // Version/Traffic Class -> Version/IHL, Type of Service
		return 0, true
	case p == 1: // Traffic Class/Flow Label -> Type of Service
		return 1, true
	case p == 4 || p == 5: // Payload Length -> Total Length
		return 2, true
	case p == 6: // Next Header -> Protocol
		return 9, true
	case p == 7: // Hop Limit -> Time to Live
		return 8, true
	case p >= 8 && p <= 23: // Source Address
		return 12, true
	case p >= 24 && p <= 39: // Destination Address
		return 16, true
	}
	return 0, false
}
