package nat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// establish opens a plain (non-FTP) TCP flow inside:40001 -> remote:80.
func establish(t testing.TB, e *Engine) (out, in []byte) {
	c, s := ap("198.18.0.2:40001"), ap("198.19.0.2:80")
	p := netip.AddrPortFrom(pubIP, 40001)
	for _, seg := range []tcpSeg{
		{src: c, dst: s, seq: 1, flags: fSYN},
		{src: s, dst: p, seq: 100, ack: 2, flags: fSYN | fACK},
		{src: c, dst: s, seq: 2, ack: 101, flags: fACK},
	} {
		if v, _ := e.processPacket(seg.build(), t0); v != Accept {
			t.Fatal("handshake dropped")
		}
	}
	out = tcpSeg{src: c, dst: s, seq: 2, ack: 101, flags: fACK | fPSH, payload: string(make([]byte, 1400))}.build()
	in = tcpSeg{src: s, dst: p, seq: 101, ack: 1402, flags: fACK}.build()
	return out, in
}

// TestFastPathAllocatesNothing: translating packets of established flows,
// in both directions, and of an FTP control flow that needs no rewrite,
// allocates nothing.
func TestFastPathAllocatesNothing(t *testing.T) {
	e := snatEngine(t)
	out, in := establish(t, e)
	handshake(t, e)
	ctl := cmd(1001, "NOOP\r\n").build()
	buf := make([]byte, 0, 65535)
	for name, tmpl := range map[string][]byte{"outbound": out, "inbound": in, "ftp-control": ctl} {
		run := func() {
			b := append(buf[:0], tmpl...)
			if v, _ := e.processPacket(b, t0); v != Accept {
				t.Fatalf("%s dropped", name)
			}
		}
		run() // warm the gateway's buffers
		if n := testing.AllocsPerRun(200, run); n != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", name, n)
		}
	}
}

func TestPassAndDropClasses(t *testing.T) {
	e := snatEngine(t)
	// Neither inside nor to the public address: unchanged.
	other := tcpSeg{src: ap("198.19.0.5:1"), dst: ap("198.19.0.6:2"), seq: 1, flags: fSYN}.build()
	keep := bytes.Clone(other)
	if v, o := e.processPacket(other, t0); v != Accept || !bytes.Equal(o, keep) {
		t.Fatal("transit packet changed")
	}
	// Unsolicited inbound.
	if _, _, r := e.processPacketReason(tcpSeg{src: ap("198.19.0.5:1"), dst: netip.AddrPortFrom(pubIP, 22), seq: 1, flags: fSYN}.build(), t0); r != DropNoFlow {
		t.Fatalf("unsolicited inbound: %v", r)
	}
	// Malformed.
	bad := tcpSeg{src: ap("198.18.0.2:1"), dst: ap("198.19.0.6:2"), seq: 1, flags: fSYN}.build()
	bad[0] = 0x44 // IHL 4
	if _, _, r := e.processPacketReason(bad, t0); r != DropMalformed || e.Stats.Malformed[header.BadIHL].Load() != 1 {
		t.Fatalf("bad IHL: %v", r)
	}
	// A fragment.
	frag := tcpSeg{src: ap("198.18.0.2:1"), dst: ap("198.19.0.6:2"), seq: 1, flags: fSYN}.build()
	frag[6] = 0x20 // MF
	binary.BigEndian.PutUint16(frag[10:], 0)
	binary.BigEndian.PutUint16(frag[10:], header.IPv4(frag).ComputeChecksum())
	if _, _, r := e.processPacketReason(frag, t0); r != DropFragment {
		t.Fatalf("fragment: %v", r)
	}
	// An outbound RST or SYN+ACK opens nothing.
	if _, _, r := e.processPacketReason(tcpSeg{src: ap("198.18.0.2:7"), dst: ap("198.19.0.6:2"), seq: 1, flags: fRST}.build(), t0); r != DropNoFlow {
		t.Fatalf("RST: %v", r)
	}
	if e.Table().Len() != 0 {
		t.Fatalf("%d flows made by packets that must make none", e.Table().Len())
	}
}

