package nat

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/xlat"
)

// The hairpin topology of these tests: two inside hosts, one forwarded.
var (
	hpClient = netip.MustParseAddr("198.18.0.2")
	hpServer = netip.MustParseAddr("198.18.0.3")
)

func hairpinEngine(t *testing.T, forwards ...string) *Engine {
	t.Helper()
	var fws []Forward
	for _, s := range forwards {
		fw, err := ParseForward(s)
		if err != nil {
			t.Fatal(err)
		}
		fws = append(fws, fw)
	}
	e, err := New(Config{
		Inside:   []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")},
		Public:   []netip.Addr{pubIP},
		Forwards: fws,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// mustUDP runs a datagram that must be accepted and returns it decoded.
func mustUDP(t *testing.T, e *Engine, src, dst netip.AddrPort, payload string) seen {
	t.Helper()
	v, out, r := e.processPacketReason(udpPkt(src, dst, payload, false), t0)
	if v != Accept {
		t.Fatalf("UDP %v -> %v dropped: %v", src, dst, r)
	}
	o := decodeOut(t, out)
	if o.payload != payload {
		t.Fatalf("UDP payload %q, want %q", o.payload, payload)
	}
	return o
}

func endpoints(o seen) (src, dst netip.AddrPort) {
	return netip.AddrPortFrom(o.Src, o.SrcPort), netip.AddrPortFrom(o.Dst, o.DstPort)
}

// wantPath fails unless o goes from src to dst.
func wantPath(t *testing.T, what string, o seen, src, dst netip.AddrPort) {
	t.Helper()
	if s, d := endpoints(o); s != src || d != dst {
		t.Fatalf("%s: %v -> %v, want %v -> %v", what, s, d, src, dst)
	}
}

// TestHairpinTCPForward: an inside client reaching a forwarded inside
// server through the public address gets there from its own external
// endpoint, the one its mapping has towards the outside (RFC 4787 REQ-9a,
// RFC 5382 REQ-8a: "External source IP address and port"), and the
// server's answers come back from the public endpoint the client used.
func TestHairpinTCPForward(t *testing.T) {
	e := hairpinEngine(t, "tcp:80=198.18.0.3:8080")
	client := netip.AddrPortFrom(hpClient, 40000)
	// Another host holds public port 40000, so the client's mapping is
	// another port: the hairpin must use that one, not the inside port.
	mustSend(t, e, tcpSeg{src: ap("198.18.0.9:40000"), dst: ap("198.19.0.2:443"), seq: 1, flags: fSYN})
	o := mustSend(t, e, tcpSeg{src: client, dst: ap("198.19.0.2:443"), seq: 1, flags: fSYN})
	mapped := netip.AddrPortFrom(pubIP, o.SrcPort)
	if o.Src != pubIP || o.SrcPort == 40000 {
		t.Fatalf("outbound from %v:%d, want the public address and a port other than 40000", o.Src, o.SrcPort)
	}
	pub80 := netip.AddrPortFrom(pubIP, 80)
	server := netip.AddrPortFrom(hpServer, 8080)
	o = mustSend(t, e, tcpSeg{src: client, dst: pub80, seq: 1000, flags: fSYN})
	wantPath(t, "hairpinned SYN", o, mapped, server)
	o = mustSend(t, e, tcpSeg{src: server, dst: mapped, seq: 7000, ack: 1001, flags: fSYN | fACK})
	wantPath(t, "SYN+ACK", o, pub80, client)
	o = mustSend(t, e, tcpSeg{src: client, dst: pub80, seq: 1001, ack: 7001, flags: fACK | fPSH, payload: "GET / HTTP/1.0\r\n\r\n"})
	wantPath(t, "request", o, mapped, server)
	o = mustSend(t, e, tcpSeg{src: server, dst: mapped, seq: 7001, ack: 1019, flags: fACK | fPSH, payload: "HTTP/1.0 200 OK\r\n\r\n"})
	wantPath(t, "answer", o, pub80, client)
	if o.payload != "HTTP/1.0 200 OK\r\n\r\n" || o.Seq != 7001 || o.Ack != 1019 {
		t.Fatalf("answer changed: %q seq %d ack %d", o.payload, o.Seq, o.Ack)
	}
	if n := e.Stats.Hairpinned.Load(); n != 1 {
		t.Fatalf("%d hairpinned flows counted, want 1", n)
	}
	kinds := map[string]int{}
	e.Flows(func(fi FlowInfo) { kinds[fi.Kind]++ })
	if kinds["hairpin"] != 1 {
		t.Fatalf("flow kinds %v, want one hairpin", kinds)
	}
	// The bindings go when the flows do.
	if n := e.Bindings(); n != 2 {
		t.Fatalf("%d bindings, want 2 (the two inside sources)", n)
	}
	e.Expire(t0.Add(24 * time.Hour))
	if n := e.Bindings(); n != 0 {
		t.Fatalf("%d bindings left after every flow expired", n)
	}
}

// TestHairpinForRouter: an inside packet to a public port that leads
// nowhere inside (not forwarded, not expected, not mapped) is for the router
// itself and passes unchanged, as do pings to the public address.
func TestHairpinForRouter(t *testing.T) {
	e := hairpinEngine(t, "tcp:80=198.18.0.3:8080")
	for _, pkt := range [][]byte{
		tcpSeg{src: ap("198.18.0.2:40000"), dst: netip.AddrPortFrom(pubIP, 22), seq: 1, flags: fSYN}.build(),
		tcpSeg{src: ap("198.18.0.2:40000"), dst: netip.AddrPortFrom(pubIP, 22), seq: 2, ack: 9, flags: fACK}.build(),
		udpPkt(ap("198.18.0.2:5353"), netip.AddrPortFrom(pubIP, 53), "q", false),
		udpPkt(ap("198.18.0.2:5353"), netip.AddrPortFrom(pubIP, 80), "tcp forward only", false),
		// RFC 5508 §5 REQ-7 asks hairpinned ICMP Query sessions of Basic
		// NAT only; natalg is a NAPT: a ping to the public address is the
		// router's to answer.
		icmpEcho(hpClient, pubIP, false, 7),
	} {
		keep := bytes.Clone(pkt)
		v, out, r := e.processPacketReason(pkt, t0)
		if v != Accept || !bytes.Equal(out, keep) {
			t.Fatalf("packet for the router: verdict %v (%v), changed %v", v, r, !bytes.Equal(out, keep))
		}
	}
	if e.Table().Len() != 0 || e.Bindings() != 0 || e.Stats.Passed.Load() != 5 {
		t.Fatalf("%d flows, %d bindings, %d passed: want 0, 0, 5", e.Table().Len(), e.Bindings(), e.Stats.Passed.Load())
	}
}

// TestHairpinUDP: UDP through a forward, and to another inside host's
// endpoint-independent mapping (RFC 4787 §6: X1 to X2':x2', "back to that
// internal address, X2:x2"), each from the sender's external endpoint.
func TestHairpinUDP(t *testing.T) {
	e := hairpinEngine(t, "udp:53=198.18.0.3:5353")
	x1, x2 := netip.AddrPortFrom(hpClient, 6000), netip.AddrPortFrom(hpServer, 5000)
	stun := ap("198.19.0.2:3478")
	// Both learn their mappings from an outside server.
	x1pub := netip.AddrPortFrom(pubIP, mustUDP(t, e, x1, stun, "binding?").SrcPort)
	x2pub := netip.AddrPortFrom(pubIP, mustUDP(t, e, x2, stun, "binding?").SrcPort)
	if x1pub.Port() != 6000 || x2pub.Port() != 5000 {
		t.Fatalf("mappings %v %v, want ports preserved", x1pub, x2pub)
	}
	// X1 to X2's mapping.
	o := mustUDP(t, e, x1, x2pub, "hello x2")
	wantPath(t, "x1 to x2's mapping", o, x1pub, x2)
	o = mustUDP(t, e, x2, x1pub, "hello x1")
	wantPath(t, "x2's answer", o, x2pub, x1)
	// X1 to the forwarded port.
	pub53 := netip.AddrPortFrom(pubIP, 53)
	o = mustUDP(t, e, x1, pub53, "query")
	wantPath(t, "to the forward", o, x1pub, netip.AddrPortFrom(hpServer, 5353))
	o = mustUDP(t, e, netip.AddrPortFrom(hpServer, 5353), x1pub, "answer")
	wantPath(t, "forward's answer", o, pub53, x1)
	if n := e.Stats.Hairpinned.Load(); n != 2 {
		t.Fatalf("%d hairpinned flows, want 2", n)
	}
	// A TCP segment other than a SYN to a port an inside endpoint holds
	// is not the router's: dropped, not passed to its stack (which would
	// reset the inside connection).
	mustSend(t, e, tcpSeg{src: ap("198.18.0.3:5001"), dst: ap("198.19.0.2:443"), seq: 1, flags: fSYN})
	mustDrop(t, e, tcpSeg{src: ap("198.18.0.2:40000"), dst: netip.AddrPortFrom(pubIP, 5001), seq: 5, ack: 9, flags: fACK}, DropNoFlow)
	// A host's own mapping is not a hairpin target (the flow would have
	// the same tuple both ways), nor is it the router's port.
	if v, _, r := e.processPacketReason(udpPkt(x1, x1pub, "self", false), t0); v != Drop || r != DropNoFlow || e.Stats.Hairpinned.Load() != 2 {
		t.Fatalf("a datagram to the sender's own mapping: %v %v, %d hairpinned", v, r, e.Stats.Hairpinned.Load())
	}
	// The mapping hairpin holds X2's binding: it outlives X2's own flow
	// only as long as the hairpinned flow lives.
	if n := e.Bindings(); n != 3 {
		t.Fatalf("%d bindings, want 3", n)
	}
	e.Expire(t0.Add(24 * time.Hour))
	if n := e.Bindings(); n != 0 {
		t.Fatalf("%d bindings left after every flow expired", n)
	}
}

// ftpHairpin opens a control connection from inside client 198.18.0.2:40000
// to the public address's port 21, forwarded to inside server
// 198.18.0.3:21, through greeting "220 hi\r\n": client ISN 1000, server ISN
// 5000. It returns the endpoints the server sees the client at.
func ftpHairpin(t *testing.T, e *Engine) (client, pub21, server, clientPub netip.AddrPort) {
	t.Helper()
	client, server = netip.AddrPortFrom(hpClient, 40000), netip.AddrPortFrom(hpServer, 21)
	pub21, clientPub = netip.AddrPortFrom(pubIP, 21), netip.AddrPortFrom(pubIP, 40000)
	wantPath(t, "control SYN", mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 1000, flags: fSYN}), clientPub, server)
	wantPath(t, "control SYN+ACK", mustSend(t, e, tcpSeg{src: server, dst: clientPub, seq: 5000, ack: 1001, flags: fSYN | fACK}), pub21, client)
	mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 1001, ack: 5001, flags: fACK})
	mustSend(t, e, tcpSeg{src: server, dst: clientPub, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"})
	return client, pub21, server, clientPub
}

// TestHairpinFTPPassive: the inside server's 227 announces its inside
// address; through the hairpin the client is told the public address, and
// its data connection there hairpins to the server from the client's
// external endpoint.
func TestHairpinFTPPassive(t *testing.T) {
	e := hairpinEngine(t, "tcp:21=198.18.0.3:21")
	client, pub21, server, clientPub := ftpHairpin(t, e)
	mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: "PASV\r\n"})
	in := "227 Entering Passive Mode (198,18,0,3,234,96).\r\n"
	o := mustSend(t, e, tcpSeg{src: server, dst: clientPub, seq: 5009, ack: 1007, flags: fACK | fPSH, payload: in})
	want := "227 Entering Passive Mode (198,19,100,100,234,96).\r\n"
	if o.payload != want {
		t.Fatalf("227 to the client: %q, want %q", o.payload, want)
	}
	wantPath(t, "227", o, pub21, client)
	// The client's ACK of the grown reply maps back for the server.
	o = mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 1007, ack: 5009 + uint32(len(want)), flags: fACK})
	if o.Ack != 5009+uint32(len(in)) {
		t.Fatalf("client ACK mapped to %d, want %d", o.Ack, 5009+len(in))
	}
	// Another inside host cannot take the data port announced to the
	// client (it would reach the server from the public address, which the
	// server checks the data connection against).
	mustDrop(t, e, tcpSeg{src: ap("198.18.0.4:40001"), dst: netip.AddrPortFrom(pubIP, 60000), seq: 1, flags: fSYN}, DropNoFlow)
	// The data connection to the announced public endpoint hairpins too.
	dataCli, dataPub := netip.AddrPortFrom(hpClient, 40001), netip.AddrPortFrom(pubIP, 60000)
	dataSrv := netip.AddrPortFrom(hpServer, 60000)
	o = mustSend(t, e, tcpSeg{src: dataCli, dst: dataPub, seq: 1, flags: fSYN})
	wantPath(t, "data SYN", o, netip.AddrPortFrom(pubIP, 40001), dataSrv)
	o = mustSend(t, e, tcpSeg{src: dataSrv, dst: netip.AddrPortFrom(pubIP, 40001), seq: 9000, ack: 2, flags: fSYN | fACK})
	wantPath(t, "data SYN+ACK", o, dataPub, dataCli)
	if e.Table().ExpectationCount() != 0 || e.Stats.DataFlows.Load() != 1 || e.Stats.Hairpinned.Load() != 2 {
		t.Fatalf("expectations %d, data flows %d, hairpinned %d: want 0, 1, 2",
			e.Table().ExpectationCount(), e.Stats.DataFlows.Load(), e.Stats.Hairpinned.Load())
	}
	related := 0
	e.Flows(func(fi FlowInfo) {
		if fi.Kind == "hairpin-bound" && fi.Related {
			related++
		}
	})
	if related != 1 {
		t.Fatalf("%d related hairpinned data flows, want 1", related)
	}
	e.Expire(t0.Add(24 * time.Hour))
	if n := e.Bindings(); n != 0 {
		t.Fatalf("%d bindings left after every flow expired", n)
	}
}

