package xlat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// Addresses of the packet quoted in the ICMP errors of these tests: in IPv6
// from the server's embedded address to the client, in IPv4 from the server
// to the NAT's pool address (as the flow looked in each family).
var (
	q6src = "64:ff9b::c000:221"
	q6dst = "2001:db8::1"
	q4src = "192.0.2.33"
	q4dst = "198.51.100.2"
)

// innerFor is the Inner a NAT64 would fill in for the quoted packets below,
// translated to the family of src.
func innerFor(src, dst string, proto ipproto.Proto, echoReq bool) *Inner {
	in := &Inner{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: 80, DstPort: 61000}
	if proto == ipproto.ICMPv4 || proto == ipproto.ICMPv6 {
		in.SrcPort, in.DstPort = 0, 0
		if echoReq {
			in.SrcPort = 4444
		} else {
			in.DstPort = 4444
		}
	}
	return in
}

// expectL4 returns what the complete quoted segment l4 (proto, in the
// original family) becomes once translated for addresses src, dst (4 or 16
// bytes) with the ports of in: ports or echo identifier set, ICMP type
// mapped, checksum recomputed in full by the reference (a UDP checksum of 0
// stays 0).
func expectL4(l4 []byte, proto ipproto.Proto, src, dst []byte, in *Inner) []byte {
	e := append([]byte(nil), l4...)
	nproto := proto
	switch proto {
	case ipproto.TCP, ipproto.UDP:
		binary.BigEndian.PutUint16(e[0:], in.SrcPort)
		binary.BigEndian.PutUint16(e[2:], in.DstPort)
	case ipproto.ICMPv4, ipproto.ICMPv6:
		req := e[0] == 8 || e[0] == 128
		id := in.DstPort
		if req {
			id = in.SrcPort
		}
		binary.BigEndian.PutUint16(e[4:], id)
		m := map[uint8]uint8{8: 128, 0: 129, 128: 8, 129: 0}
		e[0] = m[e[0]]
		nproto = ipproto.ICMPv6
		if proto == ipproto.ICMPv6 {
			nproto = ipproto.ICMPv4
		}
	}
	if proto == ipproto.UDP && binary.BigEndian.Uint16(l4[6:]) == 0 {
		return e
	}
	binary.BigEndian.PutUint16(e[ckOff(nproto):], refL4Checksum(src, dst, nproto, e))
	return e
}

// checkQuote checks the translated quoted segment got against the expected
// complete segment want (checksum as a value).
func checkQuote(t *testing.T, got, want []byte, proto ipproto.Proto) {
	t.Helper()
	if len(got) > len(want) {
		t.Fatalf("quote %d bytes, longer than the segment (%d)", len(got), len(want))
	}
	w := want[:len(got)]
	g := append([]byte(nil), got...)
	off := ckOff(proto)
	if len(g) >= off+2 {
		if !sameCk(binary.BigEndian.Uint16(g[off:]), binary.BigEndian.Uint16(w[off:])) {
			t.Errorf("quoted checksum %#04x, full recompute %#04x", binary.BigEndian.Uint16(g[off:]), binary.BigEndian.Uint16(w[off:]))
		}
		copy(g[off:off+2], w[off:off+2])
	}
	if !bytes.Equal(g, w) {
		t.Errorf("quote:\n got %x\nwant %x", g, w)
	}
}

// quote6 is an IPv6 packet to be quoted in an ICMPv6 error: the complete
// packet, and how many of its bytes the error carries (0: all).
type quote6 struct {
	name string
	pkt  []byte
	cut  int
}

