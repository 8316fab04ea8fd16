package xlat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// orig is what the tests compare a translation with, read from the input
// before translation rewrites it in place.
type orig struct {
	tos, ttl uint8 // TOS/Traffic Class, TTL/Hop Limit
}

// origL4 decodes the input packet in and returns a copy of its transport
// segment and the fields translation keeps.
func origL4(t *testing.T, in []byte) ([]byte, orig) {
	t.Helper()
	var p header.Parsed
	if r := p.Decode(in); r != header.Ok {
		t.Fatalf("test packet does not decode: %v", r)
	}
	o := orig{tos: p.IPv4().TOS(), ttl: p.IPv4().TTL()}
	if p.Version == 6 {
		o = orig{tos: p.IPv6().TrafficClass(), ttl: p.IPv6().HopLimit()}
	}
	return append([]byte(nil), p.L4()...), o
}

// checkSameL4 checks that the translated segment got equals the original
// want except for the checksum (compared against a full recompute by
// checkL4) and, for ICMP, the type byte.
func checkSameL4(t *testing.T, got, want []byte, proto ipproto.Proto) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("transport length %d, want %d", len(got), len(want))
	}
	g, w := append([]byte(nil), got...), append([]byte(nil), want...)
	off := ckOff(proto)
	g[off], g[off+1], w[off], w[off+1] = 0, 0, 0, 0
	if proto == ipproto.ICMPv4 || proto == ipproto.ICMPv6 {
		g[0], w[0] = 0, 0
	}
	if !bytes.Equal(g, w) {
		t.Errorf("transport bytes changed:\n got %x\nwant %x", g, w)
	}
}

