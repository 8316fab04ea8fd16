package header

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/ipproto"
)

func TestIPv4View(t *testing.T) {
	b := v4(v4a, v4b, ipproto.UDP, udpDgram(1, 2, []byte("hello")), v4opts{opts: []byte{0x94, 4, 0, 0}, flagFrag: 0x4000, ttl: 17})
	h := IPv4(b)
	switch {
	case h.Version() != 4 || h.IHL() != 6 || h.HeaderLen() != 24:
		t.Fatal("version/ihl")
	case int(h.TotalLength()) != len(b) || h.ID() != 0x1234 || h.TTL() != 17 || h.Protocol() != ipproto.UDP:
		t.Fatal("fields")
	case !h.DontFragment() || h.MoreFragments() || h.IsFragment() || h.FragmentOffset() != 0:
		t.Fatal("flags")
	case h.Src() != netip.MustParseAddr(v4a) || h.Dst() != netip.MustParseAddr(v4b):
		t.Fatal("addrs")
	case string(h.Options()) != "\x94\x04\x00\x00" || len(h.Payload()) != 13:
		t.Fatal("options/payload")
	case !h.IsChecksumValid() || h.ComputeChecksum() != h.Checksum():
		t.Fatal("checksum")
	}
	check := func(what string) {
		t.Helper()
		if !h.IsChecksumValid() || h.ComputeChecksum() != h.Checksum() {
			t.Fatalf("%s: checksum %#04x, full %#04x", what, h.Checksum(), h.ComputeChecksum())
		}
	}
	h.SetTTL(1)
	check("SetTTL")
	h.SetTotalLength(0xffff)
	check("SetTotalLength")
	h.SetID(0)
	check("SetID")
	if !h.SetSrc(netip.MustParseAddr("255.255.255.255")) || h.Src().String() != "255.255.255.255" {
		t.Fatal("SetSrc")
	}
	check("SetSrc")
	if !h.SetDst(netip.MustParseAddr("::ffff:1.2.3.4")) || h.Dst().String() != "1.2.3.4" {
		t.Fatal("SetDst mapped")
	}
	check("SetDst")
	if h.SetDst(netip.MustParseAddr("::1")) {
		t.Fatal("SetDst v6 accepted")
	}
	// Fragment bits.
	binary.BigEndian.PutUint16(b[6:], 0x2000|100)
	if !h.MoreFragments() || !h.IsFragment() || h.FragmentOffset() != 800 {
		t.Fatal("fragment fields")
	}
}

func TestIPv6View(t *testing.T) {
	b := v6(v6a, v6b, []ext6{optsExt(ipproto.HopByHop, 1)}, ipproto.TCP, tcpSeg(1, 2, 3, 4, 0, nil, nil), false)
	b[0], b[1], b[2], b[3] = 0x6a, 0xbc, 0xde, 0xf1
	h := IPv6(b)
	switch {
	case h.Version() != 6 || h.TrafficClass() != 0xab || h.FlowLabel() != 0xcdef1:
		t.Fatal("version/tc/flow")
	case int(h.PayloadLength()) != len(b)-40 || h.NextHeader() != ipproto.HopByHop || h.HopLimit() != 64:
		t.Fatal("fields")
	case h.Src() != netip.MustParseAddr(v6a) || h.Dst() != netip.MustParseAddr(v6b) || len(h.Payload()) != len(b)-40:
		t.Fatal("addrs/payload")
	}
	h.SetHopLimit(3)
	h.SetPayloadLength(9)
	if h.HopLimit() != 3 || h.PayloadLength() != 9 || len(h.Payload()) != 9 {
		t.Fatal("setters")
	}
	if !h.SetSrc(netip.MustParseAddr("::ffff:1.2.3.4")) || h.Src() != netip.MustParseAddr("::ffff:1.2.3.4") {
		t.Fatal("SetSrc mapped")
	}
	if h.SetDst(netip.MustParseAddr("1.2.3.4")) || h.SetDst(netip.Addr{}) {
		t.Fatal("SetDst v4 accepted")
	}
}

// tcpValid verifies a TCP view's checksum over a fixed pseudo-header.
func tcpValid(seg []byte) bool {
	s, d := netip.MustParseAddr(v4a).As4(), netip.MustParseAddr(v4b).As4()
	return ^refSum(seg, refPseudo(s[:], d[:], ipproto.TCP, len(seg))) == 0
}