func quotes6() []quote6 {
	tcp := mk6(q6src, q6dst, ipproto.TCP, tcpSeg(80, 40000, 5, 6, ipproto.TCPACK, optTS(), seq(200)), v6cfg{tc: 0x28, hop: 60})
	udp := mk6(q6src, q6dst, ipproto.UDP, udpDgram(80, 40000, seq(100)), v6cfg{hop: 61})
	return []quote6{
		{"tcp", tcp, 0},
		{"tcp cut after 8 bytes", tcp, 48},
		{"tcp cut after 20 bytes", tcp, 60},
		{"tcp cut in the data", tcp, 111},
		{"tcp large, cut to 576", mk6(q6src, q6dst, ipproto.TCP, tcpSeg(80, 40000, 5, 6, ipproto.TCPACK, nil, seq(1200)), v6cfg{hop: 3}), 0},
		{"udp", udp, 0},
		{"udp cut after the header", udp, 48},
		{"udp checksum 0", mk6(q6src, q6dst, ipproto.UDP, udpDgram(80, 40000, seq(10)), v6cfg{noCk: true}), 0},
		{"udp with hop-by-hop", mk6(q6src, q6dst, ipproto.UDP, udpDgram(80, 40000, seq(10)), v6cfg{exts: []ext6{optsExt(ipproto.HopByHop, 2)}}), 0},
		{"echo request", mk6(q6src, q6dst, ipproto.ICMPv6, icmpBytes(128, 0, echoRest(99, 1), seq(30)), v6cfg{hop: 5}), 0},
		{"echo reply cut", mk6(q6src, q6dst, ipproto.ICMPv6, icmpBytes(129, 0, echoRest(99, 1), seq(300)), v6cfg{hop: 5}), 60},
	}
}

// err6 builds an ICMPv6 error from a router to the embedded address of the
// server quoting q.
func err6(typ, code uint8, rest uint32, q []byte) []byte {
	return mk6("2001:db8:ffff::1", "64:ff9b::c000:221", ipproto.ICMPv6, icmpBytes(typ, code, rest, q), v6cfg{tc: 0xc0, hop: 64})
}

type icmpMap struct {
	typ, code uint8
	rest      uint32
	want      Reason
	wtyp      uint8
	wcode     uint8
	wrest     uint32
}

var map6to4 = []icmpMap{
	{1, 0, 0, Ok, 3, 1, 0},
	{1, 1, 0, Ok, 3, 10, 0},
	{1, 2, 0, Ok, 3, 1, 0},
	{1, 3, 0, Ok, 3, 1, 0},
	{1, 4, 0, Ok, 3, 3, 0},
	{1, 5, 0, ICMPNoMapping, 0, 0, 0},
	{1, 6, 0, ICMPNoMapping, 0, 0, 0},
	{2, 0, 1500, Ok, 3, 4, 1480},
	{2, 0, 1280, Ok, 3, 4, 1260},
	{2, 0, 100000, Ok, 3, 4, 65535},
	{2, 0, 50, Ok, 3, 4, 68},
	{3, 0, 0, Ok, 11, 0, 0},
	{3, 1, 0, Ok, 11, 1, 0},
	{4, 0, 0, Ok, 12, 0, 0 << 24},
	{4, 0, 1, Ok, 12, 0, 1 << 24},
	{4, 0, 2, ICMPNoMapping, 0, 0, 0},
	{4, 0, 3, ICMPNoMapping, 0, 0, 0},
	{4, 0, 4, Ok, 12, 0, 2 << 24},
	{4, 0, 5, Ok, 12, 0, 2 << 24},
	{4, 0, 6, Ok, 12, 0, 9 << 24},
	{4, 0, 7, Ok, 12, 0, 8 << 24},
	{4, 0, 8, Ok, 12, 0, 12 << 24},
	{4, 0, 23, Ok, 12, 0, 12 << 24},
	{4, 0, 24, Ok, 12, 0, 16 << 24},
	{4, 0, 39, Ok, 12, 0, 16 << 24},
	{4, 0, 40, ICMPNoMapping, 0, 0, 0},
	{4, 0, 0xffffffff, ICMPNoMapping, 0, 0, 0},
	{4, 1, 40, Ok, 3, 2, 0},
	{4, 2, 40, ICMPNoMapping, 0, 0, 0},
	{4, 3, 0, ICMPNoMapping, 0, 0, 0},
	{100, 0, 0, Unsupported, 0, 0, 0}, // not an error for header.Parsed
}

