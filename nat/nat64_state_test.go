package nat

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/alg"
	"github.com/natalg/natalg/nat/header"
)

// twin runs the same packets through an engine and the engine restored
// from its state, and checks that both give the same packet, byte for
// byte: IPv4 Identification included (the counter is saved).
type twin struct {
	t    *testing.T
	a, b *Engine
}

// send runs pkt through both engines; both must accept it.
func (w twin) send(pkt []byte) seen {
	w.t.Helper()
	va, oa, ra := w.a.processPacketReason(room(pkt), t0)
	vb, ob, rb := w.b.processPacketReason(room(pkt), t0)
	if va != Accept || vb != Accept {
		w.t.Fatalf("dropped: before the restore %v %v, after %v %v", va, ra, vb, rb)
	}
	sb := decodeOut(w.t, ob)
	if !bytes.Equal(oa, ob) {
		w.t.Fatalf("restored engine differs:\n%x\nwant\n%x", ob, oa)
	}
	return sb
}

// room returns a copy of pkt in a buffer with room to grow, as front ends
// pass them.
func room(pkt []byte) []byte {
	return append(make([]byte, 0, 65535), pkt...)
}

// drop runs pkt through both engines; both must drop it for reason want.
func (w twin) drop(pkt []byte, want DropReason) {
	w.t.Helper()
	for i, e := range []*Engine{w.a, w.b} {
		if v, _, r := e.processPacketReason(room(pkt), t0); v != Drop || r != want {
			w.t.Fatalf("engine %d: %v %v, want drop %v", i, v, r, want)
		}
	}
}

// mk64 makes a NAT64 engine for saveLoad.
func mk64(t *testing.T) *Engine { return nat64Engine(t) }

// poolRefs returns the sum of the reference counts of the NAT64 pool
// bindings.
func (e *Engine) poolRefs() int {
	k := 0
	if e.n64 != nil {
		for _, m := range e.n64.ports {
			k += m.refs()
		}
	}
	return k
}