// TestHairpinFTPActive: the client's PORT announces its inside address;
// the server is told the public address and the client's external port,
// and its data connection from port 20 hairpins back to the client from
// the server's own external endpoint.
func TestHairpinFTPActive(t *testing.T) {
	e := hairpinEngine(t, "tcp:21=198.18.0.3:21")
	// Port 50000 is taken on the public address: the announced port moves.
	mustUDP(t, e, ap("198.18.0.9:1"), ap("198.19.0.2:9"), "x")
	mustSend(t, e, tcpSeg{src: ap("198.18.0.9:50000"), dst: ap("198.19.0.2:443"), seq: 1, flags: fSYN})
	client, pub21, server, clientPub := ftpHairpin(t, e)
	in := "PORT 198,18,0,2,195,80\r\n"
	o := mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: in})
	wantPath(t, "PORT", o, clientPub, server)
	a, ok := parsePORT(o.payload)
	if !ok || a.Addr() != pubIP || a.Port() == 50000 {
		t.Fatalf("PORT to the server: %q, want the public address and a port other than 50000", o.payload)
	}
	out := o.payload
	o = mustSend(t, e, tcpSeg{src: server, dst: clientPub, seq: 5009, ack: 1001 + uint32(len(out)), flags: fACK | fPSH, payload: "200 PORT ok\r\n"})
	if o.Ack != 1001+uint32(len(in)) {
		t.Fatalf("server ACK mapped to %d, want %d", o.Ack, 1001+len(in))
	}
	// The server's data connection from port 20 to the announced endpoint.
	dataSrv, dataCli := netip.AddrPortFrom(hpServer, 20), netip.AddrPortFrom(hpClient, 50000)
	o = mustSend(t, e, tcpSeg{src: dataSrv, dst: a, seq: 9000, flags: fSYN})
	wantPath(t, "data SYN", o, netip.AddrPortFrom(pubIP, 20), dataCli)
	o = mustSend(t, e, tcpSeg{src: dataCli, dst: netip.AddrPortFrom(pubIP, 20), seq: 1, ack: 9001, flags: fSYN | fACK})
	wantPath(t, "data SYN+ACK", o, a, dataSrv)
	if e.Table().ExpectationCount() != 0 || e.Stats.DataFlows.Load() != 1 || e.Stats.Hairpinned.Load() != 2 {
		t.Fatalf("expectations %d, data flows %d, hairpinned %d: want 0, 1, 2",
			e.Table().ExpectationCount(), e.Stats.DataFlows.Load(), e.Stats.Hairpinned.Load())
	}
}

