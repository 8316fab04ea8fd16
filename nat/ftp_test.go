package nat

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/natalg/natalg/alg"
)

// The SNAT topology of these tests: an FTP client inside, a server outside.
var (
	cli    = ap("198.18.0.2:40000")
	srv    = ap("198.19.0.2:21")
	pubIP  = netip.MustParseAddr("198.19.100.100")
	pubCli = netip.AddrPortFrom(pubIP, 40000)
)

func snatEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := New(Config{
		Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")},
		Public: []netip.Addr{pubIP},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// send runs one segment through the engine.
func send(t *testing.T, e *Engine, s tcpSeg) (Verdict, seen, DropReason) {
	t.Helper()
	v, out, r := e.processPacketReason(s.build(), t0)
	if v != Accept {
		return v, seen{}, r
	}
	return v, decodeOut(t, out), r
}

// mustSend runs a segment that must be accepted.
func mustSend(t *testing.T, e *Engine, s tcpSeg) seen {
	t.Helper()
	v, o, r := send(t, e, s)
	if v != Accept {
		t.Fatalf("segment %q dropped: %v", s.payload, r)
	}
	return o
}

// mustDrop runs a segment that must be dropped for reason want.
func mustDrop(t *testing.T, e *Engine, s tcpSeg, want DropReason) {
	t.Helper()
	if v, _, r := send(t, e, s); v != Drop || r != want {
		t.Fatalf("segment %q: verdict %v reason %v, want drop %v", s.payload, v, r, want)
	}
}

// handshake opens the control connection: client ISN 1000, server ISN 5000,
// then the server's "220 hi\r\n" greeting (5001..5008). The client's next
// byte is 1001, the server's 5009.
func handshake(t *testing.T, e *Engine) {
	t.Helper()
	o := mustSend(t, e, tcpSeg{src: cli, dst: srv, seq: 1000, flags: fSYN, mss: 1460})
	if o.Src != pubIP || o.SrcPort != 40000 || o.Seq != 1000 {
		t.Fatalf("SYN out %v:%d seq %d", o.Src, o.SrcPort, o.Seq)
	}
	o = mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1460})
	if o.Dst != cli.Addr() || o.DstPort != 40000 {
		t.Fatalf("SYN+ACK out to %v:%d", o.Dst, o.DstPort)
	}
	mustSend(t, e, tcpSeg{src: cli, dst: srv, seq: 1001, ack: 5001, flags: fACK})
	mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"})
}

func cmd(seq uint32, text string) tcpSeg {
	return tcpSeg{src: cli, dst: srv, seq: seq, ack: 5009, flags: fACK | fPSH, payload: text}
}

const (
	portIn  = "PORT 198,18,0,2,195,80\r\n"     // 24 bytes, port 50000
	portOut = "PORT 198,19,100,100,195,80\r\n" // 28 bytes: +4
)

// checkDataConnection checks that the announced data connection from the
// server's port 20 is let in to the client's port 50000, and that a third
// party is not.
func checkDataConnection(t *testing.T, e *Engine) {
	t.Helper()
	mustDrop(t, e, tcpSeg{src: ap("198.19.0.66:20"), dst: ap("198.19.100.100:50000"), seq: 1, flags: fSYN}, DropNoFlow)
	o := mustSend(t, e, tcpSeg{src: ap("198.19.0.2:20"), dst: ap("198.19.100.100:50000"), seq: 9000, flags: fSYN})
	if o.Dst != cli.Addr() || o.DstPort != 50000 || o.Src != srv.Addr() || o.SrcPort != 20 {
		t.Fatalf("data SYN translated to %v:%d -> %v:%d", o.Src, o.SrcPort, o.Dst, o.DstPort)
	}
	if e.Table().ExpectationCount() != 0 {
		t.Fatal("expectation not consumed")
	}
}