func TestTableFullDropsNewFlowsOnly(t *testing.T) {
	cfg := Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}}
	cfg.Conntrack.MaxFlows = 1
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, in := establish(t, e)
	if _, _, r := e.processPacketReason(tcpSeg{src: ap("198.18.0.3:5"), dst: ap("198.19.0.2:80"), seq: 1, flags: fSYN}.build(), t0); r != DropTableFull {
		t.Fatalf("new flow in full table: %v", r)
	}
	for _, b := range [][]byte{out, in} {
		if v, _ := e.processPacket(b, t0); v != Accept {
			t.Fatal("existing flow hurt by a full table")
		}
	}
}

func TestPortPreservationAndCollision(t *testing.T) {
	e := snatEngine(t)
	a := mustSendOut(t, e, tcpSeg{src: ap("198.18.0.2:5555"), dst: ap("198.19.0.2:80"), seq: 1, flags: fSYN})
	// Endpoint-independent: the same inside endpoint to another destination
	// keeps its public port.
	b := mustSendOut(t, e, tcpSeg{src: ap("198.18.0.2:5555"), dst: ap("198.19.0.3:443"), seq: 1, flags: fSYN})
	// Another inside host with the same port gets another public port.
	c := mustSendOut(t, e, tcpSeg{src: ap("198.18.0.3:5555"), dst: ap("198.19.0.2:80"), seq: 1, flags: fSYN})
	if a.SrcPort != 5555 || b.SrcPort != 5555 {
		t.Fatalf("ports %d %d, want 5555 kept", a.SrcPort, b.SrcPort)
	}
	if c.SrcPort == 5555 || c.SrcPort < 1024 {
		t.Fatalf("colliding endpoint got %d", c.SrcPort)
	}
	// Replies to the second inside host reach it.
	o := mustSendOut(t, e, tcpSeg{src: ap("198.19.0.2:80"), dst: netip.AddrPortFrom(pubIP, c.SrcPort), seq: 9, ack: 2, flags: fSYN | fACK})
	if o.Dst != netip.MustParseAddr("198.18.0.3") || o.DstPort != 5555 {
		t.Fatalf("reply to %v:%d", o.Dst, o.DstPort)
	}
	// Expiry releases the bindings.
	e.Expire(t0.Add(5 * time.Minute))
	if e.Table().Len() != 0 || e.Bindings() != 0 {
		t.Fatalf("after expiry: %d flows, %d bindings", e.Table().Len(), e.Bindings())
	}
}

func mustSendOut(t *testing.T, e *Engine, s tcpSeg) seen {
	t.Helper()
	v, out, r := e.processPacketReason(s.build(), t0)
	if v != Accept {
		t.Fatalf("dropped: %v", r)
	}
	return decodeOut(t, out)
}

func udpPkt(src, dst netip.AddrPort, payload string, zeroSum bool) []byte {
	u := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	b := ipWrap(src.Addr(), dst.Addr(), 17, u)
	if zeroSum {
		hl := 20
		if src.Addr().Is6() {
			hl = 40
		}
		b[hl+6], b[hl+7] = 0, 0
	}
	return b
}

func TestUDPZeroChecksum(t *testing.T) {
	e := snatEngine(t)
	v, out := e.processPacket(udpPkt(ap("198.18.0.2:5353"), ap("198.19.0.2:53"), "q", true), t0)
	if v != Accept || out[26] != 0 || out[27] != 0 {
		t.Fatal("IPv4 UDP without checksum must stay without (RFC 768)")
	}
	if decodeOut(t, out).Src != pubIP {
		t.Fatal("not translated")
	}
	e6, _ := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("fd00:18::/64")}, Public: []netip.Addr{netip.MustParseAddr("2001:db8:19::100")}})
	if _, _, r := e6.processPacketReason(udpPkt(ap("[fd00:18::2]:5353"), ap("[2001:db8:19::2]:53"), "q", true), t0); r != DropBadUDPZeroChecksum {
		t.Fatalf("IPv6 UDP zero checksum: %v", r)
	}
}