func TestToIPv4(t *testing.T) {
	big := seq(1300)
	cases := []struct {
		name     string
		pkt      []byte
		want     Reason
		proto    ipproto.Proto // IPv4 protocol of the result
		icmpType uint8         // ICMPv4 type of the result
	}{
		{"tcp syn", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.TCP,
			tcpSeg(40000, 80, 1000, 0, ipproto.TCPSYN, []byte{2, 4, 5, 0xa0}, nil), v6cfg{tc: 0xb8, hop: 63}), Ok, ipproto.TCP, 0},
		{"tcp data", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.TCP,
			tcpSeg(40000, 80, 1000, 77, ipproto.TCPACK|ipproto.TCPPSH, nil, seq(333)), v6cfg{hop: 1}), Ok, ipproto.TCP, 0},
		{"tcp 1300 bytes DF", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.TCP,
			tcpSeg(1, 2, 3, 4, ipproto.TCPACK, nil, big), v6cfg{hop: 64}), Ok, ipproto.TCP, 0},
		{"udp", mk6("2001:db8::ffff:1", "64:ff9b::1.2.3.4", ipproto.UDP,
			udpDgram(5353, 53, seq(41)), v6cfg{tc: 3, hop: 255}), Ok, ipproto.UDP, 0},
		{"udp checksum 0 kept", mk6("2001:db8::1", "64:ff9b::1.2.3.4", ipproto.UDP,
			udpDgram(5353, 53, seq(41)), v6cfg{hop: 9, noCk: true}), Ok, ipproto.UDP, 0},
		{"echo request", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.ICMPv6,
			icmpBytes(128, 0, echoRest(0x1234, 7), seq(56)), v6cfg{hop: 64}), Ok, ipproto.ICMPv4, 8},
		{"echo reply", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.ICMPv6,
			icmpBytes(129, 0, echoRest(0x1234, 7), nil), v6cfg{hop: 64}), Ok, ipproto.ICMPv4, 0},
		{"echo reply all zero", mk6("::", "::", ipproto.ICMPv6,
			icmpBytes(129, 0, 0, nil), v6cfg{}), Ok, ipproto.ICMPv4, 0},
		{"hop-by-hop and destination options", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.TCP,
			tcpSeg(40000, 80, 1, 2, ipproto.TCPACK, nil, seq(10)),
			v6cfg{hop: 64, exts: []ext6{optsExt(ipproto.HopByHop, 1), optsExt(ipproto.DstOpts, 2)}}), Ok, ipproto.TCP, 0},
		{"routing segments left 0", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.UDP,
			udpDgram(1, 2, seq(3)), v6cfg{hop: 64, exts: []ext6{optsExt(ipproto.HopByHop, 1), routingExt(0), optsExt(ipproto.DstOpts, 1)}}), Ok, ipproto.UDP, 0},

		{"routing segments left 1", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.UDP,
			udpDgram(1, 2, seq(3)), v6cfg{exts: []ext6{routingExt(1)}}), SourceRoute, 0, 0},
		{"first fragment", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.UDP,
			udpDgram(1, 2, seq(3)), v6cfg{exts: []ext6{fragExt(0, true)}}), Fragment, 0, 0},
		{"later fragment", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.UDP,
			seq(16), v6cfg{exts: []ext6{fragExt(8, false)}}), Fragment, 0, 0},
		// RFC 6946 §4: an atomic fragment is a whole packet.
		{"atomic fragment", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.UDP,
			udpDgram(1, 2, seq(3)), v6cfg{exts: []ext6{fragExt(0, false)}}), Ok, ipproto.UDP, 0},
		{"authentication header", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.TCP,
			tcpSeg(1, 2, 3, 4, 0, nil, nil), v6cfg{exts: []ext6{ahExt()}}), Unsupported, 0, 0},
		{"esp", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.ESP, seq(40), v6cfg{}), Unsupported, 0, 0},
		{"sctp", mk6("2001:db8::1", "64:ff9b::c000:221", 132, seq(40), v6cfg{}), Unsupported, 0, 0},
		{"neighbor solicitation", mk6("fe80::1", "ff02::1:ff00:1", ipproto.ICMPv6,
			icmpBytes(135, 0, 0, seq(16)), v6cfg{hop: 255}), Unsupported, 0, 0},
		{"mld query", mk6("fe80::1", "ff02::1", ipproto.ICMPv6,
			icmpBytes(130, 0, 0, seq(16)), v6cfg{hop: 1}), Unsupported, 0, 0},
		{"ipv4 packet", mk4("192.0.2.1", "192.0.2.2", ipproto.UDP, udpDgram(1, 2, nil), v4cfg{}), Malformed, 0, 0},
		{"truncated", mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.TCP,
			tcpSeg(1, 2, 3, 4, 0, nil, nil), v6cfg{})[:50], Malformed, 0, 0},
		{"empty", nil, Malformed, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := append([]byte(nil), c.pkt...)
			var ol4 []byte
			var op orig
			if c.want == Ok {
				ol4, op = origL4(t, in)
			}
			out, r := ToIPv4(in, a4src, a4dst, nil)
			if r != c.want {
				t.Fatalf("reason %v, want %v", r, c.want)
			}
			if r != Ok {
				if out != nil {
					t.Errorf("non-nil result with reason %v", r)
				}
				return
			}
			p := mustDecode(t, out)
			ip := header.IPv4(out)
			tl := 20 + len(ol4)
			if p.Version != 4 || ip.IHL() != 5 || len(out) != tl || int(ip.TotalLength()) != tl {
				t.Errorf("version %d IHL %d len %d total %d, want 4 5 %d", p.Version, ip.IHL(), len(out), ip.TotalLength(), tl)
			}
			if ip.TOS() != op.tos || ip.TTL() != op.ttl {
				t.Errorf("TOS %#x TTL %d, want %#x %d", ip.TOS(), ip.TTL(), op.tos, op.ttl)
			}
			if df := tl > 1260; ip.DontFragment() != df || ip.MoreFragments() || ip.FragmentOffset() != 0 || (df && ip.ID() != 0) {
				t.Errorf("flags %d offset %d ID %d for %d bytes", ip.Flags(), ip.FragmentOffset(), ip.ID(), tl)
			}
			if p.Src != a4src || p.Dst != a4dst || p.Proto != c.proto {
				t.Errorf("src %v dst %v proto %d", p.Src, p.Dst, p.Proto)
			}
			if &out[len(out)-1] != &in[len(in)-1] {
				t.Errorf("result is not in place at the end of the input")
			}
			checkSameL4(t, p.L4(), ol4, c.proto)
			if c.proto == ipproto.ICMPv4 && p.ICMPType != c.icmpType {
				t.Errorf("ICMP type %d, want %d", p.ICMPType, c.icmpType)
			}
			if c.proto == ipproto.UDP && binary.BigEndian.Uint16(ol4[6:]) == 0 {
				if ck := header.UDP(p.L4()).Checksum(); ck != 0 {
					t.Errorf("UDP checksum 0 became %#x", ck)
				}
				return
			}
			checkL4(t, p)
		})
	}
}