// parsePORT reads the endpoint of a "PORT h1,h2,h3,h4,p1,p2\r\n" command.
func parsePORT(s string) (netip.AddrPort, bool) {
	var b [6]int
	var ok bool
	if n, err := fmt.Sscanf(s, "PORT %d,%d,%d,%d,%d,%d\r\n", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]); err == nil && n == 6 {
		ok = true
	}
	for _, v := range b {
		if v < 0 || v > 255 {
			ok = false
		}
	}
	a := netip.AddrFrom4([4]byte{byte(b[0]), byte(b[1]), byte(b[2]), byte(b[3])})
	return netip.AddrPortFrom(a, uint16(b[4]<<8|b[5])), ok
}

// TestHairpinNAT64: an IPv6 client reaching, through the prefix, a pool
// transport address bound to another IPv6 client is hairpinned (RFC 6146
// §3.8): the translated IPv4 packet, addressed to the NAT64 itself, is
// processed again as an inbound one, and arrives as IPv6 at the other
// client from the sender's pool address and port embedded in the prefix;
// the answers take the same way back. UDP and TCP.
func TestHairpinNAT64(t *testing.T) {
	prefix := netip.MustParsePrefix("2001:db8:64::/96")
	e, err := New(Config{NAT64Prefix: prefix, NAT64Pool: pool64})
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := ap("[fd00:64::2]:6000"), ap("[fd00:64::3]:5000")
	stun := netip.AddrPortFrom(xlat.Embed(prefix, netip.MustParseAddr("198.18.64.2")), 3478)
	learn := func(c netip.AddrPort) netip.AddrPort {
		o := send64(t, e, udpPkt(c, stun, "binding?", false))
		if o.Version != 4 || !pool64.Contains(o.Src) || o.SrcPort != c.Port() {
			t.Fatalf("%v left as v%d from %v:%d", c, o.Version, o.Src, o.SrcPort)
		}
		return netip.AddrPortFrom(o.Src, o.SrcPort)
	}
	t1, t2 := learn(c1), learn(c2)
	as6 := func(a netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(xlat.Embed(prefix, a.Addr()), a.Port())
	}
	// C1 to C2's pool transport address: IPv6 out, from C1's.
	o := send64(t, e, udpPkt(c1, as6(t2), "hello c2", false))
	if o.Version != 6 || o.payload != "hello c2" {
		t.Fatalf("hairpinned datagram: v%d %q", o.Version, o.payload)
	}
	wantPath(t, "c1 to c2's binding", o, as6(t1), c2)
	got := bytes.Clone(o.Buf) // as C2 got it
	o = send64(t, e, udpPkt(c2, as6(t1), "hello c1", false))
	wantPath(t, "c2's answer", o, as6(t2), c1)
	// An ICMPv6 error from C2 about the datagram it got hairpins back to
	// C1 too, quoting what C1 sent.
	o = send64(t, e, icmpErr(c2.Addr(), as6(t1).Addr(), 1, 4, got))
	if o.Version != 6 || o.Src != as6(t2).Addr() || o.Dst != c1.Addr() {
		t.Fatalf("ICMPv6 error came out v%d %v -> %v, want %v -> %v", o.Version, o.Src, o.Dst, as6(t2).Addr(), c1.Addr())
	}
	var q header.Parsed
	if r := q.DecodeInner(o.Buf[o.PayloadOff:]); r != header.Ok {
		t.Fatal(r)
	}
	if s, d := netip.AddrPortFrom(q.Src, q.SrcPort), netip.AddrPortFrom(q.Dst, q.DstPort); s != c1 || d != as6(t2) {
		t.Fatalf("quoted %v -> %v, want %v -> %v", s, d, c1, as6(t2))
	}
	// TCP to a binding C2 holds by its connection outside.
	web := netip.AddrPortFrom(xlat.Embed(prefix, netip.MustParseAddr("198.18.64.2")), 80)
	c2tcp := ap("[fd00:64::3]:5001")
	o = send64(t, e, tcpSeg{src: c2tcp, dst: web, seq: 1, flags: fSYN}.build())
	t2tcp := netip.AddrPortFrom(o.Src, o.SrcPort)
	c1tcp := ap("[fd00:64::2]:40000")
	o = send64(t, e, tcpSeg{src: c1tcp, dst: as6(t2tcp), seq: 100, flags: fSYN}.build())
	t1tcp := netip.AddrPortFrom(t1.Addr(), 40000)
	wantPath(t, "hairpinned SYN", o, as6(t1tcp), c2tcp)
	o = send64(t, e, tcpSeg{src: c2tcp, dst: as6(t1tcp), seq: 900, ack: 101, flags: fSYN | fACK}.build())
	wantPath(t, "SYN+ACK", o, as6(t2tcp), c1tcp)
	if o.Seq != 900 || o.Ack != 101 {
		t.Fatalf("SYN+ACK seq %d ack %d", o.Seq, o.Ack)
	}
	if n := e.Stats.Hairpinned.Load(); n != 2 {
		t.Fatalf("%d hairpinned flows, want 2", n)
	}
	kinds := map[string]int{}
	e.Flows(func(fi FlowInfo) { kinds[fi.Kind]++ })
	if kinds["nat64-hairpin"] != 2 {
		t.Fatalf("flow kinds %v, want two nat64-hairpin", kinds)
	}
	// A pool port nobody holds: dropped, as from outside.
	free := netip.AddrPortFrom(t2.Addr(), 7777)
	translated := e.Stats.Translated.Load()
	if v, _, r := e.processPacketReason(udpPkt(c1, as6(free), "x", false), t0); v != Drop || r != DropNoFlow {
		t.Fatalf("datagram to an unbound pool port: %v %v", v, r)
	}
	if n := e.Stats.Translated.Load(); n != translated {
		t.Fatalf("the dropped datagram was counted as translated too (%d -> %d)", translated, n)
	}
	// Every binding goes with the flows.
	e.Expire(t0.Add(24 * time.Hour))
	if n := e.Bindings(); n != 0 {
		t.Fatalf("%d bindings left after every flow expired", n)
	}
}

