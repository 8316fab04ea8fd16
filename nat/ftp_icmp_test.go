package nat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/header"
)

// forward runs a segment through the engine and returns a copy of what
// leaves.
func forward(t *testing.T, e *Engine, s tcpSeg) []byte {
	t.Helper()
	v, out, r := e.processPacketReason(s.build(), t0)
	if v != Accept {
		t.Fatalf("segment %q dropped: %v", s.payload, r)
	}
	return bytes.Clone(out)
}

// quoted decodes the packet quoted by the ICMP error o and checks the
// quoted IPv4 header checksum.
func quoted(t *testing.T, o seen) header.Parsed {
	t.Helper()
	var q header.Parsed
	if r := q.DecodeInner(o.Buf[o.PayloadOff:]); r != header.Ok {
		t.Fatalf("quote does not decode: %v", r)
	}
	if q.Version == 4 && !header.IPv4(q.Buf).IsChecksumValid() {
		t.Fatal("quoted IPv4 header checksum wrong")
	}
	return q
}

// quotedTCPChecksumValid reports whether a whole quoted TCP segment's
// checksum verifies (DecodeInner's Parsed never verifies one).
func quotedTCPChecksumValid(q header.Parsed) bool {
	var w header.Parsed
	return w.Decode(bytes.Clone(q.Buf)) == header.Ok && w.TCPChecksumValid()
}

// TestICMPErrorQuotingRewrittenFTPSegment: after a PORT that grew by 4, the
// client's next segment leaves with SEQ+4. A router's "fragmentation
// needed" quoting it must reach the client with the SEQ the client sent
// (RFC 5927 §4.1: stacks drop errors whose quoted SEQ is outside SND.UNA..
// SND.NXT), and the quoted TCP checksum right: the quote is then the
// client's segment byte for byte.
func TestICMPErrorQuotingRewrittenFTPSegment(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	if o := mustSend(t, e, cmd(1001, portIn)); o.payload != portOut {
		t.Fatalf("PORT not rewritten: %q", o.payload)
	}
	list := cmd(1025, "LIST\r\n")
	fwd := forward(t, e, list)
	if seq := binary.BigEndian.Uint32(fwd[24:]); seq != 1029 {
		t.Fatalf("LIST left with seq %d, want 1029", seq)
	}
	router := netip.MustParseAddr("198.19.0.1")
	v, out, r := e.processPacketReason(icmpErr(router, pubIP, 3, 4, fwd), t0)
	if v != Accept {
		t.Fatalf("frag-needed dropped: %v", r)
	}
	o := decodeOut(t, out)
	if o.Dst != cli.Addr() {
		t.Fatalf("error sent to %v", o.Dst)
	}
	q := quoted(t, o)
	if q.Seq != 1025 || q.Ack != 5009 {
		t.Fatalf("quoted seq %d ack %d, want 1025 5009", q.Seq, q.Ack)
	}
	if !quotedTCPChecksumValid(q) {
		t.Fatal("quoted TCP checksum wrong")
	}
	if sent := list.build(); !bytes.Equal(q.Buf, sent) {
		t.Fatalf("quote\n% x\nis not what the client sent\n% x", q.Buf, sent)
	}
	// A quote of the IP header and 8 bytes (RFC 792): the SEQ alone.
	fwd = forward(t, e, cmd(1031, "NOOP\r\n"))
	v, out, r = e.processPacketReason(icmpErr(router, pubIP, 3, 4, fwd[:28]), t0)
	if v != Accept {
		t.Fatalf("short frag-needed dropped: %v", r)
	}
	if q := quoted(t, decodeOut(t, out)); q.Seq != 1031 || q.SrcPort != 40000 {
		t.Fatalf("short quote: seq %d port %d, want 1031 40000", q.Seq, q.SrcPort)
	}
}

// TestICMPErrorQuotingFTPAckAcrossRewrite: a forwarded server inside grew
// its 227 by 4; the outside client's next segment acknowledges it in the
// grown space and leaves inward with the ACK mapped back. An inside
// router's "fragmentation needed" about that segment reaches the client
// with the client's own ACK in the quote, from the public address.
func TestICMPErrorQuotingFTPAckAcrossRewrite(t *testing.T) {
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
	in := "227 Entering Passive Mode (198,18,0,2,234,96).\r\n"
	if o := mustSend(t, e, tcpSeg{src: server, dst: client, seq: 7001, ack: 101, flags: fACK | fPSH, payload: in}); len(o.payload) != len(in)+4 {
		t.Fatalf("227 not rewritten: %q", o.payload)
	}
	clientAck := 7001 + uint32(len(in)) + 4
	list := tcpSeg{src: client, dst: pub21, seq: 101, ack: clientAck, flags: fACK | fPSH, payload: "LIST\r\n"}
	fwd := forward(t, e, list)
	if ack := binary.BigEndian.Uint32(fwd[28:]); ack != clientAck-4 {
		t.Fatalf("LIST left with ack %d, want %d", ack, clientAck-4)
	}
	router := netip.MustParseAddr("198.18.0.1")
	v, out, r := e.processPacketReason(icmpErr(router, client.Addr(), 3, 4, fwd), t0)
	if v != Accept {
		t.Fatalf("frag-needed dropped: %v", r)
	}
	o := decodeOut(t, out)
	if o.Src != pubIP || o.Dst != client.Addr() {
		t.Fatalf("error %v -> %v", o.Src, o.Dst)
	}
	q := quoted(t, o)
	if q.Seq != 101 || q.Ack != clientAck || !quotedTCPChecksumValid(q) {
		t.Fatalf("quoted seq %d ack %d (checksum ok %v), want 101 %d", q.Seq, q.Ack, quotedTCPChecksumValid(q), clientAck)
	}
	if sent := list.build(); !bytes.Equal(q.Buf, sent) {
		t.Fatalf("quote\n% x\nis not what the client sent\n% x", q.Buf, sent)
	}
}