// afterPort checks the stream after a +4 rewrite of the command at 1001..1024:
// the server's ACK of the rewritten text maps back, the next command moves.
func afterPort(t *testing.T, e *Engine) {
	t.Helper()
	o := mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5009, ack: 1029, flags: fACK | fPSH, payload: "200 PORT ok\r\n"})
	if o.Ack != 1025 {
		t.Fatalf("server ACK 1029 mapped to %d, want 1025", o.Ack)
	}
	o = mustSend(t, e, cmd(1025, "LIST\r\n"))
	if o.Seq != 1029 {
		t.Fatalf("LIST seq 1025 mapped to %d, want 1029", o.Seq)
	}
}

func TestFTPPortSingleSegment(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	o := mustSend(t, e, cmd(1001, portIn))
	if o.payload != portOut || o.Seq != 1001 {
		t.Fatalf("got seq %d %q, want 1001 %q", o.Seq, o.payload, portOut)
	}
	afterPort(t, e)
	checkDataConnection(t, e)
}

// The kernel drops a PORT split across segments ("partial matching").
func TestFTPPortSplitTwoSegments(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustDrop(t, e, cmd(1001, "PORT 198,18,0,2,1"), DropALGHeld)
	o := mustSend(t, e, cmd(1018, "95,80\r\n"))
	if o.Seq != 1001 || o.payload != portOut {
		t.Fatalf("merged release: seq %d %q, want 1001 %q", o.Seq, o.payload, portOut)
	}
	afterPort(t, e)
	checkDataConnection(t, e)
}

func TestFTPPortSplitThreeSegments(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustDrop(t, e, cmd(1001, "POR"), DropALGHeld)
	mustDrop(t, e, cmd(1004, "T 198,18,0,2,1"), DropALGHeld)
	o := mustSend(t, e, cmd(1018, "95,80\r\n"))
	if o.Seq != 1001 || o.payload != portOut {
		t.Fatalf("merged release: seq %d %q", o.Seq, o.payload)
	}
	afterPort(t, e)
	checkDataConnection(t, e)
}

// A retransmission of the held first part is absorbed, not forwarded.
func TestFTPHeldRetransmissionAbsorbed(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustDrop(t, e, cmd(1001, "PORT 198,18,0,2,1"), DropALGHeld)
	mustDrop(t, e, cmd(1001, "PORT 198,18,0,2,1"), DropALGHeld)
	// The sender coalesces on its next retransmission: the whole line.
	o := mustSend(t, e, cmd(1001, portIn))
	if o.payload != portOut {
		t.Fatalf("coalesced retransmission: %q", o.payload)
	}
	afterPort(t, e)
}

// A line that is not a command prefix is never held.
func TestFTPNonCandidateNotHeld(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	o := mustSend(t, e, cmd(1001, "PWD"))
	if o.payload != "PWD" {
		t.Fatalf("%q", o.payload)
	}
	o = mustSend(t, e, cmd(1004, "\r\n"))
	if o.Seq != 1004 {
		t.Fatal("seq moved")
	}
}

// The kernel only looks at byte 0 of a segment.
func TestFTPPortAfterAnotherCommand(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	o := mustSend(t, e, cmd(1001, "TYPE I\r\n"+portIn))
	if want := "TYPE I\r\n" + portOut; o.payload != want {
		t.Fatalf("got %q want %q", o.payload, want)
	}
	o = mustSend(t, e, cmd(1033, "LIST\r\n"))
	if o.Seq != 1037 {
		t.Fatalf("LIST seq %d want 1037", o.Seq)
	}
	checkDataConnection(t, e)
}

// The kernel writes '|' whatever delimiter the client chose.
func TestFTPEPRTBangDelimiter(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	o := mustSend(t, e, cmd(1001, "EPRT !1!198.18.0.2!50000!\r\n"))
	if want := "EPRT !1!198.19.100.100!50000!\r\n"; o.payload != want {
		t.Fatalf("got %q want %q", o.payload, want)
	}
	checkDataConnection(t, e)
}

func TestFTPRetransmittedRewrite(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	first := mustSend(t, e, cmd(1001, portIn))
	again := mustSend(t, e, cmd(1001, portIn))
	if !bytes.Equal(first.Buf, again.Buf) {
		t.Fatalf("retransmission rewritten differently:\n%x\n%x", first.Buf, again.Buf)
	}
	if n := e.Table().ExpectationCount(); n != 1 {
		t.Fatalf("%d expectations after a retransmission, want 1", n)
	}
	afterPort(t, e) // the delta was recorded once: 1025 -> 1029, not 1033
	if n := e.Stats.ALGEvents[bitIndex(alg.EvRetransRewrite)].Load(); n != 1 {
		t.Fatalf("retransmission rewrite events %d", n)
	}
}

