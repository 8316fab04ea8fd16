package nat

import (
	"bytes"
	"log/slog"
	"math/bits"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/alg"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
	"github.com/natalg/natalg/nat/xlat"
)

// NAT64 test network: an IPv6-only client, an IPv4 server reached at its
// RFC 6052 address under a network-specific prefix (2001:db8:64::/96: the
// well-known prefix may not embed 198.18.0.0/15, RFC 6052 §3.1), a pool of
// four addresses.
var (
	pfx64   = netip.MustParsePrefix("2001:db8:64::/96")
	pool64  = netip.MustParsePrefix("198.19.64.0/30")
	cli6    = ap("[fd00:64::2]:40000")
	srv4    = ap("198.18.64.2:21")
	srv6    = ap("[2001:db8:64::c612:4002]:21") // 198.18.64.2
	srv4Raw = netip.MustParseAddr("198.18.64.2")
)

func nat64Engine(t testing.TB) *Engine {
	t.Helper()
	e, err := New(Config{NAT64Prefix: pfx64, NAT64Pool: pool64})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// send64 runs a packet through the engine and decodes the result.
func send64(t *testing.T, e *Engine, pkt []byte) seen {
	t.Helper()
	v, out, r := e.processPacketReason(pkt, t0)
	if v != Accept {
		t.Fatalf("dropped: %v", r)
	}
	return decodeOut(t, out)
}

func TestNAT64ConfigChecks(t *testing.T) {
	for _, c := range []Config{
		{NAT64Prefix: netip.MustParsePrefix("2001:db8:64::/95"), NAT64Pool: pool64},
		{NAT64Prefix: pfx64, NAT64Pool: netip.MustParsePrefix("fd00::/64")},
		{NAT64Prefix: pfx64},
		{NAT64Prefix: pfx64, NAT64Pool: pool64, Public: []netip.Addr{netip.MustParseAddr("198.19.64.1")}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// TestNAT64TCP: an IPv6 client's SYN leaves as IPv4 from its pool address
// with its port kept; the answer comes back as IPv6 from the server's
// embedded address; a data segment both ways keeps its payload; a second
// client gets its own binding; a packet to the pool with no flow is
// dropped.
func TestNAT64TCP(t *testing.T) {
	e := nat64Engine(t)
	web6 := ap("[2001:db8:64::c612:4002]:80")
	o := send64(t, e, tcpSeg{src: cli6, dst: web6, seq: 1000, flags: fSYN, mss: 1440}.build())
	if o.Version != 4 || o.Dst != srv4Raw || o.DstPort != 80 || !pool64.Contains(o.Src) || o.SrcPort != 40000 || o.Seq != 1000 || o.MSS != 1440 {
		t.Fatalf("SYN left as v%d %v:%d -> %v:%d seq %d mss %d", o.Version, o.Src, o.SrcPort, o.Dst, o.DstPort, o.Seq, o.MSS)
	}
	if o.IPv4().TTL() != 64 {
		t.Fatalf("TTL %d, want the hop limit 64", o.IPv4().TTL())
	}
	pub := netip.AddrPortFrom(o.Src, o.SrcPort)
	back := send64(t, e, tcpSeg{src: ap("198.18.64.2:80"), dst: pub, seq: 7000, ack: 1001, flags: fSYN | fACK}.build())
	if back.Version != 6 || back.Src != web6.Addr() || back.SrcPort != 80 || back.Dst != cli6.Addr() || back.DstPort != 40000 || back.Ack != 1001 {
		t.Fatalf("SYN+ACK came back as v%d %v:%d -> %v:%d", back.Version, back.Src, back.SrcPort, back.Dst, back.DstPort)
	}
	d := send64(t, e, tcpSeg{src: cli6, dst: web6, seq: 1001, ack: 7001, flags: fACK | fPSH, payload: "GET / HTTP/1.0\r\n\r\n"}.build())
	if d.payload != "GET / HTTP/1.0\r\n\r\n" {
		t.Fatalf("payload %q", d.payload)
	}
	d = send64(t, e, tcpSeg{src: ap("198.18.64.2:80"), dst: pub, seq: 7001, ack: 1019, flags: fACK | fPSH, payload: "HTTP/1.0 200 OK\r\n"}.build())
	if d.payload != "HTTP/1.0 200 OK\r\n" || d.Dst != cli6.Addr() {
		t.Fatalf("reply payload %q to %v", d.payload, d.Dst)
	}
	// Same client, same port, another server: the same public endpoint
	// (endpoint-independent mapping, RFC 6146 §3.5.2.1).
	o2 := send64(t, e, tcpSeg{src: cli6, dst: ap("[2001:db8:64::c612:4003]:80"), seq: 1, flags: fSYN}.build())
	if netip.AddrPortFrom(o2.Src, o2.SrcPort) != pub {
		t.Fatalf("second destination mapped to %v:%d, want %v", o2.Src, o2.SrcPort, pub)
	}
	if v, _, r := e.processPacketReason(tcpSeg{src: ap("198.18.64.9:80"), dst: ap(o.Src.String() + ":41000"), seq: 1, flags: fSYN}.build(), t0); v != Drop || r != DropNoFlow {
		t.Fatalf("unsolicited SYN to the pool: %v %v", v, r)
	}
	if e.Bindings() != 1 {
		t.Fatalf("bindings %d, want 1", e.Bindings())
	}
}

// TestNAT64PairedPooling: every flow of one client uses one pool address.
func TestNAT64PairedPooling(t *testing.T) {
	e := nat64Engine(t)
	seen := map[netip.Addr]netip.Addr{}
	a := netip.MustParseAddr("fd00:64::10")
	pools := map[netip.Addr]bool{}
	for i := range 32 {
		a = a.Next()
		c := netip.AddrPortFrom(a, uint16(30000+i))
		for j := range 3 {
			o := send64(t, e, tcpSeg{src: c, dst: netip.AddrPortFrom(netip.MustParseAddr("2001:db8:64::c612:4002"), uint16(80+j)), seq: 1, flags: fSYN}.build())
			if p, ok := seen[c.Addr()]; ok && p != o.Src {
				t.Fatalf("client %v on %v and %v", c.Addr(), p, o.Src)
			}
			seen[c.Addr()] = o.Src
			pools[o.Src] = true
		}
	}
	if len(pools) < 2 {
		t.Fatalf("32 clients all on %v", pools)
	}
}

// TestNAT64UDPAndEcho: UDP and ICMP echo are translated both ways, the echo
// identifier kept (it is free) and the ICMP types mapped (RFC 7915 §4.2,
// §5.2).
func TestNAT64UDPAndEcho(t *testing.T) {
	e := nat64Engine(t)
	dns6 := ap("[2001:db8:64::c612:4002]:53")
	o := send64(t, e, udpPkt(ap("[fd00:64::2]:5353"), dns6, "query", false))
	if o.Version != 4 || o.Proto != ipproto.UDP || o.Dst != srv4Raw || o.payload != "query" {
		t.Fatalf("UDP left as v%d proto %d to %v %q", o.Version, o.Proto, o.Dst, o.payload)
	}
	b := send64(t, e, udpPkt(ap("198.18.64.2:53"), netip.AddrPortFrom(o.Src, o.SrcPort), "answer", true))
	if b.Version != 6 || b.Dst != netip.MustParseAddr("fd00:64::2") || b.DstPort != 5353 || b.Src != dns6.Addr() || b.payload != "answer" {
		t.Fatalf("UDP back as v%d %v:%d -> %v:%d %q", b.Version, b.Src, b.SrcPort, b.Dst, b.DstPort, b.payload)
	}
	o = send64(t, e, icmpEcho(netip.MustParseAddr("fd00:64::2"), srv6.Addr(), false, 99))
	if o.Version != 4 || o.ICMPType != header.ICMPv4Echo || o.SrcPort != 99 || o.Dst != srv4Raw {
		t.Fatalf("echo left as v%d type %d id %d to %v", o.Version, o.ICMPType, o.SrcPort, o.Dst)
	}
	b = send64(t, e, icmpEcho(srv4Raw, o.Src, true, 99))
	if b.Version != 6 || b.ICMPType != header.ICMPv6EchoReply || b.DstPort != 99 || b.Dst != netip.MustParseAddr("fd00:64::2") || b.Src != srv6.Addr() {
		t.Fatalf("echo reply back as v%d type %d id %d %v -> %v", b.Version, b.ICMPType, b.DstPort, b.Src, b.Dst)
	}
}

// TestNAT64ICMPError: a port unreachable from an IPv4 router about a UDP
// datagram the NAT sent reaches the IPv6 client as an ICMPv6 error from the
// router's embedded address, quoting the datagram as the client sent it.
func TestNAT64ICMPError(t *testing.T) {
	e := nat64Engine(t)
	c := ap("[fd00:64::2]:5353")
	dst := ap("[2001:db8:64::c612:4002]:33434")
	sentV, sent := e.processPacket(udpPkt(c, dst, "probe", false), t0)
	if sentV != Accept {
		t.Fatal("probe dropped")
	}
	out := decodeOut(t, sent)
	router := netip.MustParseAddr("198.18.64.1")
	quote := bytes.Clone(sent[:28])
	v, got, r := e.processPacketReason(icmpErr(router, out.Src, 11, 0, quote), t0)
	if v != Accept {
		t.Fatalf("time exceeded dropped: %v", r)
	}
	o := decodeOut(t, got)
	if o.Version != 6 || o.ICMPType != 3 || o.Src != netip.MustParseAddr("2001:db8:64::c612:4001") || o.Dst != c.Addr() {
		t.Fatalf("error back as v%d type %d %v -> %v", o.Version, o.ICMPType, o.Src, o.Dst)
	}
	var q header.Parsed
	if r := q.DecodeInner(o.Buf[o.PayloadOff:]); r != header.Ok {
		t.Fatal(r)
	}
	if q.Version != 6 || q.Src != c.Addr() || q.SrcPort != 5353 || q.Dst != dst.Addr() || q.DstPort != 33434 {
		t.Fatalf("quoted v%d %v:%d -> %v:%d", q.Version, q.Src, q.SrcPort, q.Dst, q.DstPort)
	}
	// About no known flow: dropped.
	quote[21] ^= 0x55 // source port
	if v, _, _ := e.processPacketReason(icmpErr(router, out.Src, 11, 0, quote), t0); v != Drop {
		t.Fatal("stray error accepted")
	}
}

// TestNAT64FTPActive: an IPv6 client's EPRT |2| through NAT64 becomes an
// IPv4 announcement of its pool endpoint (RFC 6384 §7.2), the sequence
// numbers move by the length change, and the IPv4 server's data connection
// is let in, as IPv6 from the server's embedded address to the client's
// announced port.
func TestNAT64FTPActive(t *testing.T) {
	e := nat64Engine(t)
	o := send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1000, flags: fSYN, mss: 1440}.build())
	pub := netip.AddrPortFrom(o.Src, o.SrcPort)
	send64(t, e, tcpSeg{src: srv4, dst: pub, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1460}.build())
	send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1001, ack: 5001, flags: fACK}.build())
	send64(t, e, tcpSeg{src: srv4, dst: pub, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"}.build())
	eprt := "EPRT |2|fd00:64::2|50000|\r\n"
	c := send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: eprt}.build())
	commas := strings.ReplaceAll(o.Src.String(), ".", ",")
	if c.Version != 4 || c.payload == eprt || !strings.Contains(c.payload, o.Src.String()) && !strings.Contains(c.payload, commas) {
		t.Fatalf("EPRT left as v%d %q", c.Version, c.payload)
	}
	delta := len(c.payload) - len(eprt)
	// The server acknowledges the rewritten text; the client sees its own.
	a := send64(t, e, tcpSeg{src: srv4, dst: pub, seq: 5009, ack: uint32(1001 + len(c.payload)), flags: fACK | fPSH, payload: "200 EPRT ok\r\n"}.build())
	if a.Ack != uint32(1001+len(eprt)) {
		t.Fatalf("ACK %d, want %d (delta %d)", a.Ack, 1001+len(eprt), delta)
	}
	n := send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: uint32(1001 + len(eprt)), ack: 5022, flags: fACK | fPSH, payload: "RETR f\r\n"}.build())
	if n.Seq != uint32(1001+len(c.payload)) {
		t.Fatalf("next command seq %d, want %d", n.Seq, 1001+len(c.payload))
	}
	// The announced port, from the text.
	var port uint16
	if i := bytes.LastIndexByte([]byte(c.payload[:len(c.payload)-3]), '|'); i >= 0 {
		for _, ch := range c.payload[i+1 : len(c.payload)-3] {
			port = port*10 + uint16(ch-'0')
		}
	}
	if port == 0 {
		// PORT h1,h2,h3,h4,p1,p2 form.
		var h [6]int
		k := 0
		for _, ch := range c.payload[5:] {
			switch {
			case ch >= '0' && ch <= '9':
				h[k] = h[k]*10 + int(ch-'0')
			case ch == ',':
				k++
			}
		}
		port = uint16(h[4]<<8 | h[5])
	}
	if e.Table().ExpectationCount() != 1 {
		t.Fatalf("%d expectations", e.Table().ExpectationCount())
	}
	// A third party is refused; the server's port 20 is let in.
	if v, _, _ := e.processPacketReason(tcpSeg{src: ap("198.18.64.9:20"), dst: netip.AddrPortFrom(o.Src, port), seq: 1, flags: fSYN}.build(), t0); v != Drop {
		t.Fatal("third party let in")
	}
	d := send64(t, e, tcpSeg{src: ap("198.18.64.2:20"), dst: netip.AddrPortFrom(o.Src, port), seq: 9000, flags: fSYN}.build())
	if d.Version != 6 || d.Dst != cli6.Addr() || d.DstPort != 50000 || d.Src != netip.MustParseAddr("2001:db8:64::c612:4002") || d.SrcPort != 20 {
		t.Fatalf("data SYN in as v%d %v:%d -> %v:%d", d.Version, d.Src, d.SrcPort, d.Dst, d.DstPort)
	}
	d = send64(t, e, tcpSeg{src: cli6Port(50000), dst: ap("[2001:db8:64::c612:4002]:20"), seq: 3000, ack: 9001, flags: fSYN | fACK}.build())
	if d.Version != 4 || d.Src != o.Src || d.SrcPort != port || d.Dst != srv4Raw {
		t.Fatalf("data SYN+ACK out as v%d %v:%d -> %v", d.Version, d.Src, d.SrcPort, d.Dst)
	}
	kinds := map[string]int{}
	e.Flows(func(fi FlowInfo) { kinds[fi.Kind]++ })
	if kinds["nat64"] != 1 || kinds["nat64-expected"] != 1 || len(kinds) != 2 {
		t.Fatalf("flow kinds %v", kinds)
	}
	if e.Bindings() != 2 {
		t.Fatalf("%d bindings, want 2 (control and data)", e.Bindings())
	}
}