// icmpEcho builds an echo request (or reply) with identifier id.
func icmpEcho(src, dst netip.Addr, reply bool, id uint16) []byte {
	m := make([]byte, 16)
	switch {
	case src.Is4() && !reply:
		m[0] = 8
	case src.Is6() && !reply:
		m[0] = 128
	case src.Is6():
		m[0] = 129
	}
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], 1)
	proto := ipproto.ICMPv4
	if src.Is6() {
		proto = 58
	}
	return ipWrap(src, dst, proto, m)
}

// icmpErr builds an ICMP error from src to dst quoting packet q.
func icmpErr(src, dst netip.Addr, typ, code uint8, q []byte) []byte {
	m := make([]byte, 8+len(q))
	m[0], m[1] = typ, code
	copy(m[8:], q)
	proto := ipproto.ICMPv4
	if src.Is6() {
		proto = ipproto.ICMPv6
	}
	return ipWrap(src, dst, proto, m)
}

func TestICMPEchoIdentifier(t *testing.T) {
	e := snatEngine(t)
	in1, in2 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	remote := netip.MustParseAddr("198.19.0.2")
	_, o1 := e.processPacket(icmpEcho(in1, remote, false, 77), t0)
	_, o2 := e.processPacket(icmpEcho(in2, remote, false, 77), t0)
	p1, p2 := decodeOut(t, o1), decodeOut(t, o2)
	if p1.SrcPort != 77 || p2.SrcPort == 77 || p1.Src != pubIP {
		t.Fatalf("identifiers %d %d", p1.SrcPort, p2.SrcPort)
	}
	v, back := e.processPacket(icmpEcho(remote, pubIP, true, p2.SrcPort), t0)
	if v != Accept {
		t.Fatal("echo reply dropped")
	}
	r := decodeOut(t, back)
	if r.Dst != in2 || r.DstPort != 77 {
		t.Fatalf("echo reply to %v id %d", r.Dst, r.DstPort)
	}
}

// TestICMPErrorTranslation: a "fragmentation needed" from a router outside
// about an outbound TCP segment reaches the inside host with the quoted
// packet as the host sent it; so does a port unreachable from the inside
// host about an inbound reply, quoting what the remote sent.
func TestICMPErrorTranslation(t *testing.T) {
	e := snatEngine(t)
	outSeg, _ := establish(t, e)
	_, sent := e.processPacket(bytes.Clone(outSeg), t0) // as it left the NAT
	router := netip.MustParseAddr("198.19.0.1")
	quote := bytes.Clone(sent[:28+20]) // IP header + TCP header: a typical quote
	v, out := e.processPacket(icmpErr(router, pubIP, 3, 4, quote), t0)
	if v != Accept {
		t.Fatal("frag-needed dropped")
	}
	o := decodeOut(t, out)
	if o.Src != router || o.Dst != netip.MustParseAddr("198.18.0.2") {
		t.Fatalf("outer %v -> %v", o.Src, o.Dst)
	}
	var q header.Parsed
	if r := q.DecodeInner(o.Buf[o.PayloadOff:]); r != header.Ok {
		t.Fatal(r)
	}
	if q.Src != netip.MustParseAddr("198.18.0.2") || q.SrcPort != 40001 || q.Dst != netip.MustParseAddr("198.19.0.2") || q.DstPort != 80 {
		t.Fatalf("quoted %v:%d -> %v:%d", q.Src, q.SrcPort, q.Dst, q.DstPort)
	}
	if !header.IPv4(q.Buf).IsChecksumValid() {
		t.Fatal("quoted IPv4 header checksum wrong")
	}
	// An error about no known flow is dropped.
	quote[12] ^= 1
	if _, _, r := e.processPacketReason(icmpErr(router, pubIP, 3, 4, quote), t0); r != DropMalformed && r != DropICMPErrorNoFlow {
		t.Fatalf("stray error: %v", r)
	}
}

