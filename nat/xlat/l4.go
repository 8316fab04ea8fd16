package xlat

import (
	"encoding/binary"

	"github.com/natalg/natalg/nat/checksum"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// This file adjusts transport checksums for a translation (RFC 7915 §4.5 and
// §5.5): the pseudo-header (RFC 9293 §3.1, RFC 768, RFC 8200 §8.1) changes
// family, and for ICMP the type changes and the ICMPv6 pseudo-header
// (RFC 4443 §2.3) appears or disappears. Each update is an RFC 1624 eqn. 3
// update of the checksum by the change of the ones'-complement sum of what
// it covers, never a recompute: the segment may be large, or, quoted in an
// ICMP error, cut short.

// Transport checksum field offsets (RFC 9293 §3.1, RFC 768, RFC 792).
const (
	tcpChecksumOff  = 16
	udpChecksumOff  = 6
	icmpChecksumOff = 2
)

// adjust returns checksum c updated for covered data whose ones'-complement
// sum changes from the accumulator old to the accumulator new (RFC 1624 §3
// eqn. 3, with m and m' the folded sums).
func adjust(c uint16, old, new uint32) uint16 {
	return checksum.Update16(c, checksum.Fold(old), checksum.Fold(new))
}

// plus adds two checksum accumulators without losing a carry.
func plus(a, b uint32) uint32 {
	return uint32(checksum.Fold(a)) + uint32(checksum.Fold(b))
}

// nonZero maps a checksum of 0x0000 to 0xffff, the other ones'-complement
// representation of zero. RFC 768 requires it for UDP (0 means "no
// checksum"); for ICMP it is the only value that verifies when the message
// is all zero, and verifies whenever 0x0000 does.
func nonZero(c uint16) uint16 {
	if c == 0 {
		return 0xffff
	}
	return c
}

// adjustL4 updates the TCP or UDP checksum of l4 for a pseudo-header whose
// accumulator (checksum.PseudoHeader) changes from oldPH to newPH. l4 may be
// a quote cut short: a checksum field that is not present is left alone. A
// UDP checksum of 0 ("none", RFC 768) stays 0.
//
// Precondition: proto is ipproto.TCP or ipproto.UDP; for other
// values adjustL4 does nothing.
func adjustL4(l4 []byte, proto ipproto.Proto, oldPH, newPH uint32) {
	switch proto {
	case ipproto.TCP:
		if len(l4) >= tcpChecksumOff+2 {
			c := binary.BigEndian.Uint16(l4[tcpChecksumOff:])
			binary.BigEndian.PutUint16(l4[tcpChecksumOff:], adjust(c, oldPH, newPH))
		}
	case ipproto.UDP:
		if len(l4) >= udpChecksumOff+2 {
			if c := binary.BigEndian.Uint16(l4[udpChecksumOff:]); c != 0 {
				binary.BigEndian.PutUint16(l4[udpChecksumOff:], nonZero(adjust(c, oldPH, newPH)))
			}
		}
	}
}

// retypeICMP sets the type of the ICMP or ICMPv6 echo message l4 to typ and
// updates its checksum for the type change and for a pseudo-header
// accumulator changing from oldPH to newPH (0 on the ICMPv4 side, which has
// no pseudo-header).
//
// Precondition: len(l4) >= 4 (the header is at least 8 bytes whenever
// header.Parsed decoded an ICMP message); shorter, it does nothing.
func retypeICMP(l4 []byte, typ uint8, oldPH, newPH uint32) {
	if len(l4) < 4 {
		return
	}
	oldW := uint32(binary.BigEndian.Uint16(l4))
	l4[0] = typ
	newW := uint32(binary.BigEndian.Uint16(l4))
	c := binary.BigEndian.Uint16(l4[icmpChecksumOff:])
	c = adjust(c, plus(oldPH, oldW), plus(newPH, newW))
	binary.BigEndian.PutUint16(l4[icmpChecksumOff:], nonZero(c))
}

// setInnerPorts writes in's ports (or echo identifier) into the quoted
// transport header l4 of proto (after translation: ProtoICMPv4 or
// ProtoICMPv6 for echo), through the header views, which update the quoted
// checksum when it is present. echoReq tells an echo request (identifier in
// SrcPort) from a reply (in DstPort).
func setInnerPorts(l4 []byte, proto ipproto.Proto, echoReq bool, in *Inner) {
	switch proto {
	case ipproto.TCP:
		header.TCP(l4).SetSrcPort(in.SrcPort)
		header.TCP(l4).SetDstPort(in.DstPort)
	case ipproto.UDP:
		header.UDP(l4).SetSrcPort(in.SrcPort)
		header.UDP(l4).SetDstPort(in.DstPort)
	case ipproto.ICMPv4, ipproto.ICMPv6:
		id := in.DstPort
		if echoReq {
			id = in.SrcPort
		}
		// ICMPv4 and ICMPv6 share the header layout; the ICMPv6
		// pseudo-header does not change here.
		header.ICMPv4(l4).SetIdent(id)
	}
}