func TestToIPv4ICMPError(t *testing.T) {
	for _, m := range map6to4 {
		for _, q := range quotes6() {
			if m.typ != 1 && m.typ != 2 && q.name != "tcp" && q.name != "echo request" {
				continue // every quote with two types, every type with two quotes
			}
			checkToIPv4Error(t, m, q)
		}
	}
}

func checkToIPv4Error(t *testing.T, m icmpMap, q quote6) {
	t.Helper()
	var qp header.Parsed
	if r := qp.Decode(q.pkt); r != header.Ok {
		t.Fatalf("%s: quote does not decode: %v", q.name, r)
	}
	full := append([]byte(nil), qp.L4()...)
	ulen := len(full)
	qproto := qp.Proto
	tc, hop := qp.IPv6().TrafficClass(), qp.IPv6().HopLimit()
	qb := q.pkt
	if q.cut != 0 {
		qb = qb[:q.cut]
	}
	pkt := err6(m.typ, m.code, m.rest, qb)
	in := innerFor(q4src, q4dst, qproto, qp.ICMPType == 128)
	out, r := ToIPv4(pkt, a4src, a4dst, in)
	if r != m.want {
		t.Errorf("type %d code %d rest %d, quote %s: reason %v, want %v", m.typ, m.code, m.rest, q.name, r, m.want)
		return
	}
	if r != Ok {
		return
	}
	p := mustDecode(t, out)
	ip := header.IPv4(out)
	if p.Proto != ipproto.ICMPv4 || !p.ICMPError || p.Src != a4src || p.Dst != a4dst || ip.TOS() != 0xc0 || ip.TTL() != 64 ||
		ip.IHL() != 5 || int(ip.TotalLength()) != len(out) || len(out) > 576 || ip.DontFragment() {
		t.Errorf("%s: outer header %x", q.name, out[:20])
	}
	icmp := p.L4()
	if icmp[0] != m.wtyp || icmp[1] != m.wcode || binary.BigEndian.Uint32(icmp[4:]) != m.wrest {
		t.Errorf("type %d code %d rest %d: got %d %d %d, want %d %d %d", m.typ, m.code, m.rest,
			icmp[0], icmp[1], binary.BigEndian.Uint32(icmp[4:]), m.wtyp, m.wcode, m.wrest)
	}
	if c := refSum(icmp, 0); c != 0xffff {
		t.Errorf("%s: ICMP checksum does not verify", q.name)
	}
	var ip2 header.Parsed
	if r := ip2.DecodeInner(p.Payload()); r != header.Ok {
		t.Fatalf("%s: quote does not decode: %v", q.name, r)
	}
	iq := header.IPv4(ip2.Buf)
	nproto := qproto
	if qproto == ipproto.ICMPv6 {
		nproto = ipproto.ICMPv4
	}
	if ip2.Version != 4 || ip2.IPHeaderLen != 20 || ip2.Src != in.Src || ip2.Dst != in.Dst || ip2.Proto != nproto ||
		int(iq.TotalLength()) != 20+ulen || iq.TOS() != tc || iq.TTL() != hop || iq.DontFragment() != (20+ulen > 1260) {
		t.Errorf("%s: quoted header %x", q.name, ip2.Buf[:20])
	}
	want := min(len(qb)-(qp.L4Off), 576-48)
	if len(ip2.L4()) != want {
		t.Errorf("%s: quoted segment %d bytes, want %d", q.name, len(ip2.L4()), want)
	}
	is, id := in.Src.As4(), in.Dst.As4()
	checkQuote(t, ip2.L4(), expectL4(full, qproto, is[:], id[:], in), nproto)
}

// quote4 is an IPv4 packet to be quoted in an ICMP error.
type quote4 struct {
	name string
	pkt  []byte
	cut  int
}