func cli6Port(p uint16) netip.AddrPort { return netip.AddrPortFrom(cli6.Addr(), p) }

// TestNAT64FastPathAllocatesNothing: established NAT64 packets both ways
// allocate nothing.
func TestNAT64FastPathAllocatesNothing(t *testing.T) {
	e := nat64Engine(t)
	web6 := ap("[2001:db8:64::c612:4002]:80")
	o := send64(t, e, tcpSeg{src: cli6, dst: web6, seq: 1000, flags: fSYN}.build())
	pub := netip.AddrPortFrom(o.Src, o.SrcPort)
	send64(t, e, tcpSeg{src: ap("198.18.64.2:80"), dst: pub, seq: 7000, ack: 1001, flags: fSYN | fACK}.build())
	out := tcpSeg{src: cli6, dst: web6, seq: 1001, ack: 7001, flags: fACK, payload: "data"}.build()
	in := tcpSeg{src: ap("198.18.64.2:80"), dst: pub, seq: 7001, ack: 1005, flags: fACK, payload: "data"}.build()
	bo, bi := make([]byte, len(out), 65535), make([]byte, len(in), 65535)
	allocs := testing.AllocsPerRun(1000, func() {
		copy(bo, out)
		copy(bi, in)
		if v, _ := e.processPacket(bo[:len(out)], t0); v != Accept {
			t.Fatal("out dropped")
		}
		if v, _ := e.processPacket(bi[:len(in)], t0); v != Accept {
			t.Fatal("in dropped")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet pair", allocs)
	}
}

// TestNAT64Reproducible: two engines given the same packets give the same
// bytes, IPv4 Identification included (each engine numbers its own).
func TestNAT64Reproducible(t *testing.T) {
	var outs [2][][]byte
	for k := range outs {
		e := nat64Engine(t)
		for i := range 5 {
			pkt := udpPkt(ap("[fd00:64::2]:5353"), ap("[2001:db8:64::c612:4002]:53"), strings.Repeat("q", i+1), false)
			v, out := e.processPacket(pkt, t0)
			if v != Accept {
				t.Fatal("dropped")
			}
			outs[k] = append(outs[k], bytes.Clone(out))
		}
		// another engine translating in between must not matter
		o := nat64Engine(t)
		o.processPacket(udpPkt(ap("[fd00:64::3]:1"), ap("[2001:db8:64::c612:4002]:53"), "x", false), t0)
	}
	for i := range outs[0] {
		if !bytes.Equal(outs[0][i], outs[1][i]) {
			t.Fatalf("packet %d differs between engines:\n%x\n%x", i, outs[0][i], outs[1][i])
		}
	}
}

// TestNAT64WellKnownPrefixNonGlobal: with the Well-Known Prefix, a packet
// whose IPv6 destination embeds a non-global IPv4 address (RFC 6890) is
// dropped and counted, not translated (RFC 6052 §3.1); a global one is
// translated. Inbound, an IPv4 packet from a non-global source (it would
// become the prefix plus that address) is dropped too, even an ICMP error
// about a live flow. A network-specific prefix embeds any address.
func TestNAT64WellKnownPrefixNonGlobal(t *testing.T) {
	e, err := New(Config{NAT64Prefix: WellKnownPrefix, NAT64Pool: pool64})
	if err != nil {
		t.Fatal(err)
	}
	cli := ap("[fd00:64::2]:5353")
	for _, a := range []string{"198.18.64.2", "198.19.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "127.0.0.1",
		"169.254.1.1", "192.0.0.1", "192.0.2.1", "198.51.100.1", "203.0.113.9", "240.0.0.1", "0.1.2.3"} {
		v4 := netip.MustParseAddr(a)
		dst := netip.AddrPortFrom(xlat.Embed(WellKnownPrefix, v4), 53)
		before := e.Stats.Dropped[DropNAT64NonGlobal].Load()
		v, _, r := e.processPacketReason(udpPkt(cli, dst, "q", false), t0)
		if v != Drop || r != DropNAT64NonGlobal {
			t.Errorf("to %v (%v): %v %v, want dropped as %v", dst, a, v, r, DropNAT64NonGlobal)
		}
		if e.Stats.Dropped[DropNAT64NonGlobal].Load() != before+1 {
			t.Errorf("to %v: not counted", dst)
		}
	}
	if e.Table().Len() != 0 || e.Bindings() != 0 {
		t.Fatalf("refused packets left %d flows, %d bindings", e.Table().Len(), e.Bindings())
	}
	// 192.88.99.0/24 (6to4 relay anycast) is global (RFC 6890 Table 10)
	global := netip.MustParseAddr("192.88.99.1")
	dst := netip.AddrPortFrom(netip.MustParseAddr("64:ff9b::c058:6301"), 53)
	o := send64(t, e, udpPkt(cli, dst, "query", false))
	if o.Version != 4 || o.Dst != global {
		t.Fatalf("to a global address: v%d to %v", o.Version, o.Dst)
	}
	b := send64(t, e, udpPkt(netip.AddrPortFrom(global, 53), netip.AddrPortFrom(o.Src, o.SrcPort), "answer", true))
	if b.Version != 6 || b.Src != dst.Addr() {
		t.Fatalf("answer: v%d from %v", b.Version, b.Src)
	}
	// an ICMP error about that flow from a router at a non-global address
	_, sent := e.processPacket(udpPkt(cli, dst, "probe", false), t0)
	v, _, r := e.processPacketReason(icmpErr(netip.MustParseAddr("198.18.64.1"), o.Src, 11, 0, bytes.Clone(sent[:28])), t0)
	if v != Drop || r != DropNAT64NonGlobal {
		t.Errorf("ICMP error from a non-global router: %v %v, want dropped as %v", v, r, DropNAT64NonGlobal)
	}
	// a non-global source to the pool, with no flow: the same reason
	v, _, r = e.processPacketReason(udpPkt(ap("10.0.0.1:53"), netip.AddrPortFrom(o.Src, o.SrcPort), "x", true), t0)
	if v != Drop || r != DropNAT64NonGlobal {
		t.Errorf("from 10.0.0.1 to the pool: %v %v", v, r)
	}
	// a network-specific prefix may embed 198.18.64.2 (TestNAT64TCP and
	// the others use one)
	n := nat64Engine(t)
	if o := send64(t, n, udpPkt(cli, ap("[2001:db8:64::c612:4002]:53"), "q", false)); o.Dst != srv4Raw {
		t.Fatalf("network-specific prefix: to %v", o.Dst)
	}
}

// TestNAT64SourceInPrefix: an IPv6 packet whose source lies in the NAT64
// prefix is discarded and counted, whatever its destination (RFC 6146 §3.5:
// it would loop through the translator), with either kind of prefix.
func TestNAT64SourceInPrefix(t *testing.T) {
	wk, err := New(Config{NAT64Prefix: WellKnownPrefix, NAT64Pool: pool64})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		e        *Engine
		src, dst netip.AddrPort
	}{
		{nat64Engine(t), ap("[2001:db8:64::c612:4003]:5353"), ap("[2001:db8:64::c612:4002]:53")},
		{nat64Engine(t), ap("[2001:db8:64::1]:40000"), srv6},
		{wk, ap("[64:ff9b::c058:6302]:5353"), ap("[64:ff9b::c058:6301]:53")},
	} {
		v, _, r := c.e.processPacketReason(udpPkt(c.src, c.dst, "q", false), t0)
		if v != Drop || r != DropNAT64SrcInPrefix || c.e.Stats.Dropped[DropNAT64SrcInPrefix].Load() == 0 {
			t.Errorf("%v -> %v: %v %v, want dropped (and counted) as %v", c.src, c.dst, v, r, DropNAT64SrcInPrefix)
		}
		v, _, r = c.e.processPacketReason(tcpSeg{src: c.src, dst: c.dst, seq: 1, flags: fSYN}.build(), t0)
		if v != Drop || r != DropNAT64SrcInPrefix {
			t.Errorf("TCP SYN %v -> %v: %v %v", c.src, c.dst, v, r)
		}
		if c.e.Table().Len() != 0 {
			t.Errorf("%v -> %v: a flow was made", c.src, c.dst)
		}
	}
}

// TestGlobal4 checks the RFC 6890 Global column on block edges.
func TestGlobal4(t *testing.T) {
	for a, want := range map[string]bool{
		"198.17.255.255": true, "198.18.0.0": false, "198.19.255.255": false, "198.20.0.0": true,
		"100.63.255.255": true, "100.64.0.0": false, "100.127.255.255": false, "100.128.0.0": true,
		"172.15.255.255": true, "172.31.255.255": false, "172.32.0.0": true,
		"192.0.0.255": false, "192.0.1.0": true, "192.88.99.1": true, "11.0.0.1": true,
		"223.255.255.255": true, "224.0.0.1": false, "255.255.255.255": false,
	} {
		if got := Global4(netip.MustParseAddr(a)); got != want {
			t.Errorf("Global4(%s) = %v, want %v", a, got, want)
		}
	}
	if Global4(netip.MustParseAddr("2001:db8::1")) {
		t.Error("an IPv6 address is no global IPv4 address")
	}
}

// TestNAT64MSSClamp: the SYN-ACK of an IPv4 server announcing MSS 1460
// reaches the IPv6 client announcing 1440 (the 20 bytes IPv6's header adds,
// RFC 8200 §3 against RFC 791 §3.1), with a valid checksum; the client's
// SYN keeps its MSS (sized for IPv6 headers already). NAT64KeepMSS leaves
// both alone.
func TestNAT64MSSClamp(t *testing.T) {
	for _, keep := range []bool{false, true} {
		e, err := New(Config{NAT64Prefix: pfx64, NAT64Pool: pool64, NAT64KeepMSS: keep})
		if err != nil {
			t.Fatal(err)
		}
		web6 := ap("[2001:db8:64::c612:4002]:80")
		o := send64(t, e, tcpSeg{src: cli6, dst: web6, seq: 1, flags: fSYN, mss: 1440}.build())
		if o.Version != 4 || o.MSS != 1440 {
			t.Fatalf("keep=%v: client SYN left as v%d with MSS %d, want 1440", keep, o.Version, o.MSS)
		}
		b := send64(t, e, tcpSeg{src: ap("198.18.64.2:80"), dst: netip.AddrPortFrom(o.Src, o.SrcPort), seq: 7, ack: 2, flags: fSYN | fACK, mss: 1460}.build())
		want := uint16(1440)
		if keep {
			want = 1460
		}
		if b.Version != 6 || b.MSS != want {
			t.Errorf("keep=%v: server SYN-ACK reached the client as v%d with MSS %d, want %d", keep, b.Version, b.MSS, want)
		}
		if !b.TCPChecksumValid() {
			t.Errorf("keep=%v: bad TCP checksum on the clamped SYN-ACK", keep)
		}
		if got := e.Stats.MSSClamped.Load(); got != map[bool]uint64{false: 1, true: 0}[keep] {
			t.Errorf("keep=%v: %d clamped", keep, got)
		}
	}
}

// TestNAT64FTPTornDown: EPSV ALL goes to the server as NOOP (RFC 6384 §6),
// the URG bit of the rewritten segment cleared (§5); the server answers the
// NOOP with 500: the client gets no part of it but a reset at the sequence
// number it expects, the event is logged; the server's next segment goes
// back to it as a reset, the client's are dropped and counted (§12).
func TestNAT64FTPTornDown(t *testing.T) {
	e := nat64Engine(t)
	var logged bytes.Buffer
	e.cfg.Log = slog.New(slog.NewTextHandler(&logged, nil))
	pub := open64(t, e)
	c := send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1001, ack: 5009, flags: fACK | fPSH | ipproto.TCPURG, payload: "EPSV ALL\r\n"}.build())
	if c.Version != 4 || c.payload != "NOOP\r\n" || c.TCPFlags&ipproto.TCPURG != 0 || c.TCP().Urgent() != 0 {
		t.Fatalf("EPSV ALL left as v%d %q flags %#x urgent %d", c.Version, c.payload, c.TCPFlags, c.TCP().Urgent())
	}
	r := send64(t, e, tcpSeg{src: srv4, dst: pub, seq: 5009, ack: 1007, flags: fACK | fPSH, payload: "500 NOOP not understood\r\n"}.build())
	if r.Version != 6 || r.Dst != cli6.Addr() || r.TCPFlags != ipproto.TCPRST|ipproto.TCPACK || r.payload != "" || r.Seq != 5009 || r.Ack != 1011 {
		t.Fatalf("the reply to the NOOP reached the client as v%d flags %#x seq %d ack %d %q", r.Version, r.TCPFlags, r.Seq, r.Ack, r.payload)
	}
	if !strings.Contains(logged.String(), "RFC 6384 §12") {
		t.Errorf("nothing logged: %q", logged.String())
	}
	// the server retransmits its reply: it gets a reset back, at the
	// sequence number it expects
	rr := "500 NOOP not understood\r\n"
	b := send64(t, e, tcpSeg{src: srv4, dst: pub, seq: 5009, ack: 1007, flags: fACK | fPSH, payload: rr}.build())
	if b.Version != 4 || b.Src != pub.Addr() || b.SrcPort != pub.Port() || b.Dst != srv4.Addr() || b.DstPort != srv4.Port() ||
		b.TCPFlags != ipproto.TCPRST|ipproto.TCPACK || b.Seq != 1007 || b.Ack != uint32(5009+len(rr)) || b.payload != "" {
		t.Fatalf("retransmitted reply: v%d %v:%d -> %v:%d flags %#x seq %d ack %d %q, want a reset back to the server",
			b.Version, b.Src, b.SrcPort, b.Dst, b.DstPort, b.TCPFlags, b.Seq, b.Ack, b.payload)
	}
	if e.Stats.ALGResets.Load() != 1 {
		t.Errorf("%d resets counted", e.Stats.ALGResets.Load())
	}
	// anything of the client is dropped and counted
	v, _, dr := e.processPacketReason(tcpSeg{src: cli6, dst: srv6, seq: 1011, ack: 5009, flags: fACK | fPSH, payload: "QUIT\r\n"}.build(), t0)
	if v != Drop || dr != DropALGTornDown || e.Stats.Dropped[DropALGTornDown].Load() != 1 {
		t.Errorf("client segment after the teardown: %v %v", v, dr)
	}
	if n := e.Stats.ALGEvents[bits.TrailingZeros32(uint32(alg.EvTornDown))].Load(); n != 3 {
		t.Errorf("%d torn-down events, want 3", n)
	}
}