// The kernel keeps one correction point per direction: data retransmitted
// from before an earlier rewrite gets the later offset.
func TestFTPRetransmissionBeforeEarlierRewrite(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustSend(t, e, cmd(1001, "NOOP\r\n"))                   // 1001..1006, offset 0
	mustSend(t, e, cmd(1007, portIn))                       // 1007..1030, then +4
	o := mustSend(t, e, cmd(1031, "NOOP\r\n"))              // 1031..1036
	mustSend(t, e, cmd(1037, "PORT 198,18,0,2,195,81\r\n")) // then +8
	if o.Seq != 1035 {
		t.Fatalf("NOOP after one rewrite at %d, want 1035", o.Seq)
	}
	for _, c := range []struct{ seq, want uint32 }{{1001, 1001}, {1031, 1035}} {
		r := mustSend(t, e, cmd(c.seq, "NOOP\r\n"))
		if r.Seq != c.want || r.payload != "NOOP\r\n" {
			t.Fatalf("retransmitted NOOP at %d went out at %d %q, want %d", c.seq, r.Seq, r.payload, c.want)
		}
	}
	o = mustSend(t, e, cmd(1061, "LIST\r\n"))
	if o.Seq != 1069 {
		t.Fatalf("LIST after two rewrites at %d, want 1069", o.Seq)
	}
}

func TestFTPSACKAcrossRewrite(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustSend(t, e, cmd(1001, portIn))     // translated 1001..1028
	mustSend(t, e, cmd(1025, "LIST\r\n")) // translated 1029..1034
	mustSend(t, e, cmd(1031, "NOOP\r\n")) // translated 1035..1040
	// The server lost the PORT segment but got the two after it.
	o := mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5009, ack: 1001, flags: fACK,
		sack: [][2]uint32{{1029, 1041}, {1035, 1041}}})
	if o.Ack != 1001 {
		t.Fatalf("ack %d", o.Ack)
	}
	l0, r0 := o.SACKBlock(0)
	l1, r1 := o.SACKBlock(1)
	if l0 != 1025 || r0 != 1037 || l1 != 1031 || r1 != 1037 {
		t.Fatalf("SACK blocks [%d,%d) [%d,%d), want [1025,1037) [1031,1037)", l0, r0, l1, r1)
	}
	// An edge inside the rewritten text maps to its start, never beyond.
	o = mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5009, ack: 1001, flags: fACK, sack: [][2]uint32{{1001, 1010}}})
	if l, r := o.SACKBlock(0); l != 1001 || r != 1006 {
		t.Fatalf("SACK inside rewrite [%d,%d), want [1001,1006)", l, r)
	}
}

func TestFTPBounceRefused(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	bounce := "PORT 198,18,0,99,195,80\r\n"
	o := mustSend(t, e, cmd(1001, bounce))
	if o.payload != bounce {
		t.Fatalf("bounce rewritten: %q", o.payload)
	}
	if e.Table().ExpectationCount() != 0 || e.Stats.ALGEvents[bitIndex(alg.EvBounce)].Load() != 1 {
		t.Fatal("bounce opened an expectation or was not counted")
	}
	mustDrop(t, e, tcpSeg{src: ap("198.19.0.2:20"), dst: ap("198.19.100.100:50000"), seq: 1, flags: fSYN}, DropNoFlow)
}

func TestFTPLowPortRefused(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	low := "PORT 198,18,0,2,0,80\r\n"
	if o := mustSend(t, e, cmd(1001, low)); o.payload != low {
		t.Fatalf("low port rewritten: %q", o.payload)
	}
	if e.Table().ExpectationCount() != 0 || e.Stats.ALGEvents[bitIndex(alg.EvLowPort)].Load() != 1 {
		t.Fatal("low port opened an expectation or was not counted")
	}
	mustDrop(t, e, tcpSeg{src: ap("198.19.0.2:20"), dst: ap("198.19.100.100:80"), seq: 1, flags: fSYN}, DropNoFlow)
}