func TestConfigErrors(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	for name, c := range map[string]Config{
		"no public":                 {Inside: []netip.Prefix{p("198.18.0.0/16")}},
		"two v4 public":             {Public: []netip.Addr{a("198.19.0.1"), a("198.19.0.2")}},
		"v6 inside, v4 public only": {Inside: []netip.Prefix{p("fd00::/64")}, Public: []netip.Addr{a("198.19.0.1")}},
		"overlapping forwards": {Public: []netip.Addr{a("198.19.0.1")}, Forwards: []Forward{
			{Proto: 6, Port: 20, PortEnd: 30, Target: a("198.18.0.2")}, {Proto: 6, Port: 25, PortEnd: 25, Target: a("198.18.0.3")}}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseForward(t *testing.T) {
	good := map[string]string{
		"tcp:21=198.18.0.2:21":             "tcp:21=198.18.0.2:21",
		"TCP:8080=198.18.0.2:80":           "tcp:8080=198.18.0.2:80",
		"udp:53=198.18.0.3":                "udp:53=198.18.0.3",
		"tcp:40000-40999=198.18.0.2":       "tcp:40000-40999=198.18.0.2",
		"tcp:40000-40999=198.18.0.2:50000": "tcp:40000-40999=198.18.0.2:50000",
		"tcp:21=[fd00::2]:21":              "tcp:21=[fd00::2]:21",
		"tcp:21=fd00::2":                   "tcp:21=fd00::2",
	}
	for in, want := range good {
		f, err := ParseForward(in)
		if err != nil || f.String() != want {
			t.Errorf("%q: %v %v, want %q", in, f, err, want)
		}
	}
	for _, bad := range []string{"", "tcp", "icmp:1=198.18.0.2", "tcp:0=198.18.0.2", "tcp:21", "tcp:30-20=198.18.0.2",
		"tcp:21=host:21", "tcp:70000=198.18.0.2", "tcp:65000-65535=198.18.0.2:65500", "tcp:21=198.18.0.2:0"} {
		if _, err := ParseForward(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func BenchmarkProcessEstablished(b *testing.B) {
	e, _ := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}})
	out, _ := establish(b, e)
	buf := make([]byte, 0, 65535)
	b.ReportAllocs()
	b.SetBytes(int64(len(out)))
	for i := 0; i < b.N; i++ {
		pkt := append(buf[:0], out...)
		e.processPacket(pkt, t0)
	}
}

// Neighbour solicitations and other informational ICMPv6 to the public
// address are for the router: accepted unchanged. From inside they would
// reveal an inside address: dropped.
func TestInboundInformationalICMPPasses(t *testing.T) {
	pub6 := netip.MustParseAddr("2001:db8:19::100")
	e, _ := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("fd00:18::/64")}, Public: []netip.Addr{pub6}})
	ns := make([]byte, 24)
	ns[0] = 135
	copy(ns[8:], pub6.AsSlice())
	pkt := ipWrap(netip.MustParseAddr("2001:db8:19::2"), pub6, 58, ns)
	keep := bytes.Clone(pkt)
	if v, out := e.processPacket(pkt, t0); v != Accept || !bytes.Equal(out, keep) {
		t.Fatal("inbound neighbour solicitation not passed unchanged")
	}
	out6 := ipWrap(netip.MustParseAddr("fd00:18::2"), netip.MustParseAddr("2001:db8:19::2"), 58, ns)
	if _, _, r := e.processPacketReason(out6, t0); r != DropUnsupported {
		t.Fatalf("outbound informational ICMPv6: %v", r)
	}
}