// open64 opens a NAT64 control connection from cli6 to srv6 (client ISN
// 1000, server ISN 5000, greeting "220 hi\r\n"), and returns the client's
// pool endpoint.
func open64(t *testing.T, e *Engine) netip.AddrPort {
	t.Helper()
	o := send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1000, flags: fSYN, mss: 1440}.build())
	pub := netip.AddrPortFrom(o.Src, o.SrcPort)
	send64(t, e, tcpSeg{src: srv4, dst: pub, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1460}.build())
	send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1001, ack: 5001, flags: fACK}.build())
	send64(t, e, tcpSeg{src: srv4, dst: pub, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"}.build())
	return pub
}

// A NAT64 active-mode session whose EPRT |2| became a PORT (a length
// change) keeps translating in a fresh engine: the retransmitted EPRT gets
// the same PORT, the next segments both ways the same SEQ/ACK shifts and
// family translation, the pending expectation admits the server's data
// SYN; the bindings and their references are the engine's before and after,
// and a second restart carries the data flow with its master.
func TestStateNAT64FTPActive(t *testing.T) {
	e := nat64Engine(t)
	pub := open64(t, e)
	eprt := "EPRT |2|fd00:64::2|50000|\r\n"
	c := send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: eprt}.build())
	if !strings.HasPrefix(c.payload, "PORT ") || len(c.payload) == len(eprt) {
		t.Fatalf("EPRT left as %q", c.payload)
	}
	binds, refs := e.Bindings(), e.poolRefs()
	if binds != 2 || refs != 2 || e.Table().ExpectationCount() != 1 {
		t.Fatalf("before: %d bindings, %d references, %d expectations", binds, refs, e.Table().ExpectationCount())
	}
	e2, st, _ := saveLoad(t, e, mk64, t0)
	if st.Flows != 1 || st.FTP != 1 || st.Expectations != 1 || st.Bindings != binds ||
		st.Expired+st.Misfit+st.Full+st.Clash+st.Orphans != 0 {
		t.Fatalf("load stats %+v", st)
	}
	if e2.Bindings() != binds || e2.poolRefs() != refs || e2.ports.bindings() != 0 {
		t.Fatalf("after: %d bindings, %d references (%d public)", e2.Bindings(), e2.poolRefs(), e2.ports.bindings())
	}
	var fi FlowInfo
	e2.Flows(func(f FlowInfo) { fi = f })
	if !fi.FTP || fi.Kind != "nat64" || fi.SeqDelta != [2]int32{int32(len(c.payload) - len(eprt)), 0} {
		t.Fatalf("restored flow %+v", fi)
	}
	w := twin{t, e, e2}
	// the EPRT again (its ACK lost in the restart): the same PORT, no
	// second expectation
	if again := w.send(tcpSeg{src: cli6, dst: srv6, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: eprt}.build()); again.payload != c.payload {
		t.Fatalf("retransmitted EPRT became %q, want %q", again.payload, c.payload)
	}
	if e2.Table().ExpectationCount() != 1 || e2.Bindings() != binds {
		t.Fatalf("after the retransmission: %d expectations, %d bindings", e2.Table().ExpectationCount(), e2.Bindings())
	}
	// the server acknowledges the rewritten text, the client sees its own
	a := w.send(tcpSeg{src: srv4, dst: pub, seq: 5009, ack: uint32(1001 + len(c.payload)), flags: fACK | fPSH, payload: "200 PORT ok\r\n"}.build())
	if a.Version != 6 || a.Ack != uint32(1001+len(eprt)) || a.Src != srv6.Addr() || a.Dst != cli6.Addr() {
		t.Fatalf("reply as v%d %v -> %v ack %d", a.Version, a.Src, a.Dst, a.Ack)
	}
	n := w.send(tcpSeg{src: cli6, dst: srv6, seq: uint32(1001 + len(eprt)), ack: 5022, flags: fACK | fPSH, payload: "RETR f\r\n"}.build())
	if n.Version != 4 || n.Seq != uint32(1001+len(c.payload)) || n.Src != pub.Addr() || n.Dst != srv4Raw {
		t.Fatalf("RETR as v%d %v -> %v seq %d", n.Version, n.Src, n.Dst, n.Seq)
	}
	// the expectation: a third party is refused, the server's port 20 let in
	port := uint16(0)
	if i := strings.LastIndexByte(c.payload, ','); i > 0 {
		h := strings.Split(strings.TrimSpace(c.payload[5:]), ",")
		var p1, p2 int
		for _, ch := range h[4] {
			p1 = p1*10 + int(ch-'0')
		}
		for _, ch := range h[5] {
			p2 = p2*10 + int(ch-'0')
		}
		port = uint16(p1<<8 | p2)
	}
	w.drop(tcpSeg{src: ap("198.18.64.9:20"), dst: netip.AddrPortFrom(pub.Addr(), port), seq: 1, flags: fSYN}.build(), DropNoFlow)
	d := w.send(tcpSeg{src: ap("198.18.64.2:20"), dst: netip.AddrPortFrom(pub.Addr(), port), seq: 9000, flags: fSYN}.build())
	if d.Version != 6 || d.Dst != cli6.Addr() || d.DstPort != 50000 || d.Src != srv6.Addr() || d.SrcPort != 20 {
		t.Fatalf("data SYN in as v%d %v:%d -> %v:%d", d.Version, d.Src, d.SrcPort, d.Dst, d.DstPort)
	}
	w.send(tcpSeg{src: cli6Port(50000), dst: ap("[2001:db8:64::c612:4002]:20"), seq: 3000, ack: 9001, flags: fSYN | fACK}.build())
	if e.Bindings() != e2.Bindings() || e.poolRefs() != e2.poolRefs() || e2.Table().ExpectationCount() != 0 {
		t.Fatalf("with the data connection: %d/%d bindings, %d/%d references", e.Bindings(), e2.Bindings(), e.poolRefs(), e2.poolRefs())
	}
	// a second restart carries the data flow, related to its master
	e3, st, _ := saveLoad(t, e2, mk64, t0.Add(time.Second))
	if st.Flows != 2 || st.FTP != 1 || e3.Bindings() != e2.Bindings() || e3.poolRefs() != e2.poolRefs() {
		t.Fatalf("second load: %+v, %d bindings, %d references", st, e3.Bindings(), e3.poolRefs())
	}
	kinds := map[string]int{}
	e3.Flows(func(f FlowInfo) {
		if f.Kind == "nat64-expected" && !f.Related {
			t.Errorf("data flow not related: %+v", f)
		}
		kinds[f.Kind]++
	})
	if kinds["nat64"] != 1 || kinds["nat64-expected"] != 1 {
		t.Fatalf("flow kinds %v", kinds)
	}
	w = twin{t, e, e3}
	w.send(tcpSeg{src: ap("198.18.64.2:20"), dst: netip.AddrPortFrom(pub.Addr(), port), seq: 9001, ack: 3001, flags: fACK | fPSH, payload: "data"}.build())
	w.send(tcpSeg{src: srv4, dst: pub, seq: 5022, ack: uint32(1001 + len(c.payload) + 8), flags: fACK | fPSH, payload: "150 ok\r\n"}.build())
	// everything expires and releases its bindings
	e3.Expire(t0.Add(3 * time.Hour))
	if e3.Table().Len() != 0 || e3.Bindings() != 0 || e3.poolRefs() != 0 {
		t.Fatalf("after expiry: %d flows, %d bindings", e3.Table().Len(), e3.Bindings())
	}
}