func TestFTPOutOfOrderDropped(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustDrop(t, e, cmd(1007, "NOOP\r\n"), DropALGOutOfOrder)
	mustSend(t, e, cmd(1001, "NOOP\r\n"))
	mustSend(t, e, cmd(1007, "NOOP\r\n"))
}

func TestFTPCorruptedSegmentNeverValidated(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	b := cmd(1001, portIn).build()
	b[len(b)-5] ^= 0x04 // flip a bit in the payload, checksum left alone
	if v, _, r := e.processPacketReason(b, t0); v != Drop || r != DropBadL4Checksum {
		t.Fatalf("corrupted control segment: %v %v", v, r)
	}
}

func TestFTPAuthTLSStopsInspection(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustSend(t, e, cmd(1001, "AUTH TLS\r\n"))
	mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5009, ack: 1011, flags: fACK | fPSH, payload: "234 AUTH TLS ok\r\n"})
	// Ciphertext that happens to read like a command is left alone.
	o := mustSend(t, e, cmd(1011, portIn))
	if o.payload != portIn || e.Table().ExpectationCount() != 0 {
		t.Fatalf("TLS payload rewritten: %q", o.payload)
	}
}

// A server inside behind a port forward, passive mode.
func TestFTPDNATPassive(t *testing.T) {
	fw, _ := ParseForward("tcp:21=198.18.0.2:21")
	e, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}, Forwards: []Forward{fw}})
	if err != nil {
		t.Fatal(err)
	}
	client := ap("198.19.0.7:50123")
	pub21 := netip.AddrPortFrom(pubIP, 21)
	server := ap("198.18.0.2:21")
	o := mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 100, flags: fSYN})
	if netip.AddrPortFrom(o.Dst, o.DstPort) != server {
		t.Fatalf("forwarded to %v:%d", o.Dst, o.DstPort)
	}
	mustSend(t, e, tcpSeg{src: server, dst: client, seq: 7000, ack: 101, flags: fSYN | fACK})
	mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 101, ack: 7001, flags: fACK})
	// A multi-line reply whose text carries a 227-looking line is not parsed.
	banner := "230-Welcome\r\n227 Entering Passive Mode (198,18,0,2,1,2)\r\n230 OK\r\n"
	o = mustSend(t, e, tcpSeg{src: server, dst: client, seq: 7001, ack: 101, flags: fACK | fPSH, payload: banner})
	if o.payload != banner || e.Table().ExpectationCount() != 0 {
		t.Fatalf("text inside a multi-line reply was rewritten: %q", o.payload)
	}
	seq := uint32(7001 + len(banner))
	in := "227 Entering Passive Mode (198,18,0,2,234,96).\r\n"
	o = mustSend(t, e, tcpSeg{src: server, dst: client, seq: seq, ack: 101, flags: fACK | fPSH, payload: in})
	if want := "227 Entering Passive Mode (198,19,100,100,234,96).\r\n"; o.payload != want || o.Src != pubIP {
		t.Fatalf("227 out %q from %v", o.payload, o.Src)
	}
	// The client's ACK of the grown reply maps back.
	o = mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 101, ack: seq + uint32(len(in)) + 4, flags: fACK})
	if o.Ack != seq+uint32(len(in)) {
		t.Fatalf("client ack mapped to %d", o.Ack)
	}
	mustDrop(t, e, tcpSeg{src: ap("198.19.0.66:50124"), dst: netip.AddrPortFrom(pubIP, 60000), seq: 1, flags: fSYN}, DropNoFlow)
	o = mustSend(t, e, tcpSeg{src: ap("198.19.0.7:50124"), dst: netip.AddrPortFrom(pubIP, 60000), seq: 1, flags: fSYN})
	if netip.AddrPortFrom(o.Dst, o.DstPort) != ap("198.18.0.2:60000") {
		t.Fatalf("data connection to %v:%d", o.Dst, o.DstPort)
	}
	// 229 carries only a port; preserved, so the text stays, but the
	// expectation is installed.
	seq += uint32(len(in))
	epsv := "229 Entering Extended Passive Mode (|||60001|)\r\n"
	o = mustSend(t, e, tcpSeg{src: server, dst: client, seq: seq, ack: 101, flags: fACK | fPSH, payload: epsv})
	if o.payload != epsv || e.Table().ExpectationCount() != 1 {
		t.Fatalf("229: %q, %d expectations", o.payload, e.Table().ExpectationCount())
	}
}

