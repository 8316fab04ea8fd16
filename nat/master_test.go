package nat

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
)

// at runs a segment that must be accepted, arriving at time now.
func at(t *testing.T, e *Engine, now time.Time, pkt []byte) seen {
	t.Helper()
	v, out, r := e.processPacketReason(pkt, now)
	if v != Accept {
		t.Fatalf("dropped at %v: %v", now.Sub(t0), r)
	}
	return decodeOut(t, out)
}

// holdsControl runs hours of a data connection (a segment from the server
// every 10 minutes, swept each time) over a control connection that says
// nothing, and checks that the control connection stays: RFC 6384 §12,
// "control channels SHOULD NOT time out while there is an active data
// channel". Then the data connection closes, and the control connection
// times out after its own established timeout. data is a segment of the
// server's data stream; finIn and finOut close the data connection.
func holdsControl(t *testing.T, e *Engine, ctl conntrack.Tuple, data func(seq uint32) []byte, finIn, finOut []byte) {
	t.Helper()
	est := e.Table().Timeouts().TCPEstablished
	seq := uint32(9001)
	var now time.Time
	for d := time.Duration(0); d <= 5*time.Hour; d += 10 * time.Minute {
		now = t0.Add(d)
		at(t, e, now, data(seq))
		seq += 100
		e.Expire(now)
		if f, _ := e.Table().Lookup(ctl, now.UnixNano()); f == nil {
			t.Fatalf("control connection gone after %v of an active data connection (its own timeout %v)", d, est)
		}
	}
	at(t, e, now, finIn)
	at(t, e, now, finOut)
	e.Expire(now.Add(est - time.Minute))
	if f, _ := e.Table().Lookup(ctl, now.Add(est-time.Minute).UnixNano()); f == nil {
		t.Fatal("control connection gone before its own timeout once the data connection closed")
	}
	if n := e.Expire(now.Add(est + time.Minute)); n == 0 || e.Table().Len() != 0 {
		t.Fatalf("%d flows left after the control connection's own timeout", e.Table().Len())
	}
}

// TestControlKeptWhileDataActiveNAT44: an active-mode FTP data connection
// through NAT44 keeps its control connection for 5 hours of engine time.
func TestControlKeptWhileDataActiveNAT44(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustSend(t, e, cmd(1001, portIn))
	afterPort(t, e)
	checkDataConnection(t, e) // the server's SYN from port 20, seq 9000
	mustSend(t, e, tcpSeg{src: ap("198.18.0.2:50000"), dst: ap("198.19.0.2:20"), seq: 3000, ack: 9001, flags: fSYN | fACK})
	ctl := conntrack.Tuple{Src: cli.Addr(), Dst: srv.Addr(), SrcPort: cli.Port(), DstPort: srv.Port(), Proto: ipproto.TCP}
	srvData := ap("198.19.0.2:20")
	pubData := netip.AddrPortFrom(pubIP, 50000)
	holdsControl(t, e, ctl,
		func(seq uint32) []byte {
			return tcpSeg{src: srvData, dst: pubData, seq: seq, ack: 3001, flags: fACK, payload: strings.Repeat("d", 100)}.build()
		},
		tcpSeg{src: srvData, dst: pubData, seq: 1, ack: 3001, flags: fFIN | fACK}.build(),
		tcpSeg{src: ap("198.18.0.2:50000"), dst: srvData, seq: 3001, ack: 2, flags: fFIN | fACK}.build())
}

// TestControlKeptWhileDataActiveNAT64: the same through NAT64 (an EPRT of
// the IPv6 client, the IPv4 server's data connection to the pool).
func TestControlKeptWhileDataActiveNAT64(t *testing.T) {
	e := nat64Engine(t)
	pub := open64(t, e)
	eprt := "EPRT |2|fd00:64::2|50000|\r\n"
	c := send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: eprt}.build())
	send64(t, e, tcpSeg{src: srv4, dst: pub, seq: 5009, ack: uint32(1001 + len(c.payload)), flags: fACK | fPSH, payload: "200 EPRT ok\r\n"}.build())
	var port uint16
	e.Table().RangeExpectations(func(x *conntrack.Expectation) { port = x.DstPort })
	if port == 0 {
		t.Fatal("no expectation for the EPRT")
	}
	srvData := ap("198.18.64.2:20")
	pubData := netip.AddrPortFrom(pub.Addr(), port)
	send64(t, e, tcpSeg{src: srvData, dst: pubData, seq: 9000, flags: fSYN}.build())
	send64(t, e, tcpSeg{src: cli6Port(50000), dst: ap("[2001:db8:64::c612:4002]:20"), seq: 3000, ack: 9001, flags: fSYN | fACK}.build())
	ctl := conntrack.Tuple{Src: cli6.Addr(), Dst: srv6.Addr(), SrcPort: cli6.Port(), DstPort: srv6.Port(), Proto: ipproto.TCP}
	holdsControl(t, e, ctl,
		func(seq uint32) []byte {
			return tcpSeg{src: srvData, dst: pubData, seq: seq, ack: 3001, flags: fACK, payload: strings.Repeat("d", 100)}.build()
		},
		tcpSeg{src: srvData, dst: pubData, seq: 1, ack: 3001, flags: fFIN | fACK}.build(),
		tcpSeg{src: cli6Port(50000), dst: ap("[2001:db8:64::c612:4002]:20"), seq: 3001, ack: 2, flags: fFIN | fACK}.build())
}

// TestHalfClosedThroughEngine (RFC 5382 §5 REQ-5): through the engine, a
// connection the client half-closes stays translated after more than 4
// minutes of engine time (the server still sends, an hour later), and goes
// the transitory timeout after the server's FIN.
func TestHalfClosedThroughEngine(t *testing.T) {
	e := snatEngine(t)
	establish(t, e) // 198.18.0.2:40001 <-> 198.19.0.2:80, client next seq 2, server 101
	c, s := ap("198.18.0.2:40001"), ap("198.19.0.2:80")
	p := netip.AddrPortFrom(pubIP, 40001)
	at(t, e, t0, tcpSeg{src: c, dst: s, seq: 2, ack: 101, flags: fFIN | fACK}.build())
	later := t0.Add(4*time.Minute + 30*time.Second)
	if n := e.Expire(later); n != 0 {
		t.Fatalf("half-closed connection expired after 4m30s (%d flows)", n)
	}
	hour := t0.Add(time.Hour)
	o := at(t, e, hour, tcpSeg{src: s, dst: p, seq: 101, ack: 3, flags: fACK | fPSH, payload: "still sending"}.build())
	if o.Dst != c.Addr() || o.DstPort != c.Port() {
		t.Fatalf("server data after an hour delivered to %v:%d", o.Dst, o.DstPort)
	}
	at(t, e, hour, tcpSeg{src: s, dst: p, seq: 114, ack: 3, flags: fFIN | fACK}.build())
	at(t, e, hour, tcpSeg{src: c, dst: s, seq: 3, ack: 115, flags: fACK}.build())
	if n := e.Expire(hour.Add(4*time.Minute - time.Second)); n != 0 {
		t.Fatal("closed connection expired before the transitory timeout")
	}
	if n := e.Expire(hour.Add(4*time.Minute + time.Second)); n != 1 || e.Table().Len() != 0 || e.Bindings() != 0 {
		t.Fatalf("closed connection not expired after the transitory timeout: %d expired, %d left", n, e.Table().Len())
	}
}
