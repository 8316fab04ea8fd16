package nat

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/natalg/natalg/nat/header"
)

// NAT64 test network: an IPv6-only client, an IPv4 server reached at its
// RFC 6052 address under the well-known prefix, a pool of four addresses.
var (
	pfx64   = netip.MustParsePrefix("64:ff9b::/96")
	pool64  = netip.MustParsePrefix("198.19.64.0/30")
	cli6    = ap("[fd00:64::2]:40000")
	srv4    = ap("198.18.64.2:21")
	srv6    = ap("[64:ff9b::c612:4002]:21") // 198.18.64.2
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
		{NAT64Prefix: netip.MustParsePrefix("64:ff9b::/95"), NAT64Pool: pool64},
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
	web6 := ap("[64:ff9b::c612:4002]:80")
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
	o2 := send64(t, e, tcpSeg{src: cli6, dst: ap("[64:ff9b::c612:4003]:80"), seq: 1, flags: fSYN}.build())
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
			o := send64(t, e, tcpSeg{src: c, dst: netip.AddrPortFrom(netip.MustParseAddr("64:ff9b::c612:4002"), uint16(80+j)), seq: 1, flags: fSYN}.build())
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
	dns6 := ap("[64:ff9b::c612:4002]:53")
	o := send64(t, e, udpPkt(ap("[fd00:64::2]:5353"), dns6, "query", false))
	if o.Version != 4 || o.Proto != header.ProtoUDP || o.Dst != srv4Raw || o.payload != "query" {
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
	dst := ap("[64:ff9b::c612:4002]:33434")
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
	if o.Version != 6 || o.ICMPType != 3 || o.Src != netip.MustParseAddr("64:ff9b::c612:4001") || o.Dst != c.Addr() {
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
// IPv4 announcement of its pool endpoint (RFC 6384 §4), the sequence
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
	if d.Version != 6 || d.Dst != cli6.Addr() || d.DstPort != 50000 || d.Src != netip.MustParseAddr("64:ff9b::c612:4002") || d.SrcPort != 20 {
		t.Fatalf("data SYN in as v%d %v:%d -> %v:%d", d.Version, d.Src, d.SrcPort, d.Dst, d.DstPort)
	}
	d = send64(t, e, tcpSeg{src: cli6Port(50000), dst: ap("[64:ff9b::c612:4002]:20"), seq: 3000, ack: 9001, flags: fSYN | fACK}.build())
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
	web6 := ap("[64:ff9b::c612:4002]:80")
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
			pkt := udpPkt(ap("[fd00:64::2]:5353"), ap("[64:ff9b::c612:4002]:53"), strings.Repeat("q", i+1), false)
			v, out := e.processPacket(pkt, t0)
			if v != Accept {
				t.Fatal("dropped")
			}
			outs[k] = append(outs[k], bytes.Clone(out))
		}
		// another engine translating in between must not matter
		o := nat64Engine(t)
		o.processPacket(udpPkt(ap("[fd00:64::3]:1"), ap("[64:ff9b::c612:4002]:53"), "x", false), t0)
	}
	for i := range outs[0] {
		if !bytes.Equal(outs[0][i], outs[1][i]) {
			t.Fatalf("packet %d differs between engines:\n%x\n%x", i, outs[0][i], outs[1][i])
		}
	}
}