func bitIndex(ev alg.Event) int {
	for i := 0; i < 32; i++ {
		if ev == 1<<i {
			return i
		}
	}
	return -1
}

// A PORT line that never ends: the gateway holds at most MaxLine bytes,
// then lets the bytes through unchanged; memory stays bounded and the
// stream keeps flowing.
func TestFTPLineThatNeverEnds(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustDrop(t, e, cmd(1001, "PORT 198,18,0,2,"), DropALGHeld)
	seq := uint32(1001 + len("PORT 198,18,0,2,"))
	junk := strings.Repeat("1", 100)
	released := false
	for i := 0; i < 2000 && !released; i++ { // 200 KB at most
		v, o, r := send(t, e, cmd(seq, junk))
		switch {
		case v == Accept:
			released = true
			if o.Seq != 1001 || !strings.HasPrefix(o.payload, "PORT 198,18,0,2,1111") {
				t.Fatalf("release: seq %d %q", o.Seq, o.payload)
			}
		case r != DropALGHeld:
			t.Fatalf("unexpected drop %v", r)
		}
		seq += uint32(len(junk))
	}
	if !released {
		t.Fatal("an endless line was held forever")
	}
	if held := seq - 1001; held > 512+100 {
		t.Fatalf("held %d bytes before releasing, bound is 512", held)
	}
	// Nothing is held any more: the rest of the endless line goes through.
	if v, _, _ := send(t, e, cmd(seq, junk)); v != Accept {
		t.Fatal("line continuation dropped after release")
	}
	if e.Table().ExpectationCount() != 0 {
		t.Fatal("an endless line opened an expectation")
	}
}

// Thousands of PORT commands on one control connection keep one pending
// expectation (the newest replaces the oldest) and one public port bound
// for it.
func TestFTPThousandsOfPorts(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	seq := uint32(1001)
	out := uint32(1001) // translated: each rewrite grows the line by 4
	for i := 0; i < 3000; i++ {
		p := 20000 + i
		line := fmt.Sprintf("PORT 198,18,0,2,%d,%d\r\n", p>>8, p&0xff)
		mustSend(t, e, cmd(seq, line))
		seq += uint32(len(line))
		out += uint32(len(line)) + 4
		// the server acknowledges each command, which frees its
		// correction point
		mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5009, ack: out, flags: fACK})
	}
	if n := e.Table().ExpectationCount(); n != 1 {
		t.Fatalf("%d expectations pending, want 1", n)
	}
	// The control flow, plus one binding for the pending expectation.
	if n := e.Bindings(); n != 2 {
		t.Fatalf("%d public ports bound, want 2", n)
	}
	if n := e.Table().Stats.ExpectationsEvicted.Load(); n != 2999 {
		t.Fatalf("%d evictions, want 2999", n)
	}
}

// A rewrite that would push a packet past 65535 bytes (or past the
// caller's buffer) drops it with the reason too_big, never truncates it.
func TestFTPRewritePastMaxPacket(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	// A full 65535-byte IPv4 packet whose last line is a PORT that grows.
	pad := strings.Repeat("NOOP\r\n", (65535-40-len(portIn))/6)
	payload := pad + portIn
	payload = strings.Repeat("X", 65535-40-len(payload)) + "\r\n" + payload[2:]
	pkt := cmd(1001, payload).build()
	if len(pkt) != 65535 {
		t.Fatalf("test packet is %d bytes", len(pkt))
	}
	if v, _, r := e.processPacketReason(pkt, t0); v != Drop || r != DropTooBig {
		t.Fatalf("verdict %v %v, want drop too_big", v, r)
	}
	// Into a buffer with no room to grow: also too_big.
	e2 := snatEngine(t)
	handshake(t, e2)
	small := cmd(1001, portIn).build()
	small = small[:len(small):len(small)]
	if v, _, r := e2.processPacketReason(small, t0); v != Drop || r != DropTooBig {
		t.Fatalf("no room: verdict %v %v", v, r)
	}
}