func quotes4() []quote4 {
	tcp := mk4(q4src, q4dst, ipproto.TCP, tcpSeg(80, 61000, 5, 6, ipproto.TCPACK, optTS(), seq(200)), v4cfg{tos: 0x28, ttl: 60, flagFrag: 0x4000})
	udp := mk4(q4src, q4dst, ipproto.UDP, udpDgram(80, 61000, seq(100)), v4cfg{ttl: 61})
	return []quote4{
		{"tcp", tcp, 0},
		{"tcp cut after 8 bytes", tcp, 28},
		{"tcp cut after 20 bytes", tcp, 40},
		{"tcp cut in the data", tcp, 91},
		{"tcp large, cut to 1280", mk4(q4src, q4dst, ipproto.TCP, tcpSeg(80, 61000, 5, 6, ipproto.TCPACK, nil, seq(1400)), v4cfg{ttl: 3}), 0},
		{"udp", udp, 0},
		{"udp cut after the header", udp, 28},
		{"udp checksum 0", mk4(q4src, q4dst, ipproto.UDP, udpDgram(80, 61000, seq(10)), v4cfg{noCk: true}), 0},
		{"udp with ip options", mk4(q4src, q4dst, ipproto.UDP, udpDgram(80, 61000, seq(10)), v4cfg{opts: []byte{1, 1, 1, 1, 1, 1, 1, 0}}), 0},
		{"echo", mk4(q4src, q4dst, ipproto.ICMPv4, icmpBytes(8, 0, echoRest(99, 1), seq(30)), v4cfg{ttl: 5}), 0},
		{"echo reply cut", mk4(q4src, q4dst, ipproto.ICMPv4, icmpBytes(0, 0, echoRest(99, 1), seq(300)), v4cfg{ttl: 5}), 40},
	}
}

// err4 builds an ICMPv4 error from a router to the pool address quoting q.
func err4(typ, code uint8, rest uint32, q []byte) []byte {
	return mk4("203.0.113.1", "198.51.100.2", ipproto.ICMPv4, icmpBytes(typ, code, rest, q), v4cfg{tos: 0xc0, ttl: 64})
}

var map4to6 = []icmpMap{
	{3, 0, 0, Ok, 1, 0, 0},
	{3, 1, 0, Ok, 1, 0, 0},
	{3, 2, 0, Ok, 4, 1, 6},
	{3, 3, 0, Ok, 1, 4, 0},
	{3, 4, 1400, Ok, 2, 0, 1420},
	{3, 4, 1260, Ok, 2, 0, 1280},
	{3, 4, 576, Ok, 2, 0, 1280},
	{3, 4, 0, Ok, 2, 0, 1280}, // plateau below the quoted length, raised to 1280
	{3, 5, 0, Ok, 1, 0, 0},
	{3, 6, 0, Ok, 1, 0, 0},
	{3, 7, 0, Ok, 1, 0, 0},
	{3, 8, 0, Ok, 1, 0, 0},
	{3, 9, 0, Ok, 1, 1, 0},
	{3, 10, 0, Ok, 1, 1, 0},
	{3, 11, 0, Ok, 1, 0, 0},
	{3, 12, 0, Ok, 1, 0, 0},
	{3, 13, 0, Ok, 1, 1, 0},
	{3, 14, 0, ICMPNoMapping, 0, 0, 0},
	{3, 15, 0, Ok, 1, 1, 0},
	{3, 16, 0, ICMPNoMapping, 0, 0, 0},
	{4, 0, 0, ICMPNoMapping, 0, 0, 0}, // source quench
	{5, 1, 0, ICMPNoMapping, 0, 0, 0}, // redirect
	{11, 0, 0, Ok, 3, 0, 0},
	{11, 1, 0, Ok, 3, 1, 0},
	{12, 0, 0 << 24, Ok, 4, 0, 0},
	{12, 0, 1 << 24, Ok, 4, 0, 1},
	{12, 0, 2 << 24, Ok, 4, 0, 4},
	{12, 0, 3 << 24, Ok, 4, 0, 4},
	{12, 0, 4 << 24, ICMPNoMapping, 0, 0, 0},
	{12, 0, 6 << 24, ICMPNoMapping, 0, 0, 0},
	{12, 0, 8 << 24, Ok, 4, 0, 7},
	{12, 0, 9 << 24, Ok, 4, 0, 6},
	{12, 0, 10 << 24, ICMPNoMapping, 0, 0, 0},
	{12, 0, 12 << 24, Ok, 4, 0, 8},
	{12, 0, 15 << 24, Ok, 4, 0, 8},
	{12, 0, 16 << 24, Ok, 4, 0, 24},
	{12, 0, 19 << 24, Ok, 4, 0, 24},
	{12, 0, 20 << 24, ICMPNoMapping, 0, 0, 0},
	{12, 1, 0, ICMPNoMapping, 0, 0, 0},
	{12, 2, 8 << 24, Ok, 4, 0, 7},
	{12, 3, 0, ICMPNoMapping, 0, 0, 0},
}

