// Package refpkt builds IP packets for the tests of nat/header and
// nat/xlat by plain byte manipulation, with a naive byte-at-a-time
// reference checksum (RFC 1071 §4.1 read literally): independent of the
// code under test, so that a bug there cannot hide in the expected bytes.
// It imports nothing of natalg. Only tests use it.
package refpkt

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers the builders need (IANA "Assigned Internet Protocol
// Numbers").
const (
	protoICMPv4   = 1
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoAH       = 51
)

// Sum is the naive ones'-complement sum of b (an odd byte padded with
// zero) added to initial, folded to 16 bits.
func Sum(b []byte, initial uint32) uint16 {
	s := uint64(initial)
	for i := 0; i < len(b); i += 2 {
		w := uint64(b[i]) << 8
		if i+1 < len(b) {
			w |= uint64(b[i+1])
		}
		s += w
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// PseudoSum is the naive sum of the IPv4 (RFC 793 §3.1) or IPv6 (RFC 8200
// §8.1) pseudo-header for n transport bytes of proto, by the length of
// src (4 or 16 bytes).
func PseudoSum(src, dst []byte, proto uint8, n int) uint32 {
	var ph []byte
	ph = append(ph, src...)
	ph = append(ph, dst...)
	if len(src) == 4 {
		ph = append(ph, 0, proto, byte(n>>8), byte(n))
	} else {
		ph = append(ph, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
	}
	return uint32(Sum(ph, 0))
}

// ChecksumOffset is the checksum's offset in the transport header of proto
// (TCP 16, UDP 6, ICMP and ICMPv6 2).
func ChecksumOffset(proto uint8) int {
	switch proto {
	case protoTCP:
		return 16
	case protoUDP:
		return 6
	}
	return 2
}

// L4Checksum is the full recompute of the checksum transport segment l4 of
// proto should carry, given the packet's addresses (4 or 16 bytes): the
// checksum field is taken as zero, ICMPv4 has no pseudo-header, and a UDP
// result of 0 is sent as 0xffff (RFC 768).
func L4Checksum(src, dst []byte, proto uint8, l4 []byte) uint16 {
	c := append([]byte(nil), l4...)
	off := ChecksumOffset(proto)
	c[off], c[off+1] = 0, 0
	initial := uint32(0)
	if proto != protoICMPv4 {
		initial = PseudoSum(src, dst, proto, len(l4))
	}
	r := ^Sum(c, initial)
	if proto == protoUDP && r == 0 {
		r = 0xffff
	}
	return r
}

// SameChecksum reports whether two checksums are the same ones'-complement
// value (0x0000 and 0xffff both stand for zero, RFC 1624 §3).
func SameChecksum(a, b uint16) bool {
	return a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

// TCP builds a TCP header (checksum zero) with options (padded with EOL to
// a multiple of 4) and data.
func TCP(sport, dport uint16, seq, ack uint32, flags uint8, window uint16, opts, data []byte) []byte {
	o := append([]byte(nil), opts...)
	for len(o)%4 != 0 {
		o = append(o, 0) // EOL
	}
	h := make([]byte, 20, 20+len(o)+len(data))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = byte((20+len(o))/4) << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], window)
	h = append(h, o...)
	return append(h, data...)
}

// UDP builds a UDP datagram (checksum zero).
func UDP(sport, dport uint16, data []byte) []byte {
	h := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(data)))
	return append(h, data...)
}

// ICMP builds an ICMP or ICMPv6 message (checksum zero) with the 32-bit
// rest of header and data.
func ICMP(typ, code uint8, rest uint32, data []byte) []byte {
	h := []byte{typ, code, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[4:], rest)
	return append(h, data...)
}

// MSS, SACK and Timestamps build TCP options (RFC 9293 §3.2, RFC 2018,
// RFC 7323).
func MSS(v uint16) []byte { return []byte{2, 4, byte(v >> 8), byte(v)} }

// SACK builds a SACK option of the block edges given.
func SACK(edges ...uint32) []byte {
	o := []byte{5, byte(2 + 4*len(edges))}
	for _, e := range edges {
		o = binary.BigEndian.AppendUint32(o, e)
	}
	return o
}

// Timestamps builds a Timestamps option.
func Timestamps(val, echo uint32) []byte {
	o := []byte{8, 10}
	o = binary.BigEndian.AppendUint32(o, val)
	return binary.BigEndian.AppendUint32(o, echo)
}

// V4Opts configure V4.
type V4Opts struct {
	Options      []byte // IP options, padded with EOL to a multiple of 4
	FlagFrag     uint16 // flags and fragment offset word
	TOS, TTL     uint8
	ID           uint16
	TotalLength  int  // Total Length to claim instead of the real one (0: real)
	NoL4Checksum bool // leave the transport checksum as given
}

// V4 builds an IPv4 packet around transport bytes l4 of proto, with the
// header checksum and (unless o.NoL4Checksum, or l4 is too short to hold
// one) the transport checksum computed by the reference.
func V4(src, dst string, proto uint8, l4 []byte, o V4Opts) []byte {
	opts := append([]byte(nil), o.Options...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	hl := 20 + len(opts)
	b := make([]byte, hl, hl+len(l4))
	b[0] = 0x40 | byte(hl/4)
	b[1] = o.TOS
	total := hl + len(l4)
	if o.TotalLength != 0 {
		total = o.TotalLength
	}
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	binary.BigEndian.PutUint16(b[4:], o.ID)
	binary.BigEndian.PutUint16(b[6:], o.FlagFrag)
	b[8] = o.TTL
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	binary.BigEndian.PutUint16(b[10:], ^Sum(b[:hl], 0))
	l4 = append([]byte(nil), l4...)
	if off := ChecksumOffset(proto); !o.NoL4Checksum && len(l4) >= off+2 {
		binary.BigEndian.PutUint16(l4[off:], L4Checksum(s[:], d[:], proto, l4))
	}
	return append(b, l4...)
}

// FixIPv4Checksum recomputes the IPv4 header checksum of b in place (after
// a test corrupted the header on purpose) and returns b.
func FixIPv4Checksum(b []byte) []byte {
	hl := int(b[0]&0xf) * 4
	if hl < 20 || hl > len(b) {
		return b
	}
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], ^Sum(b[:hl], 0))
	return b
}