// TestFTPLedgerFullNeverFolds: ten PORT commands the server does not
// acknowledge. The first seqdelta.Capacity are rewritten; the ninth and
// tenth pass exactly as sent, at the offset of all eight rewrites, counted
// as ledger_full, with no expectation. A retransmission of the oldest
// rewritten command is rewritten again and lands where the first copy did:
// no correction point was folded away. Once the server acknowledges the
// commands, a new one is rewritten again.
func TestFTPLedgerFullNeverFolds(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	line := func(i int) string {
		p := 20000 + i
		return fmt.Sprintf("PORT 198,18,0,2,%d,%d\r\n", p>>8, p&0xff) // 23 bytes
	}
	rewritten := func(i int) string {
		p := 20000 + i
		return fmt.Sprintf("PORT 198,19,100,100,%d,%d\r\n", p>>8, p&0xff) // 27 bytes
	}
	seq := uint32(1001)
	for i := 0; i < 10; i++ {
		o := mustSend(t, e, cmd(seq, line(i)))
		want, wantSeq := rewritten(i), seq+uint32(4*i)
		if i >= 8 {
			want, wantSeq = line(i), seq+32
		}
		if o.payload != want || o.Seq != wantSeq {
			t.Fatalf("command %d: seq %d %q, want %d %q", i, o.Seq, o.payload, wantSeq, want)
		}
		seq += uint32(len(line(i)))
	}
	if n := e.Stats.ALGEvents[bitIndex(alg.EvLedgerFull)].Load(); n != 2 {
		t.Fatalf("ledger_full counted %d times, want 2", n)
	}
	// eight expectations made (one pending, seven replaced), none for the
	// commands passed unchanged
	if n := e.Table().Stats.ExpectationsEvicted.Load(); n != 7 {
		t.Fatalf("%d expectations replaced, want 7", n)
	}
	// The oldest command, retransmitted: the same bytes at the same place.
	if o := mustSend(t, e, cmd(1001, line(0))); o.payload != rewritten(0) || o.Seq != 1001 {
		t.Fatalf("retransmitted oldest: seq %d %q", o.Seq, o.payload)
	}
	// The fourth, retransmitted together with the fifth.
	o := mustSend(t, e, cmd(1001+3*23, line(3)+line(4)))
	if o.payload != rewritten(3)+rewritten(4) || o.Seq != 1001+3*27 {
		t.Fatalf("retransmitted fourth and fifth: seq %d %q", o.Seq, o.payload)
	}
	// The ninth, passed unchanged, retransmitted unchanged.
	if o := mustSend(t, e, cmd(1001+8*23, line(8))); o.payload != line(8) || o.Seq != 1001+8*27 {
		t.Fatalf("retransmitted ninth: seq %d %q", o.Seq, o.payload)
	}
	// A forged ACK beyond everything sent frees nothing.
	mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5009, ack: 1001 + 10*23 + 32 + 1000, flags: fACK})
	if o := mustSend(t, e, cmd(seq, line(10))); o.payload != line(10) {
		t.Fatalf("rewritten after a forged ACK: %q", o.payload)
	}
	seq += 23
	// The server acknowledges the first three commands: three rewrites fit.
	mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5009, ack: 1001 + 3*27, flags: fACK})
	if o := mustSend(t, e, cmd(seq, line(11))); o.payload != rewritten(11) || o.Seq != seq+32 {
		t.Fatalf("after the ACK: seq %d %q", o.Seq, o.payload)
	}
	// The fourth is still remembered: its retransmission is exact.
	if o := mustSend(t, e, cmd(1001+3*23, line(3))); o.payload != rewritten(3) || o.Seq != 1001+3*27 {
		t.Fatalf("retransmitted fourth after the ACK: seq %d %q", o.Seq, o.payload)
	}
	// The server's ACK of the last command maps back exactly.
	o = mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5009, ack: seq + 23 + 36, flags: fACK})
	if o.Ack != seq+23 {
		t.Fatalf("ACK %d mapped to %d, want %d", seq+23+36, o.Ack, seq+23)
	}
}