func TestTCPView(t *testing.T) {
	pkt := v4(v4a, v4b, ipproto.TCP, tcpSeg(1000, 2000, 0xdeadbeef, 0xfeedface, ipproto.TCPSYN|ipproto.TCPACK|ipproto.TCPECE, synOpts, []byte("x")), v4opts{})
	h := TCP(pkt[20:])
	switch {
	case h.SrcPort() != 1000 || h.DstPort() != 2000 || h.Seq() != 0xdeadbeef || h.Ack() != 0xfeedface:
		t.Fatal("ports/numbers")
	case h.DataOffset() != 10 || h.HeaderLen() != 40 || h.Flags() != ipproto.TCPSYN|ipproto.TCPACK|ipproto.TCPECE || h.Window() != 65535 || h.Urgent() != 0:
		t.Fatal("fields")
	case len(h.Options()) != 20 || string(h.Payload()) != "x" || !tcpValid(h):
		t.Fatal("options/payload/checksum")
	}
	for i, f := range []func(){
		func() { h.SetSrcPort(0) }, func() { h.SetDstPort(0xffff) }, func() { h.SetSeq(0) },
		func() { h.SetAck(0xffffffff) }, func() { h.SetWindow(1) },
	} {
		f()
		if !tcpValid(h) {
			t.Fatalf("setter %d broke the checksum", i)
		}
	}
	if h.SrcPort() != 0 || h.DstPort() != 0xffff || h.Seq() != 0 || h.Ack() != 0xffffffff || h.Window() != 1 {
		t.Fatal("setters did not write")
	}
	// A quoted 8-byte TCP header: fields written, no checksum to update.
	short := TCP(clone(h[:8]))
	short.SetSeq(42)
	short.SetAck(43) // out of range: no-op
	if short.Seq() != 42 || short.Ack() != 0 || short.Checksum() != 0 {
		t.Fatal("short view")
	}
}

func TestUDPView(t *testing.T) {
	pkt := v4(v4a, v4b, ipproto.UDP, udpDgram(53, 5353, []byte("answer")), v4opts{})
	h := UDP(pkt[20:])
	if h.SrcPort() != 53 || h.DstPort() != 5353 || h.Length() != 14 || string(h.Payload()) != "answer" || h.Checksum() == 0 {
		t.Fatal("fields")
	}
	h.SetSrcPort(1)
	h.SetDstPort(2)
	s, d := netip.MustParseAddr(v4a).As4(), netip.MustParseAddr(v4b).As4()
	if got, want := h.Checksum(), refL4Checksum(s[:], d[:], ipproto.UDP, h); got != want {
		t.Fatalf("checksum %#04x want %#04x", got, want)
	}
	h.SetChecksum(0)
	h.SetSrcPort(3)
	if h.Checksum() != 0 || h.SrcPort() != 3 {
		t.Fatal("zero checksum must stay zero")
	}
	h.SetLength(99)
	if h.Length() != 99 {
		t.Fatal("SetLength")
	}
}

func TestICMPViews(t *testing.T) {
	m := icmpMsg(ICMPv4Echo, 0, 0x1234, 7, []byte("abc"))
	binary.BigEndian.PutUint16(m[2:], ^refSum(m, 0))
	h := ICMPv4(m)
	if h.Type() != ICMPv4Echo || h.Code() != 0 || h.Ident() != 0x1234 || h.Seq() != 7 || h.IsError() || h.EmbeddedOffset() != 0 {
		t.Fatal("fields")
	}
	if h.ComputeChecksum() != h.Checksum() {
		t.Fatal("ComputeChecksum")
	}
	h.SetIdent(0xffff)
	if h.Ident() != 0xffff || refSum(h, 0) != 0xffff || h.ComputeChecksum() != h.Checksum() {
		t.Fatal("SetIdent checksum")
	}
	for _, ty := range []uint8{3, 4, 5, 11, 12} {
		if !ICMPv4IsError(ty) || ICMPv4(icmpMsg(ty, 0, 0, 0, nil)).EmbeddedOffset() != 8 {
			t.Fatalf("type %d should be an error", ty)
		}
	}
	for _, ty := range []uint8{0, 8, 13, 14, 9, 10, 255} {
		if ICMPv4IsError(ty) {
			t.Fatalf("type %d is not an error", ty)
		}
	}
	m6 := ICMPv6(icmpMsg(ICMPv6PacketTooBig, 0, 0, 1280, []byte{0x60}))
	if !m6.IsError() || m6.EmbeddedOffset() != 8 || len(m6.Payload()) != 1 || m6.Seq() != 1280 {
		t.Fatal("v6 error")
	}
	for ty := 0; ty < 256; ty++ {
		if ICMPv6IsError(uint8(ty)) != (ty >= 1 && ty <= 4) {
			t.Fatalf("ICMPv6IsError(%d)", ty)
		}
	}
	e6 := ICMPv6(icmpMsg(ICMPv6EchoReply, 0, 5, 6, nil))
	e6.SetChecksum(0x1000)
	e6.SetIdent(6)
	if e6.Ident() != 6 || e6.Checksum() != 0x0fff || e6.Type() != ICMPv6EchoReply || e6.Code() != 0 {
		t.Fatalf("v6 SetIdent: %#04x", e6.Checksum())
	}
}