func TestToIPv6ICMPError(t *testing.T) {
	for _, m := range map4to6 {
		for _, q := range quotes4() {
			if m.typ != 3 && q.name != "tcp" && q.name != "echo" {
				continue
			}
			checkToIPv6Error(t, m, q)
		}
	}
}

func checkToIPv6Error(t *testing.T, m icmpMap, q quote4) {
	t.Helper()
	var qp header.Parsed
	if r := qp.Decode(q.pkt); r != header.Ok {
		t.Fatalf("%s: quote does not decode: %v", q.name, r)
	}
	full := append([]byte(nil), qp.L4()...)
	ulen := len(full)
	qproto := qp.Proto
	tos, ttl := qp.IPv4().TOS(), qp.IPv4().TTL()
	qb := q.pkt
	if q.cut != 0 {
		qb = qb[:q.cut]
	}
	pkt := withRoom(err4(m.typ, m.code, m.rest, qb), 40)
	in := innerFor(q6src, q6dst, qproto, qp.ICMPType == 8)
	out, r := ToIPv6(pkt, a6src, a6dst, in)
	if r != m.want {
		t.Errorf("type %d code %d rest %d, quote %s: reason %v, want %v", m.typ, m.code, m.rest, q.name, r, m.want)
		return
	}
	if r != Ok {
		return
	}
	p := mustDecode(t, out)
	ip := header.IPv6(out)
	if p.Proto != ipproto.ICMPv6 || !p.ICMPError || p.Src != a6src || p.Dst != a6dst || ip.TrafficClass() != 0xc0 ||
		ip.HopLimit() != 64 || ip.FlowLabel() != 0 || int(ip.PayloadLength()) != len(out)-40 || len(out) > 1280 {
		t.Errorf("%s: outer header %x", q.name, out[:40])
	}
	icmp := p.L4()
	wrest := m.wrest
	if m.typ == 3 && m.code == 4 && m.rest == 0 {
		// RFC 1191 plateau below the quoted Total Length, + 20, >= 1280.
		wrest = max(uint32(plateauBelow(uint16(len(q.pkt))))+20, 1280)
	}
	if icmp[0] != m.wtyp || icmp[1] != m.wcode || binary.BigEndian.Uint32(icmp[4:]) != wrest {
		t.Errorf("type %d code %d rest %d: got %d %d %d, want %d %d %d", m.typ, m.code, m.rest,
			icmp[0], icmp[1], binary.BigEndian.Uint32(icmp[4:]), m.wtyp, m.wcode, wrest)
	}
	checkL4(t, p)
	var ip2 header.Parsed
	if r := ip2.DecodeInner(p.Payload()); r != header.Ok {
		t.Fatalf("%s: quote does not decode: %v", q.name, r)
	}
	iq := header.IPv6(ip2.Buf)
	nproto := qproto
	if qproto == ipproto.ICMPv4 {
		nproto = ipproto.ICMPv6
	}
	if ip2.Version != 6 || ip2.IPHeaderLen != 40 || ip2.Src != in.Src || ip2.Dst != in.Dst || ip2.Proto != nproto ||
		int(iq.PayloadLength()) != ulen || iq.TrafficClass() != tos || iq.HopLimit() != ttl || iq.FlowLabel() != 0 {
		t.Errorf("%s: quoted header %x", q.name, ip2.Buf[:40])
	}
	want := min(len(qb)-qp.L4Off, 1280-88)
	if len(ip2.L4()) != want {
		t.Errorf("%s: quoted segment %d bytes, want %d", q.name, len(ip2.L4()), want)
	}
	is, id := in.Src.As16(), in.Dst.As16()
	checkQuote(t, ip2.L4(), expectL4(full, qproto, is[:], id[:], in), nproto)
}

