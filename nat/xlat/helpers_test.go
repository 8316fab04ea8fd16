package xlat

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/header"
)

// This file builds packets for the tests by plain byte manipulation, with a
// naive byte-at-a-time reference checksum (RFC 1071 §4.1 read literally),
// independent of the code under test.

// refSum is the naive ones'-complement sum of b (an odd byte padded with
// zero), folded to 16 bits.
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

// refPseudo is the naive sum of the IPv4 (12-byte) or IPv6 (40-byte)
// pseudo-header, built as bytes.
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

// ckOff is the checksum offset in the transport header of proto.
func ckOff(proto uint8) int {
	switch proto {
	case header.ProtoTCP:
		return 16
	case header.ProtoUDP:
		return 6
	}
	return 2
}

// refL4Checksum is the full recompute of the checksum transport segment l4
// of proto should carry, given the packet's addresses (4 or 16 bytes):
// the checksum field is taken as zero, ICMPv4 has no pseudo-header, and a
// UDP result of 0 is sent as 0xffff.
func refL4Checksum(src, dst []byte, proto uint8, l4 []byte) uint16 {
	c := append([]byte(nil), l4...)
	off := ckOff(proto)
	c[off], c[off+1] = 0, 0
	init := uint32(0)
	if proto != header.ProtoICMPv4 {
		init = refPseudo(src, dst, proto, len(l4))
	}
	r := ^refSum(c, init)
	if proto == header.ProtoUDP && r == 0 {
		r = 0xffff
	}
	return r
}

// sameCk reports whether two checksums are the same ones'-complement value
// (0x0000 and 0xffff both stand for zero, RFC 1624 §3).
func sameCk(a, b uint16) bool {
	return a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

func tcpSeg(sport, dport uint16, seq, ack uint32, flags uint8, opts, data []byte) []byte {
	o := append([]byte(nil), opts...)
	for len(o)%4 != 0 {
		o = append(o, 0)
	}
	h := make([]byte, 20, 20+len(o)+len(data))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = byte((20+len(o))/4) << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 29200)
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

// icmpBytes builds an ICMP or ICMPv6 message (checksum zero) with the 32-bit
// rest of header and data.
func icmpBytes(typ, code uint8, rest uint32, data []byte) []byte {
	h := []byte{typ, code, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[4:], rest)
	return append(h, data...)
}

func echoRest(id, seq uint16) uint32 { return uint32(id)<<16 | uint32(seq) }

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b
}

// v4cfg configures mk4.
type v4cfg struct {
	opts     []byte // IP options, padded to 4 with zero (EOL)
	flagFrag uint16 // flags and fragment offset word
	tos, ttl uint8
	id       uint16
	noCk     bool // leave the transport checksum as given
	total    int  // Total Length to claim instead of the real one (0: real)
}

// mk4 builds an IPv4 packet around transport bytes l4 of proto, with the
// header checksum and (unless c.noCk) the transport checksum computed by
// the reference.
func mk4(src, dst string, proto uint8, l4 []byte, c v4cfg) []byte {
	opts := append([]byte(nil), c.opts...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	hl := 20 + len(opts)
	b := make([]byte, hl, hl+len(l4))
	b[0] = 0x40 | byte(hl/4)
	b[1] = c.tos
	tl := hl + len(l4)
	if c.total != 0 {
		tl = c.total
	}
	binary.BigEndian.PutUint16(b[2:], uint16(tl))
	binary.BigEndian.PutUint16(b[4:], c.id)
	binary.BigEndian.PutUint16(b[6:], c.flagFrag)
	b[8] = c.ttl
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	binary.BigEndian.PutUint16(b[10:], ^refSum(b[:hl], 0))
	l4 = append([]byte(nil), l4...)
	if !c.noCk && len(l4) >= ckOff(proto)+2 {
		off := ckOff(proto)
		binary.BigEndian.PutUint16(l4[off:], refL4Checksum(s[:], d[:], proto, l4))
	}
	return append(b, l4...)
}

// ext6 is one IPv6 extension header: its type and its bytes after the
// next-header byte.
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

// routingExt builds a 24-byte type-0-shaped Routing header with segments
// left sl.
func routingExt(sl uint8) ext6 {
	body := make([]byte, 23)
	body[0] = 2 // (24/8)-1
	body[1] = 0 // routing type
	body[2] = sl
	return ext6{header.ProtoRouting, body}
}

func fragExt(offset uint16, more bool) ext6 {
	b := make([]byte, 7)
	v := offset &^ 7
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[1:], v)
	binary.BigEndian.PutUint32(b[3:], 0xabcdef01)
	return ext6{header.ProtoFragment, b}
}