// TestShortViews calls every accessor of every view on short slices: zero
// values, no panics, no writes past the end.
func TestShortViews(t *testing.T) {
	a4, a6 := netip.MustParseAddr("1.2.3.4"), netip.MustParseAddr("::1")
	for n := 0; n < 64; n++ {
		full := make([]byte, 64)
		for i := range full {
			full[i] = 0xff
		}
		b := full[:n:n]
		v := IPv4(b)
		_, _, _, _, _, _ = v.Version(), v.IHL(), v.HeaderLen(), v.TOS(), v.TotalLength(), v.ID()
		_, _, _, _, _, _ = v.Flags(), v.MoreFragments(), v.DontFragment(), v.FragmentOffset(), v.IsFragment(), v.TTL()
		_, _, _, _ = v.Protocol(), v.Checksum(), v.Options(), v.Payload()
		_, _, _, _ = v.Src(), v.Dst(), v.ComputeChecksum(), v.IsChecksumValid()
		v.SetTotalLength(1)
		v.SetID(1)
		v.SetTTL(1)
		v.SetChecksum(1)
		v.SetSrc(a4)
		v.SetDst(a4)
		w := IPv6(b)
		_, _, _, _, _, _ = w.Version(), w.TrafficClass(), w.FlowLabel(), w.PayloadLength(), w.NextHeader(), w.HopLimit()
		_, _, _ = w.Src(), w.Dst(), w.Payload()
		w.SetPayloadLength(1)
		w.SetHopLimit(1)
		w.SetSrc(a6)
		w.SetDst(a6)
		x := TCP(b)
		_, _, _, _, _, _ = x.SrcPort(), x.DstPort(), x.Seq(), x.Ack(), x.DataOffset(), x.HeaderLen()
		_, _, _, _, _, _ = x.Flags(), x.Window(), x.Checksum(), x.Urgent(), x.Options(), x.Payload()
		x.SetSrcPort(1)
		x.SetDstPort(1)
		x.SetSeq(1)
		x.SetAck(1)
		x.SetWindow(1)
		x.SetChecksum(1)
		u := UDP(b)
		_, _, _, _, _ = u.SrcPort(), u.DstPort(), u.Length(), u.Checksum(), u.Payload()
		u.SetSrcPort(1)
		u.SetDstPort(1)
		u.SetLength(1)
		u.SetChecksum(1)
		i4 := ICMPv4(b)
		_, _, _, _, _, _, _, _ = i4.Type(), i4.Code(), i4.Checksum(), i4.Ident(), i4.Seq(), i4.IsError(), i4.EmbeddedOffset(), i4.Payload()
		_ = i4.ComputeChecksum()
		i4.SetIdent(1)
		i4.SetChecksum(1)
		i6 := ICMPv6(b)
		_, _, _, _, _, _, _, _ = i6.Type(), i6.Code(), i6.Checksum(), i6.Ident(), i6.Seq(), i6.IsError(), i6.EmbeddedOffset(), i6.Payload()
		i6.SetIdent(1)
		i6.SetChecksum(1)
		for i := n; i < len(full); i++ {
			if full[i] != 0xff {
				t.Fatalf("len %d: write past the view at %d", n, i)
			}
		}
	}
	if (IPv4(nil)).Src().IsValid() || (IPv6(nil)).Dst().IsValid() {
		t.Fatal("short view returned a valid address")
	}
}

func TestReasons(t *testing.T) {
	rs := Reasons()
	if len(rs) != int(numReasons) || rs[0] != Ok {
		t.Fatalf("Reasons() = %v", rs)
	}
	names := map[string]bool{}
	for _, r := range rs {
		s := r.String()
		if s == "" || s == "unknown" || names[s] {
			t.Fatalf("bad or duplicate name %q for %d", s, r)
		}
		for _, c := range s {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
				t.Fatalf("%q is not snake_case", s)
			}
		}
		names[s] = true
	}
	if Reason(200).String() != "unknown" {
		t.Fatal("unknown reason")
	}
	for _, want := range []string{"truncated", "bad_version", "bad_ihl", "bad_total_length", "bad_ip_checksum",
		"ipv6_ext_chain", "bad_tcp_offset", "bad_tcp_options", "bad_sack", "udp_bad_length", "icmp_nested_error"} {
		if !names[want] {
			t.Errorf("missing reason %q", want)
		}
	}
}