func TestToIPv6(t *testing.T) {
	cases := []struct {
		name     string
		pkt      []byte
		room     int
		want     Reason
		proto    ipproto.Proto
		icmpType uint8
	}{
		{"tcp syn", mk4("192.0.2.33", "198.51.100.2", ipproto.TCP,
			tcpSeg(80, 40000, 9, 1001, ipproto.TCPSYN|ipproto.TCPACK, []byte{2, 4, 5, 0xb4}, nil), v4cfg{tos: 0x2e, ttl: 50}), 20, Ok, ipproto.TCP, 0},
		{"tcp data", mk4("192.0.2.33", "198.51.100.2", ipproto.TCP,
			tcpSeg(80, 40000, 9, 1001, ipproto.TCPACK, nil, seq(1400)), v4cfg{ttl: 1, flagFrag: 0x4000}), 20, Ok, ipproto.TCP, 0},
		{"ipv4 options", mk4("192.0.2.33", "198.51.100.2", ipproto.TCP,
			tcpSeg(80, 40000, 9, 1001, ipproto.TCPACK, nil, seq(99)), v4cfg{ttl: 7, opts: []byte{7, 7, 4, 0, 0, 0, 0}}), 20, Ok, ipproto.TCP, 0},
		{"ipv4 40 bytes of options, no room needed", mk4("192.0.2.33", "198.51.100.2", ipproto.UDP,
			udpDgram(53, 5353, seq(20)), v4cfg{ttl: 7, opts: make([]byte, 40)}), 0, Ok, ipproto.UDP, 0},
		{"udp", mk4("192.0.2.33", "198.51.100.2", ipproto.UDP,
			udpDgram(53, 5353, seq(77)), v4cfg{ttl: 64}), 20, Ok, ipproto.UDP, 0},
		{"udp checksum 0 computed", mk4("192.0.2.33", "198.51.100.2", ipproto.UDP,
			udpDgram(53, 5353, seq(77)), v4cfg{ttl: 64, noCk: true}), 20, Ok, ipproto.UDP, 0},
		{"udp checksum 0 odd length", mk4("192.0.2.33", "198.51.100.2", ipproto.UDP,
			udpDgram(53, 5353, seq(3)), v4cfg{ttl: 64, noCk: true}), 20, Ok, ipproto.UDP, 0},
		{"echo", mk4("192.0.2.33", "198.51.100.2", ipproto.ICMPv4,
			icmpBytes(8, 0, echoRest(77, 1), seq(56)), v4cfg{ttl: 64}), 20, Ok, ipproto.ICMPv6, 128},
		{"echo reply", mk4("192.0.2.33", "198.51.100.2", ipproto.ICMPv4,
			icmpBytes(0, 0, echoRest(77, 1), seq(3)), v4cfg{ttl: 64}), 20, Ok, ipproto.ICMPv6, 129},
		{"echo reply all zero", mk4("0.0.0.0", "0.0.0.0", ipproto.ICMPv4,
			icmpBytes(0, 0, 0, nil), v4cfg{}), 20, Ok, ipproto.ICMPv6, 129},

		{"no room", mk4("192.0.2.33", "198.51.100.2", ipproto.TCP,
			tcpSeg(80, 40000, 9, 1001, ipproto.TCPACK, nil, seq(10)), v4cfg{}), 19, TooBig, 0, 0},
		{"more fragments", mk4("192.0.2.33", "198.51.100.2", ipproto.UDP,
			udpDgram(53, 5353, seq(77)), v4cfg{flagFrag: 0x2000}), 20, Fragment, 0, 0},
		{"later fragment", mk4("192.0.2.33", "198.51.100.2", ipproto.UDP,
			seq(77), v4cfg{flagFrag: 0x0010}), 20, Fragment, 0, 0},
		{"timestamp", mk4("192.0.2.33", "198.51.100.2", ipproto.ICMPv4,
			icmpBytes(13, 0, 0, seq(12)), v4cfg{}), 20, Unsupported, 0, 0},
		{"address mask", mk4("192.0.2.33", "198.51.100.2", ipproto.ICMPv4,
			icmpBytes(17, 0, 0, seq(4)), v4cfg{}), 20, Unsupported, 0, 0},
		{"gre", mk4("192.0.2.33", "198.51.100.2", 47, seq(20), v4cfg{}), 20, Unsupported, 0, 0},
		{"ipv6 packet", mk6("2001:db8::1", "2001:db8::2", ipproto.UDP, udpDgram(1, 2, nil), v6cfg{}), 20, Malformed, 0, 0},
		{"bad header checksum", func() []byte {
			b := mk4("192.0.2.33", "198.51.100.2", ipproto.UDP, udpDgram(1, 2, nil), v4cfg{})
			b[10] ^= 1
			return b
		}(), 20, Malformed, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := withRoom(c.pkt, c.room)
			var ol4 []byte
			var op orig
			if c.want == Ok {
				ol4, op = origL4(t, in)
			}
			out, r := ToIPv6(in, a6src, a6dst, nil)
			if r != c.want {
				t.Fatalf("reason %v, want %v", r, c.want)
			}
			if r != Ok {
				if out != nil {
					t.Errorf("non-nil result with reason %v", r)
				}
				return
			}
			p := mustDecode(t, out)
			ip := header.IPv6(out)
			if p.Version != 6 || len(out) != 40+len(ol4) || int(ip.PayloadLength()) != len(ol4) || p.IPHeaderLen != 40 {
				t.Errorf("version %d len %d payload length %d header %d", p.Version, len(out), ip.PayloadLength(), p.IPHeaderLen)
			}
			if ip.TrafficClass() != op.tos || ip.HopLimit() != op.ttl || ip.FlowLabel() != 0 {
				t.Errorf("TC %#x hop %d flow %#x, want %#x %d 0", ip.TrafficClass(), ip.HopLimit(), ip.FlowLabel(), op.tos, op.ttl)
			}
			if p.Src != a6src || p.Dst != a6dst || p.Proto != c.proto {
				t.Errorf("src %v dst %v proto %d", p.Src, p.Dst, p.Proto)
			}
			if &out[0] != &in[0] {
				t.Errorf("result does not start at pkt[0]")
			}
			checkSameL4(t, p.L4(), ol4, c.proto)
			if c.proto == ipproto.ICMPv6 && p.ICMPType != c.icmpType {
				t.Errorf("ICMP type %d, want %d", p.ICMPType, c.icmpType)
			}
			checkL4(t, p)
		})
	}
}