// The in-band state of the RFC 6384 gateway survives a restart: an EPSV
// sent as "PASV\r\nEPSV" with both replies outstanding; the probe PASV's
// long 227, removed whole, is removed again identically when the server
// retransmits it after a second restart (the span and hash of the removed
// text are saved); the EPSV's rejection becomes a 229 from the kept port,
// and the next EPSV goes as PASV.
func TestStateNAT64EPSVProbe(t *testing.T) {
	probe := func(t *testing.T) *Engine {
		e, err := New(Config{NAT64Prefix: pfx64, NAT64Pool: pool64, FTP: alg.Config{NAT64EPSVProbe: true}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := probe(t)
	pub := open64(t, e)
	cl := func(seq uint32, p string) []byte {
		return tcpSeg{src: cli6, dst: srv6, seq: seq, ack: 5009, flags: fACK | fPSH, payload: p}.build()
	}
	sv := func(seq, ack uint32, p string) []byte {
		return tcpSeg{src: srv4, dst: pub, seq: seq, ack: ack, flags: fACK | fPSH, payload: p}.build()
	}
	if o := send64(t, e, cl(1001, "EPSV\r\n")); o.payload != "PASV\r\nEPSV\r\n" {
		t.Fatalf("EPSV left as %q", o.payload)
	}
	e2, st, _ := saveLoad(t, e, probe, t0)
	if st.Flows != 1 || st.FTP != 1 || st.Misfit != 0 {
		t.Fatalf("load stats %+v", st)
	}
	w := twin{t, e, e2}
	if o := w.send(cl(1001, "EPSV\r\n")); o.payload != "PASV\r\nEPSV\r\n" || o.Seq != 1001 {
		t.Fatalf("retransmitted EPSV: seq %d %q", o.Seq, o.payload)
	}
	r227 := "227 Entering Passive Mode (198,18,64,2,195,80). Long text to pass the 64 bytes kept\r\n"
	if len(r227) <= 64 {
		t.Fatal("227 too short for the test")
	}
	o := w.send(sv(5009, 1013, r227))
	if o.payload != "" || o.Seq != 5009 || o.Ack != 1007 {
		t.Fatalf("probe 227: seq %d ack %d %q", o.Seq, o.Ack, o.payload)
	}
	e3, st, _ := saveLoad(t, e2, probe, t0)
	if st.Flows != 1 || st.FTP != 1 {
		t.Fatalf("second load %+v", st)
	}
	w = twin{t, e, e3}
	if o := w.send(sv(5009, 1013, r227)); o.payload != "" || o.Seq != 5009 {
		t.Fatalf("retransmitted 227 after the restart: seq %d %q", o.Seq, o.payload)
	}
	// a retransmission that differs beyond the kept 64 bytes is refused
	bad := r227[:70] + "X" + r227[71:]
	w.drop(sv(5009, 1013, bad), DropALGRetransMismatch)
	rej := "502 EPSV not implemented\r\n"
	o = w.send(sv(uint32(5009+len(r227)), 1013, rej))
	if want := "229 Entering Extended Passive Mode (|||50000|)\r\n"; o.payload != want || o.Seq != 5009 {
		t.Fatalf("rejection became seq %d %q, want %q", o.Seq, o.payload, want)
	}
	if o := w.send(cl(1007, "EPSV\r\n")); o.payload != "PASV\r\n" || o.Seq != 1013 {
		t.Fatalf("second EPSV: seq %d %q", o.Seq, o.payload)
	}
}

// TestStateNAT64UDPAndEcho: NAT64 UDP and ICMP echo flows (ICMPv6 on the
// IPv6 side, ICMP on the IPv4 side) are restored with their pool bindings
// and translate the answers the same.
func TestStateNAT64UDPAndEcho(t *testing.T) {
	e := nat64Engine(t)
	dns6 := ap("[2001:db8:64::c612:4002]:53")
	o := send64(t, e, udpPkt(ap("[fd00:64::2]:5353"), dns6, "query", false))
	ping := send64(t, e, icmpEcho(netip.MustParseAddr("fd00:64::2"), srv6.Addr(), false, 99))
	e2, st, _ := saveLoad(t, e, mk64, t0)
	if st.Flows != 2 || st.Misfit != 0 || e2.Bindings() != e.Bindings() || e2.poolRefs() != e.poolRefs() {
		t.Fatalf("load stats %+v, %d bindings", st, e2.Bindings())
	}
	w := twin{t, e, e2}
	b := w.send(udpPkt(ap("198.18.64.2:53"), netip.AddrPortFrom(o.Src, o.SrcPort), "answer", true))
	if b.Version != 6 || b.DstPort != 5353 || b.payload != "answer" {
		t.Fatalf("UDP back as v%d port %d %q", b.Version, b.DstPort, b.payload)
	}
	b = w.send(icmpEcho(srv4Raw, ping.Src, true, 99))
	if b.Version != 6 || b.ICMPType != header.ICMPv6EchoReply || b.DstPort != 99 {
		t.Fatalf("echo reply back as v%d type %d id %d", b.Version, b.ICMPType, b.DstPort)
	}
}

// NAT64 flows saved with NAT64 on are skipped and counted when it is now
// off, or when the prefix or pool changed; their expectation with them.
func TestStateNAT64ConfigChanged(t *testing.T) {
	e := nat64Engine(t)
	open64(t, e)
	send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: "EPRT |2|fd00:64::2|50000|\r\n"}.build())
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"NAT64 off", Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}}},
		{"another prefix", Config{NAT64Prefix: netip.MustParsePrefix("fd00:6464::/96"), NAT64Pool: pool64}},
		{"another pool", Config{NAT64Prefix: pfx64, NAT64Pool: netip.MustParsePrefix("198.19.65.0/30")}},
	} {
		mk := func(t *testing.T) *Engine {
			e, err := New(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		e2, st, _ := saveLoad(t, e, mk, t0)
		if st.Flows != 0 || st.Misfit != 1 || st.Orphans != 1 || e2.Bindings() != 0 || e2.Table().Len() != 0 || e2.Table().ExpectationCount() != 0 {
			t.Errorf("%s: %+v, %d bindings", c.name, st, e2.Bindings())
		}
	}
	// a pool that still holds the address: restored
	mk := func(t *testing.T) *Engine {
		e, err := New(Config{NAT64Prefix: pfx64, NAT64Pool: netip.MustParsePrefix("198.19.64.0/29")})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e2, st, _ := saveLoad(t, e, mk, t0)
	if st.Flows != 1 || st.Expectations != 1 || e2.Bindings() != 2 || e2.poolRefs() != 2 {
		t.Errorf("larger pool: %+v, %d bindings", st, e2.Bindings())
	}
}

// A file of version 1 (natalg before NAT64 flows were saved; testdata made
// by that version from a SNAT FTP session with a grown PORT and a NAT64 FTP
// session with its EPRT rewritten, plus a NAT64 UDP flow) still loads: the
// NAT44 session is restored and works, the NAT64 flows are skipped as
// misfits and their expectation as an orphan.
func TestStateVersion1(t *testing.T) {
	b, err := os.ReadFile("testdata/state-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	if v := int(b[8])<<8 | int(b[9]); v != 1 {
		t.Fatalf("testdata of version %d", v)
	}
	e, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}, NAT64Prefix: pfx64, NAT64Pool: pool64})
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.LoadState(bytes.NewReader(b), t0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Flows != 1 || st.FTP != 1 || st.Expectations != 1 || st.Misfit != 2 || st.Orphans != 1 || st.Bindings != 2 || e.poolRefs() != 0 {
		t.Fatalf("load stats %+v", st)
	}
	afterPort(t, e)
	checkDataConnection(t, e)
	// a version newer than this natalg's is refused
	newer := bytes.Clone(b)
	newer[9] = StateVersion + 1
	if _, err := nat64Engine(t).LoadState(bytes.NewReader(newer), t0); !errors.Is(err, ErrStateVersion) {
		t.Fatalf("version %d: %v", StateVersion+1, err)
	}
}