// LPRT (RFC 1639 §2), as inetutils-ftp sends it after a failed PORT: the
// inside address is replaced by the public one, the port kept, the stream
// shifted by the growth (+4), and the data connection expected as for PORT.
func TestFTPLPRTSingleSegment(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	in := "LPRT 4,4,198,18,0,2,2,195,80\r\n" // 30 bytes, 1001..1030
	o := mustSend(t, e, cmd(1001, in))
	if want := "LPRT 4,4,198,19,100,100,2,195,80\r\n"; o.payload != want || o.Seq != 1001 {
		t.Fatalf("got seq %d %q, want 1001 %q", o.Seq, o.payload, want)
	}
	o = mustSend(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5009, ack: 1035, flags: fACK | fPSH, payload: "200 LPRT ok\r\n"})
	if o.Ack != 1031 {
		t.Fatalf("server ACK 1035 mapped to %d, want 1031", o.Ack)
	}
	if o = mustSend(t, e, cmd(1031, "LIST\r\n")); o.Seq != 1035 {
		t.Fatalf("LIST seq 1031 mapped to %d, want 1035", o.Seq)
	}
	checkDataConnection(t, e)
}

// An LPRT split after its address family waits for the rest, then goes out
// rewritten from the held bytes' first sequence number.
func TestFTPLPRTSplit(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustDrop(t, e, cmd(1001, "LPRT 4,4,198,1"), DropALGHeld)
	o := mustSend(t, e, cmd(1015, "8,0,2,2,195,80\r\n"))
	if want := "LPRT 4,4,198,19,100,100,2,195,80\r\n"; o.payload != want || o.Seq != 1001 {
		t.Fatalf("merged release: seq %d %q, want 1001 %q", o.Seq, o.payload, want)
	}
	checkDataConnection(t, e)
}

// LPRT is held to PORT's rules: another address (bounce, RFC 2577) or a
// port below 1024 passes unchanged, counted, with no expectation; so does
// an address family natalg cannot translate.
func TestFTPLPRTRefused(t *testing.T) {
	for _, c := range []struct {
		line string
		ev   alg.Event
	}{
		{"LPRT 4,4,198,18,0,99,2,195,80\r\n", alg.EvBounce},
		{"LPRT 4,4,198,18,0,2,2,0,80\r\n", alg.EvLowPort},
		{"LPRT 6,16,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,2,195,80\r\n", alg.EvBounce},
		{"LPRT 16,4,198,18,0,2,2,195,80\r\n", 0},
	} {
		e := snatEngine(t)
		handshake(t, e)
		if o := mustSend(t, e, cmd(1001, c.line)); o.payload != c.line || o.Seq != 1001 {
			t.Fatalf("%q rewritten: seq %d %q", c.line, o.Seq, o.payload)
		}
		if c.ev != 0 && e.Stats.ALGEvents[bitIndex(c.ev)].Load() != 1 {
			t.Fatalf("%q: event %v not counted", c.line, c.ev)
		}
		if e.Table().ExpectationCount() != 0 {
			t.Fatalf("%q opened an expectation", c.line)
		}
		mustDrop(t, e, tcpSeg{src: ap("198.19.0.2:20"), dst: ap("198.19.100.100:50000"), seq: 1, flags: fSYN}, DropNoFlow)
	}
}