// TestStateHairpin: hairpinned flows (through a forward, to an expectation
// with its FTP master, to another host's mapping, and NAT64's) are saved
// and restored with the bindings they hold, and keep translating.
func TestStateHairpin(t *testing.T) {
	mk := func(t *testing.T) *Engine { return hairpinEngine(t, "tcp:21=198.18.0.3:21") }
	e := mk(t)
	client, pub21, server, clientPub := ftpHairpin(t, e)
	mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: "PASV\r\n"})
	in := "227 Entering Passive Mode (198,18,0,3,234,96).\r\n"
	mustSend(t, e, tcpSeg{src: server, dst: clientPub, seq: 5009, ack: 1007, flags: fACK | fPSH, payload: in})
	dataCli, dataPub, dataSrv := netip.AddrPortFrom(hpClient, 40001), netip.AddrPortFrom(pubIP, 60000), netip.AddrPortFrom(hpServer, 60000)
	mustSend(t, e, tcpSeg{src: dataCli, dst: dataPub, seq: 1, flags: fSYN})
	x1, x2 := netip.AddrPortFrom(hpClient, 6000), netip.AddrPortFrom(hpServer, 5000)
	x2pub := netip.AddrPortFrom(pubIP, mustUDP(t, e, x2, ap("198.19.0.2:3478"), "binding?").SrcPort)
	x1pub := netip.AddrPortFrom(pubIP, mustUDP(t, e, x1, x2pub, "hello x2").SrcPort)
	flows, binds := e.Table().Len(), e.Bindings()
	e2, st, _ := saveLoad(t, e, mk, t0.Add(time.Second))
	if st.Flows != flows || st.Misfit+st.Clash+st.Expired != 0 || e2.Bindings() != binds {
		t.Fatalf("load stats %+v, %d bindings, want %d flows and %d bindings", st, e2.Bindings(), flows, binds)
	}
	kinds := map[string]int{}
	e2.Flows(func(fi FlowInfo) { kinds[fi.Kind]++ })
	if kinds["hairpin"] != 1 || kinds["hairpin-bound"] != 2 {
		t.Fatalf("restored kinds %v", kinds)
	}
	// The control flow's ledger: the client's ACK of the grown 227.
	o := mustSend(t, e2, tcpSeg{src: client, dst: pub21, seq: 1007, ack: 5009 + uint32(len(in)) + 4, flags: fACK})
	wantPath(t, "control ACK", o, clientPub, server)
	if o.Ack != 5009+uint32(len(in)) {
		t.Fatalf("restored control flow mapped the ACK to %d", o.Ack)
	}
	wantPath(t, "data SYN+ACK", mustSend(t, e2, tcpSeg{src: dataSrv, dst: netip.AddrPortFrom(pubIP, 40001), seq: 9, ack: 2, flags: fSYN | fACK}), dataPub, dataCli)
	wantPath(t, "x2's answer", mustUDP(t, e2, x2, x1pub, "hello x1"), x2pub, x1)
	e2.Expire(t0.Add(24 * time.Hour))
	if n := e2.Bindings(); n != 0 {
		t.Fatalf("%d bindings left after every restored flow expired", n)
	}

	// NAT64.
	prefix := netip.MustParsePrefix("2001:db8:64::/96")
	mk64 := func(t *testing.T) *Engine {
		e, err := New(Config{NAT64Prefix: prefix, NAT64Pool: pool64})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e = mk64(t)
	c1, c2 := ap("[fd00:64::2]:6000"), ap("[fd00:64::3]:5000")
	o = send64(t, e, udpPkt(c2, netip.AddrPortFrom(xlat.Embed(prefix, netip.MustParseAddr("198.18.64.2")), 3478), "binding?", false))
	t2 := netip.AddrPortFrom(xlat.Embed(prefix, o.Src), o.SrcPort)
	o = send64(t, e, udpPkt(c1, t2, "hello c2", false))
	t1 := netip.AddrPortFrom(o.Src, o.SrcPort)
	flows, binds = e.Table().Len(), e.Bindings()
	e2, st, _ = saveLoad(t, e, mk64, t0.Add(time.Second))
	if st.Flows != flows || st.Misfit+st.Clash+st.Expired != 0 || e2.Bindings() != binds {
		t.Fatalf("NAT64 load stats %+v, %d bindings, want %d flows and %d bindings", st, e2.Bindings(), flows, binds)
	}
	wantPath(t, "restored NAT64 hairpin answer", send64(t, e2, udpPkt(c2, t1, "hello c1", false)), t2, c1)
	// C2's restored mapping is still active: a new hairpin reaches it.
	o = send64(t, e2, udpPkt(ap("[fd00:64::2]:6001"), t2, "again", false))
	if s, d := endpoints(o); d != c2 || s.Port() != 6001 {
		t.Fatalf("new hairpin after the restore: %v -> %v, want to %v", s, d, c2)
	}
}

