package header

import (
	"net/netip"

	"github.com/natalg/natalg/nat/checksum"
	"github.com/natalg/natalg/nat/ipproto"
)

// IPv4 is a view of an IPv4 packet starting at its header (RFC 791 §3.1).
// The slice may extend past the header (options and payload).
type IPv4 []byte

// IPv4 sizes.
const (
	IPv4MinimumSize       = 20 // header without options (IHL 5)
	IPv4MaximumHeaderSize = 60 // IHL 15
	IPv4AddressSize       = 4
)

// Field offsets of the IPv4 header (RFC 791 §3.1).
const (
	ipv4VersIHL   = 0
	ipv4TOS       = 1
	ipv4TotalLen  = 2
	ipv4ID        = 4
	ipv4FlagsFrag = 6
	ipv4TTL       = 8
	ipv4Protocol  = 9
	ipv4Checksum  = 10
	ipv4SrcAddr   = 12
	ipv4DstAddr   = 16
)

// IPv4 flag bits, as returned by IPv4.Flags (the top 3 bits of byte 6,
// shifted down).
const (
	IPv4FlagMoreFragments = 1 << 0
	IPv4FlagDontFragment  = 1 << 1
)

// Version returns the IP version field (4 for a valid header).
func (b IPv4) Version() uint8 { return get8(b, ipv4VersIHL) >> 4 }

// IHL returns the Internet Header Length field, in 32-bit words.
func (b IPv4) IHL() uint8 { return get8(b, ipv4VersIHL) & 0xf }

// HeaderLen returns the header length in bytes (IHL*4), options included.
func (b IPv4) HeaderLen() int { return int(b.IHL()) * 4 }

// TOS returns the Type of Service / DSCP+ECN byte.
func (b IPv4) TOS() uint8 { return get8(b, ipv4TOS) }

// TotalLength returns the Total Length field: header plus data, in bytes.
func (b IPv4) TotalLength() uint16 { return get16(b, ipv4TotalLen) }

// SetTotalLength sets the Total Length field and updates the header checksum
// incrementally (RFC 1624 eqn. 3).
func (b IPv4) SetTotalLength(v uint16) { b.set16(ipv4TotalLen, v) }

// ID returns the Identification field.
func (b IPv4) ID() uint16 { return get16(b, ipv4ID) }

// SetID sets the Identification field, updating the header checksum.
func (b IPv4) SetID(v uint16) { b.set16(ipv4ID, v) }

// Flags returns the 3 flag bits (IPv4FlagMoreFragments, IPv4FlagDontFragment).
func (b IPv4) Flags() uint8 { return get8(b, ipv4FlagsFrag) >> 5 }

// MoreFragments reports whether the MF flag is set.
func (b IPv4) MoreFragments() bool { return b.Flags()&IPv4FlagMoreFragments != 0 }

// DontFragment reports whether the DF flag is set.
func (b IPv4) DontFragment() bool { return b.Flags()&IPv4FlagDontFragment != 0 }

// FragmentOffset returns the fragment offset in bytes (the 13-bit field
// times 8).
func (b IPv4) FragmentOffset() uint16 { return get16(b, ipv4FlagsFrag) << 3 }

// IsFragment reports whether the packet is a fragment: MF set or a non-zero
// offset (RFC 791 §3.2).
func (b IPv4) IsFragment() bool { return get16(b, ipv4FlagsFrag)&0x3fff != 0 }

// TTL returns the Time to Live field.
func (b IPv4) TTL() uint8 { return get8(b, ipv4TTL) }

// SetTTL sets the Time to Live field, updating the header checksum.
func (b IPv4) SetTTL(v uint8) {
	if len(b) < IPv4MinimumSize {
		return
	}
	b.set16(ipv4TTL, uint16(v)<<8|uint16(b[ipv4Protocol]))
}

// Protocol returns the Protocol field (the transport protocol number).
func (b IPv4) Protocol() ipproto.Proto { return ipproto.Proto(get8(b, ipv4Protocol)) }

// Checksum returns the Header Checksum field.
func (b IPv4) Checksum() uint16 { return get16(b, ipv4Checksum) }

// SetChecksum stores v in the Header Checksum field.
func (b IPv4) SetChecksum(v uint16) { put16(b, ipv4Checksum, v) }

// Src returns the source address, or the zero Addr if the view is short.
func (b IPv4) Src() netip.Addr { return b.addr(ipv4SrcAddr) }

// Dst returns the destination address, or the zero Addr if the view is short.
func (b IPv4) Dst() netip.Addr { return b.addr(ipv4DstAddr) }

// SetSrc sets the source address and updates the header checksum
// incrementally. It does not touch any transport checksum (see
// Parsed.SetSrcAddr). a must be an IPv4 (or IPv4-mapped IPv6) address;
// otherwise, or if the view is shorter than the fixed header, SetSrc does
// nothing and returns false.
func (b IPv4) SetSrc(a netip.Addr) bool { return b.setAddr(ipv4SrcAddr, a) }

// SetDst is SetSrc for the destination address.
func (b IPv4) SetDst(a netip.Addr) bool { return b.setAddr(ipv4DstAddr, a) }

// Options returns the options area (bytes 20 to HeaderLen), clipped to the
// view.
func (b IPv4) Options() []byte { return clip(b, IPv4MinimumSize, b.HeaderLen()) }

// Payload returns the bytes between the header and TotalLength, clipped to
// the view.
func (b IPv4) Payload() []byte { return clip(b, b.HeaderLen(), int(b.TotalLength())) }

// ComputeChecksum returns the header checksum the header should carry: the
// RFC 791 §3.1 / RFC 1071 checksum over HeaderLen bytes with the checksum
// field taken as zero. The view is not modified. It returns 0 if the view is
// shorter than HeaderLen or IHL < 5.
func (b IPv4) ComputeChecksum() uint16 {
	hl := b.HeaderLen()
	if hl < IPv4MinimumSize || hl > len(b) {
		return 0
	}
	s := checksum.Sum(b[:ipv4Checksum], 0)
	s = checksum.Sum(b[ipv4Checksum+2:hl], s)
	return ^checksum.Fold(s)
}

// IsChecksumValid reports whether the header checksum verifies: the
// ones'-complement sum of the HeaderLen header bytes is 0xffff (RFC 1071
// §1). It returns false if IHL < 5 or the view is shorter than HeaderLen.
func (b IPv4) IsChecksumValid() bool {
	hl := b.HeaderLen()
	if hl < IPv4MinimumSize || hl > len(b) {
		return false
	}
	return checksum.Checksum(b[:hl], 0) == 0
}

func (b IPv4) addr(off int) netip.Addr {
	if !has(b, off, IPv4AddressSize) {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte(b[off : off+4]))
}

func (b IPv4) setAddr(off int, a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() || len(b) < IPv4MinimumSize {
		return false
	}
	n := a.As4()
	f := b[off : off+4]
	ck := checksum.UpdateBytes(b.Checksum(), f, n[:])
	copy(f, n[:])
	b.SetChecksum(ck)
	return true
}

// set16 writes a 16-bit header word and updates the header checksum.
func (b IPv4) set16(off int, v uint16) {
	if len(b) < IPv4MinimumSize {
		return
	}
	old := get16(b, off)
	put16(b, off, v)
	b.SetChecksum(checksum.Update16(b.Checksum(), old, v))
}