// LPRT with an IPv6 address (af 6, hal 16) on an IPv6 NAT: the inside
// address becomes the public one, written as sixteen decimal bytes.
func TestFTPLPRTIPv6(t *testing.T) {
	pub6 := netip.MustParseAddr("2001:db8:19::100")
	e, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("fd00:18::/64")}, Public: []netip.Addr{pub6}})
	if err != nil {
		t.Fatal(err)
	}
	c6, s6 := ap("[fd00:18::2]:40000"), ap("[2001:db8:19::2]:21")
	pc6 := netip.AddrPortFrom(pub6, 40000)
	mustSend(t, e, tcpSeg{src: c6, dst: s6, seq: 1000, flags: fSYN, mss: 1440})
	mustSend(t, e, tcpSeg{src: s6, dst: pc6, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1440})
	mustSend(t, e, tcpSeg{src: c6, dst: s6, seq: 1001, ack: 5001, flags: fACK})
	in := "LPRT 6,16,253,0,0,24,0,0,0,0,0,0,0,0,0,0,0,2,2,195,80\r\n"
	o := mustSend(t, e, tcpSeg{src: c6, dst: s6, seq: 1001, ack: 5001, flags: fACK | fPSH, payload: in})
	want := "LPRT 6,16,32,1,13,184,0,25,0,0,0,0,0,0,0,0,1,0,2,195,80\r\n"
	if o.payload != want || o.Seq != 1001 || o.Src != pub6 {
		t.Fatalf("got %v seq %d %q, want %q", o.Src, o.Seq, o.payload, want)
	}
	// the stream after it is shifted by the length difference
	o = mustSend(t, e, tcpSeg{src: c6, dst: s6, seq: 1001 + uint32(len(in)), ack: 5001, flags: fACK | fPSH, payload: "LIST\r\n"})
	if d := int(o.Seq) - 1001 - len(in); d != len(want)-len(in) {
		t.Fatalf("LIST shifted by %d, want %d", d, len(want)-len(in))
	}
	o = mustSend(t, e, tcpSeg{src: netip.AddrPortFrom(s6.Addr(), 20), dst: netip.AddrPortFrom(pub6, 50000), seq: 9000, flags: fSYN})
	if o.Dst != c6.Addr() || o.DstPort != 50000 {
		t.Fatalf("data SYN to %v:%d", o.Dst, o.DstPort)
	}
}

// The 228 answer to LPSV (RFC 1639 §3) of a forwarded server: the inside
// address becomes the public one, and the client's data connection to the
// announced port is let in.
func TestFTPDNAT228(t *testing.T) {
	fw, _ := ParseForward("tcp:21=198.18.0.2:21")
	e, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}, Forwards: []Forward{fw}})
	if err != nil {
		t.Fatal(err)
	}
	client := ap("198.19.0.7:50123")
	pub21 := netip.AddrPortFrom(pubIP, 21)
	server := ap("198.18.0.2:21")
	mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 100, flags: fSYN})
	mustSend(t, e, tcpSeg{src: server, dst: client, seq: 7000, ack: 101, flags: fSYN | fACK})
	mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 101, ack: 7001, flags: fACK})
	if o := mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 101, ack: 7001, flags: fACK | fPSH, payload: "LPSV\r\n"}); o.payload != "LPSV\r\n" {
		t.Fatalf("LPSV changed: %q", o.payload)
	}
	in := "228 Entering Long Passive Mode (4,4,198,18,0,2,2,234,96)\r\n"
	o := mustSend(t, e, tcpSeg{src: server, dst: client, seq: 7001, ack: 107, flags: fACK | fPSH, payload: in})
	if want := "228 Entering Long Passive Mode (4,4,198,19,100,100,2,234,96)\r\n"; o.payload != want || o.Src != pubIP {
		t.Fatalf("228 out %q from %v", o.payload, o.Src)
	}
	o = mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 107, ack: 7001 + uint32(len(in)) + 4, flags: fACK})
	if o.Ack != 7001+uint32(len(in)) {
		t.Fatalf("client ack mapped to %d", o.Ack)
	}
	mustDrop(t, e, tcpSeg{src: ap("198.19.0.66:50124"), dst: netip.AddrPortFrom(pubIP, 60000), seq: 1, flags: fSYN}, DropNoFlow)
	o = mustSend(t, e, tcpSeg{src: ap("198.19.0.7:50124"), dst: netip.AddrPortFrom(pubIP, 60000), seq: 1, flags: fSYN})
	if netip.AddrPortFrom(o.Dst, o.DstPort) != ap("198.18.0.2:60000") {
		t.Fatalf("data connection to %v:%d", o.Dst, o.DstPort)
	}
}