// Ext is one IPv6 extension header: its type and its bytes after the
// next-header byte (the length byte included).
type Ext struct {
	Type uint8
	Body []byte
}

// IsFragment says whether e is a Fragment header.
func (e Ext) IsFragment() bool { return e.Type == protoFragment }

// OptionsExt builds an 8*n8-byte Hop-by-Hop or Destination Options header
// (typ) holding one PadN option.
func OptionsExt(typ uint8, n8 int) Ext {
	body := make([]byte, 8*n8-1)
	body[0] = byte(n8 - 1)
	body[1] = 1 // PadN
	body[2] = byte(8*n8 - 4)
	return Ext{typ, body}
}

// RoutingExt builds a 24-byte Routing header of type 0 with segments left
// sl.
func RoutingExt(sl uint8) Ext {
	body := make([]byte, 23)
	body[0] = 2 // (24/8)-1
	body[1] = 0 // routing type
	body[2] = sl
	return Ext{protoRouting, body}
}

// FragmentExt builds a Fragment header with offset (bytes) and M.
func FragmentExt(offset uint16, more bool) Ext {
	b := make([]byte, 7)
	v := offset &^ 7
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[1:], v)
	binary.BigEndian.PutUint32(b[3:], 0xabcdef01)
	return Ext{protoFragment, b}
}

// AHExt builds an AH header with a 12-byte ICV (length field 4: 24 bytes).
func AHExt() Ext {
	b := make([]byte, 23)
	b[0] = 4 // (24/4)-2
	return Ext{protoAH, b}
}

// V6Opts configure V6.
type V6Opts struct {
	Exts          []Ext
	TrafficClass  uint8
	FlowLabel     uint32
	HopLimit      uint8
	PayloadLength int  // Payload Length to claim instead of the real one (0: real)
	NoL4Checksum  bool // leave the transport checksum as given
}

// V6 builds an IPv6 packet with extension headers o.Exts and transport
// bytes l4 of proto, the transport checksum (unless o.NoL4Checksum, or l4
// is too short to hold one) computed by the reference.
func V6(src, dst string, proto uint8, l4 []byte, o V6Opts) []byte {
	b := make([]byte, 40)
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(o.TrafficClass)<<20|o.FlowLabel&0xfffff)
	b[7] = o.HopLimit
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	prev := 6 // the next-header byte to fill
	for _, e := range o.Exts {
		b[prev] = e.Type
		prev = len(b)
		b = append(b, 0)
		b = append(b, e.Body...)
	}
	b[prev] = proto
	l4 = append([]byte(nil), l4...)
	if off := ChecksumOffset(proto); !o.NoL4Checksum && len(l4) >= off+2 {
		binary.BigEndian.PutUint16(l4[off:], L4Checksum(s[:], d[:], proto, l4))
	}
	b = append(b, l4...)
	payload := len(b) - 40
	if o.PayloadLength != 0 {
		payload = o.PayloadLength
	}
	binary.BigEndian.PutUint16(b[4:], uint16(payload))
	return b
}