// TestHairpinICMPError: an ICMP error from the hairpin's target about a
// hairpinned datagram reaches the sender (RFC 5508 §5 REQ-7): from the
// public address, addressed to the source of the quoted packet after its
// translation back, which is what the sender sent.
func TestHairpinICMPError(t *testing.T) {
	e := hairpinEngine(t, "udp:53=198.18.0.3:5353")
	x1, pub53, target := netip.AddrPortFrom(hpClient, 6000), netip.AddrPortFrom(pubIP, 53), netip.AddrPortFrom(hpServer, 5353)
	v, out, _ := e.processPacketReason(udpPkt(x1, pub53, "query", false), t0)
	if v != Accept {
		t.Fatal("hairpinned datagram dropped")
	}
	sent := bytes.Clone(out) // as the target got it: public:6000 -> target
	wantPath(t, "datagram", decodeOut(t, sent), netip.AddrPortFrom(pubIP, 6000), target)
	v, out, r := e.processPacketReason(icmpErr(hpServer, pubIP, 3, 3, sent), t0)
	if v != Accept {
		t.Fatalf("port unreachable from the target dropped: %v", r)
	}
	o := decodeOut(t, out)
	if o.Src != pubIP || o.Dst != hpClient {
		t.Fatalf("error outer %v -> %v, want %v -> %v", o.Src, o.Dst, pubIP, hpClient)
	}
	var q header.Parsed
	if r := q.DecodeInner(o.Buf[o.PayloadOff:]); r != header.Ok {
		t.Fatal(r)
	}
	if s, d := netip.AddrPortFrom(q.Src, q.SrcPort), netip.AddrPortFrom(q.Dst, q.DstPort); s != x1 || d != pub53 {
		t.Fatalf("quoted %v -> %v, want what the sender sent, %v -> %v", s, d, x1, pub53)
	}
}
