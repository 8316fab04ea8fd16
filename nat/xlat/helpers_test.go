package xlat

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/internal/refpkt"
	"github.com/natalg/natalg/nat/ipproto"
)

// The tests build packets with package refpkt (plain byte manipulation and
// a byte-at-a-time reference checksum, independent of the code under test);
// these are its builders with this package's defaults.

var (
	refSum     = refpkt.Sum
	sameCk     = refpkt.SameChecksum
	udpDgram   = refpkt.UDP
	icmpBytes  = refpkt.ICMP
	routingExt = refpkt.RoutingExt
	fragExt    = refpkt.FragmentExt
	ahExt      = refpkt.AHExt
)

// tcpSeg builds a TCP header (checksum zero, window 29200) with options and
// data.
func tcpSeg(sport, dport uint16, seq, ack uint32, flags ipproto.TCPFlags, opts, data []byte) []byte {
	return refpkt.TCP(sport, dport, seq, ack, uint8(flags), 29200, opts, data)
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
func mk4(src, dst string, proto ipproto.Proto, l4 []byte, c v4cfg) []byte {
	return refpkt.V4(src, dst, uint8(proto), l4, refpkt.V4Opts{Options: c.opts, FlagFrag: c.flagFrag, TOS: c.tos, TTL: c.ttl,
		ID: c.id, TotalLength: c.total, NoL4Checksum: c.noCk})
}

// ext6 is one IPv6 extension header.
type ext6 = refpkt.Ext

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
func mk6(src, dst string, proto ipproto.Proto, l4 []byte, c v6cfg) []byte {
	return refpkt.V6(src, dst, uint8(proto), l4, refpkt.V6Opts{Exts: c.exts, TrafficClass: c.tc, FlowLabel: c.flow, HopLimit: c.hop,
		PayloadLength: c.payload, NoL4Checksum: c.noCk})
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

// optsExt builds an 8*n8-byte Hop-by-Hop or Destination Options header
// (typ) holding one PadN option.
func optsExt(typ ipproto.Proto, n8 int) ext6 { return refpkt.OptionsExt(uint8(typ), n8) }

// refL4Checksum is the reference checksum transport segment l4 of proto
// should carry.
func refL4Checksum(src, dst []byte, proto ipproto.Proto, l4 []byte) uint16 {
	return refpkt.L4Checksum(src, dst, uint8(proto), l4)
}

// ckOff is the checksum's offset in the transport header of proto.
func ckOff(proto ipproto.Proto) int { return refpkt.ChecksumOffset(uint8(proto)) }