// TestICMPv6PacketTooBigQuotingRewrittenFTPSegment: the IPv6 case of the
// first test, after an LPRT that grew the stream: a Packet Too Big (RFC
// 4443 §3.2) quoting the client's next segment reaches the client with its
// own SEQ and a valid quoted checksum.
func TestICMPv6PacketTooBigQuotingRewrittenFTPSegment(t *testing.T) {
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
	lprt := "LPRT 6,16,253,0,0,24,0,0,0,0,0,0,0,0,0,0,0,2,2,195,80\r\n"
	o := mustSend(t, e, tcpSeg{src: c6, dst: s6, seq: 1001, ack: 5001, flags: fACK | fPSH, payload: lprt})
	grow := uint32(len(o.payload) - len(lprt))
	if grow == 0 {
		t.Fatalf("LPRT not rewritten: %q", o.payload)
	}
	seq := 1001 + uint32(len(lprt))
	stor := tcpSeg{src: c6, dst: s6, seq: seq, ack: 5001, flags: fACK | fPSH, payload: "STOR big.bin\r\n"}
	fwd := forward(t, e, stor)
	if got := binary.BigEndian.Uint32(fwd[44:]); got != seq+grow {
		t.Fatalf("segment left with seq %d, want %d", got, seq+grow)
	}
	ptb := icmpErr(netip.MustParseAddr("2001:db8:19::1"), pub6, 2, 0, fwd)
	binary.BigEndian.PutUint32(ptb[44:], 1280) // MTU, then fix the checksum
	binary.BigEndian.PutUint16(ptb[42:], 0)
	ptb = ipWrap(netip.MustParseAddr("2001:db8:19::1"), pub6, 58, ptb[40:])
	v, out, r := e.processPacketReason(ptb, t0)
	if v != Accept {
		t.Fatalf("packet too big dropped: %v", r)
	}
	o = decodeOut(t, out)
	if o.Dst != c6.Addr() || o.ICMPType != 2 {
		t.Fatalf("error type %d to %v", o.ICMPType, o.Dst)
	}
	q := quoted(t, o)
	if q.Seq != seq || !quotedTCPChecksumValid(q) {
		t.Fatalf("quoted seq %d (checksum ok %v), want %d", q.Seq, quotedTCPChecksumValid(q), seq)
	}
	if sent := stor.build(); !bytes.Equal(q.Buf, sent) {
		t.Fatalf("quote\n% x\nis not what the client sent\n% x", q.Buf, sent)
	}
}

// TestNAT64ICMPErrorQuotingRewrittenFTPSegment: through NAT64 the client's
// EPRT became an IPv4 announcement of another length; an IPv4 router's
// "fragmentation needed" about the client's next segment reaches the IPv6
// client as a Packet Too Big (RFC 7915 §4.2) whose quoted segment carries
// the SEQ the client sent, with a valid checksum: the quoted TCP segment
// is the client's byte for byte.
func TestNAT64ICMPErrorQuotingRewrittenFTPSegment(t *testing.T) {
	e := nat64Engine(t)
	o := send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1000, flags: fSYN, mss: 1440}.build())
	pub := netip.AddrPortFrom(o.Src, o.SrcPort)
	send64(t, e, tcpSeg{src: srv4, dst: pub, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1460}.build())
	send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1001, ack: 5001, flags: fACK}.build())
	send64(t, e, tcpSeg{src: srv4, dst: pub, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"}.build())
	eprt := "EPRT |2|fd00:64::2|50000|\r\n"
	c := send64(t, e, tcpSeg{src: cli6, dst: srv6, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: eprt}.build())
	if len(c.payload) == len(eprt) {
		t.Fatalf("EPRT not rewritten to another length: %q", c.payload)
	}
	retr := tcpSeg{src: cli6, dst: srv6, seq: uint32(1001 + len(eprt)), ack: 5009, flags: fACK | fPSH, payload: "RETR f\r\n"}
	fwd := forward(t, e, retr)
	if seq := binary.BigEndian.Uint32(fwd[24:]); seq != uint32(1001+len(c.payload)) {
		t.Fatalf("RETR left with seq %d, want %d", seq, 1001+len(c.payload))
	}
	router := netip.MustParseAddr("198.18.64.1")
	v, out, r := e.processPacketReason(icmpErr(router, o.Src, 3, 4, fwd), t0)
	if v != Accept {
		t.Fatalf("frag-needed dropped: %v", r)
	}
	p := decodeOut(t, out)
	if p.Version != 6 || p.ICMPType != 2 || p.Dst != cli6.Addr() {
		t.Fatalf("error back as v%d type %d to %v", p.Version, p.ICMPType, p.Dst)
	}
	q := quoted(t, p)
	if q.Seq != retr.seq || q.Ack != 5009 || !quotedTCPChecksumValid(q) {
		t.Fatalf("quoted seq %d ack %d (checksum ok %v), want %d 5009", q.Seq, q.Ack, quotedTCPChecksumValid(q), retr.seq)
	}
	if sent := retr.build(); !bytes.Equal(q.Buf[40:], sent[40:]) {
		t.Fatalf("quoted segment\n% x\nis not what the client sent\n% x", q.Buf[40:], sent[40:])
	}
}