func TestICMPErrorReasons(t *testing.T) {
	tcp6 := mk6(q6src, q6dst, ipproto.TCP, tcpSeg(80, 40000, 5, 6, ipproto.TCPACK, nil, seq(20)), v6cfg{})
	tcp4 := mk4(q4src, q4dst, ipproto.TCP, tcpSeg(80, 61000, 5, 6, ipproto.TCPACK, nil, seq(20)), v4cfg{})
	in4 := innerFor(q4src, q4dst, ipproto.TCP, false)
	in6 := innerFor(q6src, q6dst, ipproto.TCP, false)
	cases6 := []struct {
		name string
		pkt  []byte
		in   *Inner
		want Reason
	}{
		{"no inner", err6(1, 4, 0, tcp6), nil, InnerMissing},
		{"inner of the wrong family", err6(1, 4, 0, tcp6), in6, BadAddress},
		{"quote too short", err6(1, 4, 0, tcp6[:47]), in4, Malformed},
		{"quote is ipv4", err6(1, 4, 0, tcp4), in4, Malformed},
		{"quote is a fragment", err6(1, 4, 0, mk6(q6src, q6dst, ipproto.UDP, udpDgram(1, 2, seq(8)), v6cfg{exts: []ext6{fragExt(0, true)}})), in4, Fragment},
		{"quote has a source route", err6(1, 4, 0, mk6(q6src, q6dst, ipproto.UDP, udpDgram(1, 2, seq(8)), v6cfg{exts: []ext6{routingExt(2)}})), in4, SourceRoute},
		{"quote is esp", err6(1, 4, 0, mk6(q6src, q6dst, ipproto.ESP, seq(20), v6cfg{})), in4, Unsupported},
		{"quote is a neighbor solicitation", err6(1, 4, 0, mk6(q6src, q6dst, ipproto.ICMPv6, icmpBytes(135, 0, 0, seq(16)), v6cfg{})), in4, Unsupported},
		{"quote is an error", err6(1, 4, 0, err6(1, 4, 0, tcp6)), in4, Malformed},
		{"error that is a first fragment", mk6("2001:db8:ffff::1", "64:ff9b::c000:221", ipproto.ICMPv6, icmpBytes(1, 4, 0, tcp6), v6cfg{exts: []ext6{fragExt(0, true)}}), in4, Fragment},
		{"error in an atomic fragment (RFC 6946 §4)", mk6("2001:db8:ffff::1", "64:ff9b::c000:221", ipproto.ICMPv6, icmpBytes(1, 4, 0, tcp6), v6cfg{exts: []ext6{fragExt(0, false)}}), in4, Ok},
	}
	for _, c := range cases6 {
		if out, r := ToIPv4(clonePkt(c.pkt), a4src, a4dst, c.in); r != c.want || (r != Ok) != (out == nil) {
			t.Errorf("ToIPv4 %s: %v, want %v", c.name, r, c.want)
		}
	}
	cases4 := []struct {
		name string
		pkt  []byte
		room int
		in   *Inner
		want Reason
	}{
		{"no inner", err4(3, 3, 0, tcp4), 40, nil, InnerMissing},
		{"inner of the wrong family", err4(3, 3, 0, tcp4), 40, in4, BadAddress},
		{"no room", err4(3, 3, 0, tcp4), 39, in6, TooBig},
		{"room enough (options)", mk4("203.0.113.1", "198.51.100.2", ipproto.ICMPv4, icmpBytes(3, 3, 0, tcp4), v4cfg{opts: make([]byte, 40)}), 0, in6, Ok},
		{"quote too short", err4(3, 3, 0, tcp4[:27]), 40, in6, Malformed},
		{"quote bad header checksum", err4(3, 3, 0, func() []byte { b := clonePkt(tcp4); b[10]++; return b }()), 40, in6, Malformed},
		{"quote is ipv6", err4(3, 3, 0, tcp6), 40, in6, Malformed},
		{"quote is a fragment", err4(3, 3, 0, mk4(q4src, q4dst, ipproto.UDP, udpDgram(1, 2, seq(8)), v4cfg{flagFrag: 0x2000})), 40, in6, Fragment},
		{"quote is gre", err4(3, 3, 0, mk4(q4src, q4dst, 47, seq(20), v4cfg{})), 40, in6, Unsupported},
		{"quote is a timestamp", err4(3, 3, 0, mk4(q4src, q4dst, ipproto.ICMPv4, icmpBytes(13, 0, 0, seq(12)), v4cfg{})), 40, in6, Unsupported},
		{"quote is an error", err4(3, 3, 0, err4(3, 3, 0, tcp4)), 40, in6, Malformed},
		{"error is a fragment", mk4("203.0.113.1", "198.51.100.2", ipproto.ICMPv4, icmpBytes(3, 3, 0, tcp4), v4cfg{flagFrag: 0x2000}), 40, in6, Fragment},
	}
	for _, c := range cases4 {
		if out, r := ToIPv6(withRoom(c.pkt, c.room), a6src, a6dst, c.in); r != c.want || (r != Ok) != (out == nil) {
			t.Errorf("ToIPv6 %s: %v, want %v", c.name, r, c.want)
		}
	}
}