func ahExt() ext6 {
	b := make([]byte, 23)
	b[0] = 4
	return ext6{header.ProtoAH, b}
}

// v6cfg configures mk6.
type v6cfg struct {
	exts    []ext6
	tc, hop uint8
	flow    uint32
	noCk    bool
	payload int // Payload Length to claim instead of the real one (0: real)
}

// mk6 builds an IPv6 packet with extension headers and transport bytes l4 of
// proto, the transport checksum (unless c.noCk) computed by the reference.
func mk6(src, dst string, proto uint8, l4 []byte, c v6cfg) []byte {
	b := make([]byte, 40)
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(c.tc)<<20|c.flow&0xfffff)
	b[7] = c.hop
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	prev := 6
	for _, e := range c.exts {
		b[prev] = e.typ
		prev = len(b)
		b = append(b, 0)
		b = append(b, e.body...)
	}
	b[prev] = proto
	l4 = append([]byte(nil), l4...)
	if !c.noCk && len(l4) >= ckOff(proto)+2 {
		off := ckOff(proto)
		binary.BigEndian.PutUint16(l4[off:], refL4Checksum(s[:], d[:], proto, l4))
	}
	b = append(b, l4...)
	pl := len(b) - 40
	if c.payload != 0 {
		pl = c.payload
	}
	binary.BigEndian.PutUint16(b[4:], uint16(pl))
	return b
}

// withRoom returns a copy of b in an array with extra bytes of capacity.
func withRoom(b []byte, extra int) []byte {
	r := make([]byte, len(b), len(b)+extra)
	copy(r, b)
	return r
}

// checkL4 checks that the transport checksum of the decoded packet p equals
// the naive full recompute (as the same ones'-complement value).
func checkL4(t *testing.T, p *header.Parsed) {
	t.Helper()
	l4 := p.L4()
	if len(l4) < ckOff(p.Proto)+2 {
		t.Fatalf("no transport checksum in %x", p.Buf)
	}
	var s, d []byte
	if p.Version == 4 {
		s, d = p.Buf[12:16], p.Buf[16:20]
	} else {
		s, d = p.Buf[8:24], p.Buf[24:40]
	}
	got := binary.BigEndian.Uint16(l4[ckOff(p.Proto):])
	want := refL4Checksum(s, d, p.Proto, l4)
	if !sameCk(got, want) {
		t.Errorf("transport checksum %#04x, full recompute %#04x", got, want)
	}
	if !p.L4ChecksumValid() {
		t.Errorf("header.Parsed.L4ChecksumValid false")
	}
}

// mustDecode decodes b, failing the test if it does not decode.
func mustDecode(t *testing.T, b []byte) *header.Parsed {
	t.Helper()
	var p header.Parsed
	if r := p.Decode(b); r != header.Ok {
		t.Fatalf("output does not decode: %v: %x", r, b)
	}
	return &p
}

var (
	a4src = netip.MustParseAddr("198.51.100.2")
	a4dst = netip.MustParseAddr("192.0.2.33")
	a6src = netip.MustParseAddr("2001:db8::1")
	a6dst = netip.MustParseAddr("64:ff9b::c000:221")
)