// static64Engine publishes the IPv6 server [fd00:64::21]:21 on pool port
// 2121 of the pool address it gets, and its UDP port 53 on 198.19.64.3:53.
func static64Engine(t *testing.T) *Engine {
	t.Helper()
	var fws []Forward64
	for _, s := range []string{"tcp:2121=[fd00:64::21]:21", "udp:198.19.64.3:53=[fd00:64::53]:53"} {
		fw, err := ParseForward64(s)
		if err != nil {
			t.Fatal(err)
		}
		if fw.String() != s {
			t.Fatalf("ParseForward64(%q).String() = %q", s, fw.String())
		}
		fws = append(fws, fw)
	}
	e, err := New(Config{NAT64Prefix: pfx64, NAT64Pool: pool64, NAT64Forwards: fws})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestNAT64StaticBinding: an IPv4 client reaches a published IPv6 server
// (RFC 6146 §3.1, a manually configured BIB entry, as Jool's bib add): its
// SYN arrives as IPv6 from the client's RFC 6052 address, the answer goes
// back from the pool endpoint; the server's own outbound sessions from the
// bound port leave from the same pool endpoint (endpoint-independent
// mapping); UDP too; the binding outlives its sessions.
func TestNAT64StaticBinding(t *testing.T) {
	e := static64Engine(t)
	srv := ap("[fd00:64::21]:21")
	pool := e.n64.addrs[e.n64.pick(srv.Addr())]
	cli4 := ap("198.18.7.9:40000")
	cliAs6 := netip.AddrPortFrom(netip.MustParseAddr("2001:db8:64::c612:709"), 40000)
	in := send64(t, e, tcpSeg{src: cli4, dst: netip.AddrPortFrom(pool, 2121), seq: 1, flags: fSYN, mss: 1460}.build())
	if in.Version != 6 || in.Src != cliAs6.Addr() || in.SrcPort != 40000 || in.Dst != srv.Addr() || in.DstPort != 21 {
		t.Fatalf("SYN to %v:2121 reached v%d %v:%d -> %v:%d", pool, in.Version, in.Src, in.SrcPort, in.Dst, in.DstPort)
	}
	out := send64(t, e, tcpSeg{src: srv, dst: cliAs6, seq: 9, ack: 2, flags: fSYN | fACK, mss: 1440}.build())
	if out.Version != 4 || out.Src != pool || out.SrcPort != 2121 || out.Dst != cli4.Addr() || out.DstPort != 40000 {
		t.Fatalf("SYN-ACK left as v%d %v:%d -> %v:%d", out.Version, out.Src, out.SrcPort, out.Dst, out.DstPort)
	}
	// the server's own session from port 21 to another IPv4 host
	o := send64(t, e, tcpSeg{src: srv, dst: ap("[2001:db8:64::c612:4002]:80"), seq: 1, flags: fSYN}.build())
	if o.Src != pool || o.SrcPort != 2121 {
		t.Fatalf("the server's outbound session left from %v:%d, want %v:2121", o.Src, o.SrcPort, pool)
	}
	// a dynamic client cannot take the published port
	d := send64(t, e, tcpSeg{src: ap("[fd00:64::99]:2121"), dst: ap("[2001:db8:64::c612:4002]:80"), seq: 1, flags: fSYN}.build())
	if d.Src == pool && d.SrcPort == 2121 {
		t.Fatal("a dynamic binding took the published port")
	}
	// UDP on an explicit pool address
	u := send64(t, e, udpPkt(cli4, ap("198.19.64.3:53"), "query", false))
	if u.Version != 6 || u.Dst != netip.MustParseAddr("fd00:64::53") || u.DstPort != 53 || u.payload != "query" {
		t.Fatalf("UDP to 198.19.64.3:53 reached v%d %v:%d %q", u.Version, u.Dst, u.DstPort, u.payload)
	}
	// another port of the pool address: nothing published
	if v, _, r := e.processPacketReason(tcpSeg{src: cli4, dst: netip.AddrPortFrom(pool, 2122), seq: 1, flags: fSYN}.build(), t0); v != Drop || r != DropNoFlow {
		t.Errorf("SYN to an unpublished port: %v %v", v, r)
	}
	// the sessions end; the binding stays
	e.Expire(t0.Add(48 * time.Hour))
	if e.Bindings() != 2 {
		t.Errorf("%d bindings after the sessions ended, want the 2 static ones", e.Bindings())
	}
	if in := send64(t, e, tcpSeg{src: cli4, dst: netip.AddrPortFrom(pool, 2121), seq: 1, flags: fSYN}.build()); in.Dst != srv.Addr() {
		t.Errorf("after the sessions ended: to %v", in.Dst)
	}
}

// TestNAT64StaticBindingConfig: bad or clashing static bindings are
// refused.
func TestNAT64StaticBindingConfig(t *testing.T) {
	for _, s := range []string{"tcp:21=fd00:64::2", "icmp:21=[fd00:64::2]:21", "tcp:21=[198.18.0.1]:21", "tcp:0=[fd00:64::2]:21",
		"tcp:2001:db8::1:21=[fd00:64::2]:21", "tcp:21=[fd00:64::2]:0", "tcp:21"} {
		if _, err := ParseForward64(s); err == nil {
			t.Errorf("ParseForward64(%q) accepted", s)
		}
	}
	for _, fws := range [][]string{
		{"tcp:198.19.64.1:21=[fd00:64::2]:21", "tcp:198.19.64.1:21=[fd00:64::3]:21"}, // one pool port twice
		{"tcp:198.19.65.1:21=[fd00:64::2]:21"},                                       // outside the pool
		{"tcp:198.19.64.1:21=[fd00:64::2]:21", "tcp:198.19.64.2:22=[fd00:64::2]:22"}, // one host, two pool addresses
		{"tcp:21=[2001:db8:64::1]:21"},                                               // inside the prefix
		{"tcp:21=[fd00:64::2]:21", "tcp:22=[fd00:64::2]:21"},                         // one endpoint twice
	} {
		var cfg []Forward64
		for _, s := range fws {
			fw, err := ParseForward64(s)
			if err != nil {
				t.Fatal(err)
			}
			cfg = append(cfg, fw)
		}
		if _, err := New(Config{NAT64Prefix: pfx64, NAT64Pool: pool64, NAT64Forwards: cfg}); err == nil {
			t.Errorf("%v accepted", fws)
		}
	}
	fw, _ := ParseForward64("tcp:21=[fd00:64::2]:21")
	if _, err := New(Config{Public: []netip.Addr{pubIP}, Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, NAT64Forwards: []Forward64{fw}}); err == nil {
		t.Error("a NAT64 forward without NAT64 accepted")
	}
}

// TestNAT64StaticFTP: FTP of an IPv4 client with a published IPv6 server
// (RFC 6384 in that direction): PASV goes as EPSV and the 229 comes back
// as a 227 naming the pool address and a mapped port, whose expectation
// admits the client's data connection to the server's port; the client's
// own EPSV passes and its 229 gets the mapped port; PORT becomes EPRT |2|
// with the client's RFC 6052 address.
func TestNAT64StaticFTP(t *testing.T) {
	e := static64Engine(t)
	srv := ap("[fd00:64::21]:21")
	pool := e.n64.addrs[e.n64.pick(srv.Addr())]
	pub := netip.AddrPortFrom(pool, 2121)
	cli4 := ap("198.18.7.9:40000")
	cliAs6 := netip.AddrPortFrom(netip.MustParseAddr("2001:db8:64::c612:709"), 40000)
	send64(t, e, tcpSeg{src: cli4, dst: pub, seq: 1000, flags: fSYN}.build())
	send64(t, e, tcpSeg{src: srv, dst: cliAs6, seq: 5000, ack: 1001, flags: fSYN | fACK}.build())
	send64(t, e, tcpSeg{src: cli4, dst: pub, seq: 1001, ack: 5001, flags: fACK}.build())
	send64(t, e, tcpSeg{src: srv, dst: cliAs6, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"}.build())
	c := send64(t, e, tcpSeg{src: cli4, dst: pub, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: "PASV\r\n"}.build())
	if c.Version != 6 || c.payload != "EPSV\r\n" {
		t.Fatalf("PASV reached the server as %q", c.payload)
	}
	r229 := "229 Entering Extended Passive Mode (|||50000|)\r\n"
	r := send64(t, e, tcpSeg{src: srv, dst: cliAs6, seq: 5009, ack: 1007, flags: fACK | fPSH, payload: r229}.build())
	want227 := "227 Entering Passive Mode (" + strings.ReplaceAll(pool.String(), ".", ",") + ",195,80)\r\n"
	if r.Version != 4 || r.payload != want227 {
		t.Fatalf("229 reached the client as %q, want %q", r.payload, want227)
	}
	if e.Table().ExpectationCount() != 1 {
		t.Fatalf("%d expectations", e.Table().ExpectationCount())
	}
	dt := send64(t, e, tcpSeg{src: ap("198.18.7.9:40001"), dst: netip.AddrPortFrom(pool, 50000), seq: 1, flags: fSYN}.build())
	if dt.Version != 6 || dt.Dst != srv.Addr() || dt.DstPort != 50000 || dt.Src != cliAs6.Addr() || dt.SrcPort != 40001 {
		t.Fatalf("data SYN reached v%d %v:%d -> %v:%d", dt.Version, dt.Src, dt.SrcPort, dt.Dst, dt.DstPort)
	}
	// the client's own EPSV: passes; its 229 gets the mapped port
	rs := int32(len(want227) - len(r229))
	c = send64(t, e, tcpSeg{src: cli4, dst: pub, seq: 1007, ack: uint32(int32(5009+len(r229)) + rs), flags: fACK | fPSH, payload: "EPSV\r\n"}.build())
	if c.payload != "EPSV\r\n" {
		t.Fatalf("EPSV reached the server as %q", c.payload)
	}
	r2 := "229 Entering Extended Passive Mode (|||50001|)\r\n"
	sseq := uint32(5009 + len(r229))
	r = send64(t, e, tcpSeg{src: srv, dst: cliAs6, seq: sseq, ack: 1013, flags: fACK | fPSH, payload: r2}.build())
	sseq += uint32(len(r2))
	if r.payload != "229 Entering Extended Passive Mode (|||50001|)\r\n" || e.Table().ExpectationCount() != 1 {
		t.Fatalf("229 to EPSV reached the client as %q; %d expectations", r.payload, e.Table().ExpectationCount())
	}
	// PORT with the client's own address: EPRT |2| with its RFC 6052 address
	c = send64(t, e, tcpSeg{src: cli4, dst: pub, seq: 1013, ack: 5108, flags: fACK | fPSH, payload: "PORT 198,18,7,9,195,82\r\n"}.build())
	if want := "EPRT |2|2001:0db8:0064:0000:0000:0000:c612:0709|50002|\r\n"; c.payload != want {
		t.Fatalf("PORT reached the server as %q, want %q", c.payload, want)
	}
	// a third party's PORT passes unchanged
	send64(t, e, tcpSeg{src: srv, dst: cliAs6, seq: sseq, ack: 1037 + 15, flags: fACK | fPSH, payload: "200 ok\r\n"}.build())
	c = send64(t, e, tcpSeg{src: cli4, dst: pub, seq: 1037, ack: 5116, flags: fACK | fPSH, payload: "PORT 198,18,7,10,195,82\r\n"}.build())
	if c.payload != "PORT 198,18,7,10,195,82\r\n" {
		t.Fatalf("a third party's PORT reached the server as %q", c.payload)
	}
}

// TestNAT64OnlyPrefixAndPool: NAT64 processes only IPv6 packets to the
// prefix and IPv4 packets to the pool (RFC 6146 §3.5); others pass
// untranslated.
func TestNAT64OnlyPrefixAndPool(t *testing.T) {
	e := nat64Engine(t)
	for _, pkt := range [][]byte{
		udpPkt(ap("[fd00:64::2]:5353"), ap("[fd00:65::1]:53"), "q", false),
		udpPkt(ap("198.18.64.2:53"), ap("198.18.9.9:5353"), "a", true),
	} {
		v, out, r := e.processPacketReason(pkt, t0)
		if v != Accept || r != DropNone || !bytes.Equal(out, pkt) {
			t.Errorf("%v %v: want it passed unchanged", v, r)
		}
	}
	if e.Table().Len() != 0 || e.Stats.Passed.Load() != 2 {
		t.Errorf("%d flows, %d passed", e.Table().Len(), e.Stats.Passed.Load())
	}
}

// FuzzParseForward64: ParseForward64 never panics, and what it accepts
// prints as a spec it parses back to the same binding.
func FuzzParseForward64(f *testing.F) {
	for _, s := range []string{"tcp:21=[fd00:64::2]:21", "udp:198.19.64.3:53=[fd00:64::53]:53", "TCP:2121=[2001:db8::1]:65535",
		"tcp:21=fd00::1", "tcp::21=[::1]:1", "udp:1.2.3.4:0=[::1]:1", "tcp:21=[::ffff:1.2.3.4]:21", "tcp:21=[fe80::1%eth0]:21"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fw, err := ParseForward64(s)
		if err != nil {
			return
		}
		if !fw.Target.Addr().Is6() || fw.Target.Port() == 0 || fw.Pool.Port() == 0 || fw.Pool.Addr().IsValid() && !fw.Pool.Addr().Is4() {
			t.Fatalf("%q accepted as %+v", s, fw)
		}
		back, err := ParseForward64(fw.String())
		if err != nil || back != fw {
			t.Fatalf("%q -> %q -> %+v, %v", s, fw.String(), back, err)
		}
	})
}