// TestICMPExtensions: RFC 4884 length attributes cut the quote, and the
// extension structure after it is not carried over. The quoted packets claim
// more bytes than are quoted, so that only the attribute tells where the
// quote ends.
func TestICMPExtensions(t *testing.T) {
	tcp6 := mk6(q6src, q6dst, ipproto.TCP, tcpSeg(80, 40000, 5, 6, ipproto.TCPACK, nil, seq(20)), v6cfg{payload: 1000}) // 80 bytes of 1040
	q := append(clonePkt(tcp6), make([]byte, 48)...)                                                                    // pad to 128, then
	q = append(q, 0x20, 0, 0xaa, 0xbb, 0, 8, 1, 1, 1, 2, 3, 4)                                                          // an extension
	out, r := ToIPv4(err6(3, 0, uint32(128/8)<<24, q), a4src, a4dst, innerFor(q4src, q4dst, ipproto.TCP, false))
	if r != Ok {
		t.Fatal(r)
	}
	if len(out) != 20+8+20+(128-40) || out[20+5] != 0 {
		t.Errorf("ICMPv4 with the extension removed: %d bytes, length attribute %d", len(out), out[25])
	}
	tcp4 := mk4(q4src, q4dst, ipproto.TCP, tcpSeg(80, 61000, 5, 6, ipproto.TCPACK, nil, seq(20)), v4cfg{total: 1000}) // 60 bytes of 1000
	q = append(clonePkt(tcp4), make([]byte, 68)...)
	q = append(q, 0x20, 0, 0xaa, 0xbb, 0, 8, 1, 1, 1, 2, 3, 4)
	out, r = ToIPv6(withRoom(err4(11, 0, uint32(128/4)<<16, q), 40), a6src, a6dst, innerFor(q6src, q6dst, ipproto.TCP, false))
	if r != Ok {
		t.Fatal(r)
	}
	if len(out) != 40+8+40+(128-20) || out[40+4] != 0 {
		t.Errorf("ICMPv6 with the extension removed: %d bytes, length attribute %d", len(out), out[44])
	}
}
