package header

import (
	"encoding/binary"
	"net/netip"
)

// This file builds packets for the tests with plain byte manipulation and a
// byte-at-a-time reference checksum, independent of the package under test.

// refSum is the naive RFC 1071 sum of b (odd byte padded), folded.
func refSum(b []byte, initial uint32) uint16 {
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

// refPseudo returns the naive pseudo-header sum (unfolded is fine: refSum
// folds).
func refPseudo(src, dst []byte, proto uint8, n int) uint32 {
	var ph []byte
	ph = append(ph, src...)
	ph = append(ph, dst...)
	if len(src) == 4 {
		ph = append(ph, 0, proto, byte(n>>8), byte(n))
	} else {
		ph = append(ph, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
	}
	return uint32(refSum(ph, 0))
}

// refL4Checksum returns the transport checksum that segment l4 of proto
// should carry (field at ckOff taken as zero), given the packet's addresses.
func refL4Checksum(src, dst []byte, proto uint8, l4 []byte, ckOff int) uint16 {
	c := append([]byte(nil), l4...)
	c[ckOff], c[ckOff+1] = 0, 0
	init := uint32(0)
	if proto != ProtoICMPv4 {
		init = refPseudo(src, dst, proto, len(l4))
	}
	r := ^refSum(c, init)
	if proto == ProtoUDP && r == 0 {
		r = 0xffff
	}
	return r
}

// l4CkOff is the checksum offset within the transport header of proto.
func l4CkOff(proto uint8) int {
	switch proto {
	case ProtoTCP:
		return 16
	case ProtoUDP:
		return 6
	default:
		return 2
	}
}

// tcpSeg builds a TCP header (checksum zero) with options (EOL-padded to a
// multiple of 4) and data.
func tcpSeg(sport, dport uint16, seq, ack uint32, flags uint8, opts []byte, data []byte) []byte {
	o := append([]byte(nil), opts...)
	for len(o)%4 != 0 {
		o = append(o, 0) // EOL padding
	}
	h := make([]byte, 20, 20+len(o)+len(data))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = byte((20+len(o))/4) << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	h = append(h, o...)
	return append(h, data...)
}

func udpDgram(sport, dport uint16, data []byte) []byte {
	h := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(data)))
	return append(h, data...)
}

func icmpMsg(typ, code uint8, ident, seq uint16, data []byte) []byte {
	h := []byte{typ, code, 0, 0, byte(ident >> 8), byte(ident), byte(seq >> 8), byte(seq)}
	return append(h, data...)
}

// optMSS, optSACK and optTS build TCP options.
func optMSS(v uint16) []byte { return []byte{2, 4, byte(v >> 8), byte(v)} }
func optSACK(edges ...uint32) []byte {
	o := []byte{5, byte(2 + 4*len(edges))}
	for _, e := range edges {
		o = binary.BigEndian.AppendUint32(o, e)
	}
	return o
}
func optTS(val, echo uint32) []byte {
	o := []byte{8, 10}
	o = binary.BigEndian.AppendUint32(o, val)
	return binary.BigEndian.AppendUint32(o, echo)
}
func cat(bs ...[]byte) []byte {
	var r []byte
	for _, b := range bs {
		r = append(r, b...)
	}
	return r
}

// v4opts configures v4.
type v4opts struct {
	opts     []byte // IP options, padded to 4 with EOL
	flagFrag uint16 // flags+fragment offset word
	noL4Ck   bool   // leave the transport checksum 0
	ttl      uint8
}

// v4 builds an IPv4 packet around transport bytes l4 of proto, filling the
// header checksum and (unless o.noL4Ck or a fragment) the transport
// checksum with the reference implementation.
func v4(src, dst string, proto uint8, l4 []byte, o v4opts) []byte {
	opts := append([]byte(nil), o.opts...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	hl := 20 + len(opts)
	b := make([]byte, hl, hl+len(l4))
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hl+len(l4)))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	binary.BigEndian.PutUint16(b[6:], o.flagFrag)
	b[8] = 64
	if o.ttl != 0 {
		b[8] = o.ttl
	}
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	binary.BigEndian.PutUint16(b[10:], ^refSum(b[:hl], 0))
	l4 = append([]byte(nil), l4...)
	if !o.noL4Ck && o.flagFrag&0x3fff == 0 && len(l4) >= l4CkOff(proto)+2 && (proto == ProtoTCP || proto == ProtoUDP || proto == ProtoICMPv4) {
		off := l4CkOff(proto)
		binary.BigEndian.PutUint16(l4[off:], refL4Checksum(s[:], d[:], proto, l4, off))
	}
	return append(b, l4...)
}

// ext6 is one IPv6 extension header: its type and its bytes after the
// next-header byte (length byte included).
type ext6 struct {
	typ  uint8
	body []byte
}

// optsExt builds an 8*n8-byte Hop-by-Hop or Destination Options header
// holding one PadN option.
func optsExt(typ uint8, n8 int) ext6 {
	body := make([]byte, 8*n8-1)
	body[0] = byte(n8 - 1)
	body[1] = 1 // PadN
	body[2] = byte(8*n8 - 4)
	return ext6{typ, body}
}

// fragExt builds a fragment header with offset (bytes) and M.
func fragExt(offset uint16, more bool) ext6 {
	b := make([]byte, 7)
	v := offset &^ 7
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[1:], v)
	binary.BigEndian.PutUint32(b[3:], 0xabcdef01)
	return ext6{ProtoFragment, b}
}

// ahExt builds an AH header with a 12-byte ICV (length field 4: 24 bytes).
func ahExt() ext6 {
	b := make([]byte, 23)
	b[0] = 4 // (24/4)-2
	return ext6{ProtoAH, b}
}

// v6 builds an IPv6 packet with extension headers exts and transport bytes l4
// of proto, filling the transport checksum (unless noCk or a fragment is
// present).
func v6(src, dst string, exts []ext6, proto uint8, l4 []byte, noCk bool) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	b[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	frag := false
	prev := 6 // index of the next-header byte to fill
	for _, e := range exts {
		b[prev] = e.typ
		prev = len(b)
		b = append(b, 0)
		b = append(b, e.body...)
		if e.typ == ProtoFragment {
			frag = true
		}
	}
	b[prev] = proto
	l4 = append([]byte(nil), l4...)
	if !noCk && !frag && len(l4) >= l4CkOff(proto)+2 && (proto == ProtoTCP || proto == ProtoUDP || proto == ProtoICMPv6) {
		off := l4CkOff(proto)
		binary.BigEndian.PutUint16(l4[off:], refL4Checksum(s[:], d[:], proto, l4, off))
	}
	b = append(b, l4...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

// fixIPv4Checksum recomputes the IPv4 header checksum of b in place (used
// after corrupting a header on purpose).
func fixIPv4Checksum(b []byte) []byte {
	hl := int(b[0]&0xf) * 4
	if hl < 20 || hl > len(b) {
		return b
	}
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], ^refSum(b[:hl], 0))
	return b
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