func TestBadAddress(t *testing.T) {
	v6 := mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.UDP, udpDgram(1, 2, nil), v6cfg{})
	v4 := mk4("192.0.2.33", "198.51.100.2", ipproto.UDP, udpDgram(1, 2, nil), v4cfg{})
	if _, r := ToIPv4(clonePkt(v6), a6src, a4dst, nil); r != BadAddress {
		t.Errorf("ToIPv4 with an IPv6 source: %v", r)
	}
	if _, r := ToIPv4(clonePkt(v6), a4src, netip.Addr{}, nil); r != BadAddress {
		t.Errorf("ToIPv4 with a zero destination: %v", r)
	}
	if out, r := ToIPv4(clonePkt(v6), netip.AddrFrom16(a4src.As16()), a4dst, nil); r != Ok || mustDecode(t, out).Src != a4src {
		t.Errorf("ToIPv4 with a mapped source: %v", r)
	}
	if _, r := ToIPv6(withRoom(v4, 20), a4src, a6dst, nil); r != BadAddress {
		t.Errorf("ToIPv6 with an IPv4 source: %v", r)
	}
	if _, r := ToIPv6(withRoom(v4, 20), a6src, netip.Addr{}, nil); r != BadAddress {
		t.Errorf("ToIPv6 with a zero destination: %v", r)
	}
}

func clonePkt(b []byte) []byte { return append([]byte(nil), b...) }