// A static NAT64 binding's FTP session (an IPv4 client of a published IPv6
// server) with the expectation of a PASV pending survives a restart: the
// flow, the expectation and the pinned binding are restored, and the data
// connection gets in; an engine without the binding refuses the flow as a
// misfit.
func TestStateNAT64Static(t *testing.T) {
	e := static64Engine(t)
	srv := ap("[fd00:64::21]:21")
	pool := e.n64.addrs[e.n64.pick(srv.Addr())]
	pub := netip.AddrPortFrom(pool, 2121)
	cli4 := ap("198.18.7.9:40000")
	cliAs6 := netip.AddrPortFrom(netip.MustParseAddr("2001:db8:64::c612:709"), 40000)
	send64(t, e, tcpSeg{src: cli4, dst: pub, seq: 1000, flags: fSYN}.build())
	send64(t, e, tcpSeg{src: srv, dst: cliAs6, seq: 5000, ack: 1001, flags: fSYN | fACK}.build())
	send64(t, e, tcpSeg{src: srv, dst: cliAs6, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"}.build())
	send64(t, e, tcpSeg{src: cli4, dst: pub, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: "PASV\r\n"}.build())
	r := send64(t, e, tcpSeg{src: srv, dst: cliAs6, seq: 5009, ack: 1007, flags: fACK | fPSH, payload: "229 Entering Extended Passive Mode (|||50000|)\r\n"}.build())
	if !strings.HasPrefix(r.payload, "227 ") {
		t.Fatalf("229 reached the client as %q", r.payload)
	}
	e2, st, _ := saveLoad(t, e, static64Engine, t0)
	if st.Flows != 1 || st.FTP != 1 || st.Expectations != 1 || st.Misfit != 0 {
		t.Fatalf("load stats %+v", st)
	}
	if e2.Bindings() != e.Bindings() {
		t.Errorf("%d bindings restored, %d saved", e2.Bindings(), e.Bindings())
	}
	dt := send64(t, e2, tcpSeg{src: ap("198.18.7.9:40001"), dst: netip.AddrPortFrom(pool, 50000), seq: 1, flags: fSYN}.build())
	if dt.Version != 6 || dt.Dst != srv.Addr() || dt.DstPort != 50000 {
		t.Fatalf("data SYN after the restart reached %v:%d", dt.Dst, dt.DstPort)
	}
	_, st, _ = saveLoad(t, e, mk64, t0)
	if st.Flows != 0 || st.Misfit != 1 {
		t.Errorf("without the binding: %+v", st)
	}
}
