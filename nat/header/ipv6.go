package header

import (
	"net/netip"

	"github.com/natalg/natalg/nat/ipproto"
)

// IPv6 is a view of an IPv6 packet starting at its fixed header (RFC 8200
// §3). The slice may extend past the 40-byte header. IPv6 has no header
// checksum, so its setters update nothing else; transport checksums that
// cover the pseudo-header are kept right by Parsed.SetSrcAddr/SetDstAddr.
type IPv6 []byte

// IPv6 sizes.
const (
	IPv6FixedHeaderSize = 40
	IPv6AddressSize     = 16
)

// Field offsets of the IPv6 fixed header (RFC 8200 §3).
const (
	ipv6VersTCFlow = 0
	ipv6PayloadLen = 4
	ipv6NextHeader = 6
	ipv6HopLimit   = 7
	ipv6SrcAddr    = 8
	ipv6DstAddr    = 24
)

// Version returns the IP version field (6 for a valid header).
func (b IPv6) Version() uint8 { return get8(b, ipv6VersTCFlow) >> 4 }

// TrafficClass returns the 8-bit Traffic Class field.
func (b IPv6) TrafficClass() uint8 { return uint8(get16(b, ipv6VersTCFlow) >> 4) }

// FlowLabel returns the 20-bit Flow Label field.
func (b IPv6) FlowLabel() uint32 { return get32(b, ipv6VersTCFlow) & 0xfffff }

// PayloadLength returns the Payload Length field: everything after the fixed
// header, extension headers included.
func (b IPv6) PayloadLength() uint16 { return get16(b, ipv6PayloadLen) }

// SetPayloadLength sets the Payload Length field.
func (b IPv6) SetPayloadLength(v uint16) { put16(b, ipv6PayloadLen, v) }

// NextHeader returns the Next Header field of the fixed header.
func (b IPv6) NextHeader() ipproto.Proto { return ipproto.Proto(get8(b, ipv6NextHeader)) }

// HopLimit returns the Hop Limit field.
func (b IPv6) HopLimit() uint8 { return get8(b, ipv6HopLimit) }

// SetHopLimit sets the Hop Limit field.
func (b IPv6) SetHopLimit(v uint8) {
	if len(b) > ipv6HopLimit {
		b[ipv6HopLimit] = v
	}
}

// Src returns the source address, or the zero Addr if the view is short.
func (b IPv6) Src() netip.Addr { return b.addr(ipv6SrcAddr) }

// Dst returns the destination address, or the zero Addr if the view is short.
func (b IPv6) Dst() netip.Addr { return b.addr(ipv6DstAddr) }

// SetSrc sets the source address. a must be an IPv6 address (Is6, which
// includes IPv4-mapped addresses; any zone is dropped); otherwise, or if the
// view is shorter than the fixed header, SetSrc does nothing and returns
// false.
func (b IPv6) SetSrc(a netip.Addr) bool { return b.setAddr(ipv6SrcAddr, a) }

// SetDst is SetSrc for the destination address.
func (b IPv6) SetDst(a netip.Addr) bool { return b.setAddr(ipv6DstAddr, a) }

// Payload returns the bytes after the fixed header up to PayloadLength,
// clipped to the view. Extension headers are part of it.
func (b IPv6) Payload() []byte {
	return clip(b, IPv6FixedHeaderSize, IPv6FixedHeaderSize+int(b.PayloadLength()))
}

func (b IPv6) addr(off int) netip.Addr {
	if !has(b, off, IPv6AddressSize) {
		return netip.Addr{}
	}
	return netip.AddrFrom16([16]byte(b[off : off+16]))
}

func (b IPv6) setAddr(off int, a netip.Addr) bool {
	if !a.Is6() || len(b) < IPv6FixedHeaderSize {
		return false
	}
	n := a.As16()
	copy(b[off:off+16], n[:])
	return true
}