// TestPortsAfterTranslation shows the intended use: translate, then set the
// ports (or echo identifier) with header.Parsed, which keeps the checksum.
func TestPortsAfterTranslation(t *testing.T) {
	in := mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.TCP,
		tcpSeg(40000, 80, 1, 2, ipproto.TCPACK, nil, seq(100)), v6cfg{hop: 64})
	out, r := ToIPv4(in, a4src, a4dst, nil)
	if r != Ok {
		t.Fatal(r)
	}
	p := mustDecode(t, out)
	if !p.SetSrcPort(61000) {
		t.Fatal("SetSrcPort")
	}
	p = mustDecode(t, out)
	if p.SrcPort != 61000 {
		t.Errorf("port %d", p.SrcPort)
	}
	checkL4(t, p)

	in = withRoom(mk4("192.0.2.33", "198.51.100.2", ipproto.ICMPv4, icmpBytes(0, 0, echoRest(61000, 3), seq(20)), v4cfg{}), 20)
	out, r = ToIPv6(in, a6dst, a6src, nil)
	if r != Ok {
		t.Fatal(r)
	}
	p = mustDecode(t, out)
	if p.DstPort != 61000 || !p.SetDstPort(4242) {
		t.Fatalf("echo reply identifier %d", p.DstPort)
	}
	p = mustDecode(t, out)
	if p.DstPort != 4242 {
		t.Errorf("identifier %d", p.DstPort)
	}
	checkL4(t, p)
}

// TestRoundTrip translates IPv6 to IPv4 and back and compares what survives
// translation: Traffic Class, Hop Limit, addresses, the transport segment
// (checksum as a value).
func TestRoundTrip(t *testing.T) {
	for _, pkt := range [][]byte{
		mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.TCP, tcpSeg(40000, 80, 1, 2, ipproto.TCPACK, optTS(), seq(500)), v6cfg{tc: 0x10, hop: 9, flow: 0x12345}),
		mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.UDP, udpDgram(40000, 80, seq(501)), v6cfg{hop: 9}),
		mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.ICMPv6, icmpBytes(128, 0, echoRest(1, 2), seq(9)), v6cfg{hop: 9}),
		mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.ICMPv6, icmpBytes(129, 0, echoRest(1, 2), seq(9)), v6cfg{hop: 9}),
		mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.UDP, udpDgram(40000, 80, seq(1)), v6cfg{hop: 9, exts: []ext6{optsExt(ipproto.HopByHop, 3)}}),
	} {
		checkRoundTrip(t, pkt)
	}
}

func optTS() []byte { return []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2} }

// checkRoundTrip translates the IPv6 packet pkt to IPv4 and back with its own
// addresses and checks that the surviving fields are unchanged. It returns
// quietly if pkt is not translated.
func checkRoundTrip(t *testing.T, pkt []byte) {
	t.Helper()
	var op header.Parsed
	if op.Decode(pkt) != header.Ok {
		return
	}
	ol4 := append([]byte(nil), op.L4()...)
	src, dst := op.Src, op.Dst
	tc, hop, proto := op.IPv6().TrafficClass(), op.IPv6().HopLimit(), op.Proto
	buf := withRoom(pkt, 40)
	out4, r := ToIPv4(buf, a4src, a4dst, nil)
	if r != Ok {
		return
	}
	out4 = withRoom(out4, 40)
	out6, r := ToIPv6(out4, src, dst, nil)
	if r != Ok {
		t.Fatalf("back to IPv6: %v", r)
	}
	p := mustDecode(t, out6)
	ip := header.IPv6(out6)
	if p.Src != src || p.Dst != dst || p.Proto != proto || ip.TrafficClass() != tc || ip.HopLimit() != hop {
		t.Errorf("round trip: %v %v %d %#x %d, want %v %v %d %#x %d", p.Src, p.Dst, p.Proto, ip.TrafficClass(), ip.HopLimit(), src, dst, proto, tc, hop)
	}
	l4 := p.L4()
	off := ckOff(proto)
	if len(l4) != len(ol4) || !bytes.Equal(l4[:off], ol4[:off]) || !bytes.Equal(l4[off+2:], ol4[off+2:]) ||
		!sameCk(binary.BigEndian.Uint16(l4[off:]), binary.BigEndian.Uint16(ol4[off:])) {
		t.Errorf("round trip transport:\n got %x\nwant %x", l4, ol4)
	}
}
