package alg

import (
	"bytes"
	"net/netip"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/seqdelta"
)

// Config is the FTP gateway's policy.
type Config struct {
	// AllowLowPorts lets announcements of data ports below 1024 through
	// (RFC 2577 §3 recommends refusing them; so does natalg by default).
	AllowLowPorts bool
	// MaxHoldRetries is how many retransmissions of a held partial command
	// are absorbed before the gateway gives up on it and lets the line
	// through unchanged (default 2).
	MaxHoldRetries int
	// NAT64KeepEPRT makes the gateway of a NAT64 flow (IPv6 client, IPv4
	// server) rewrite the client's EPRT |2|addr|port| into EPRT |1|pool|port|
	// instead of PORT h1,h2,h3,h4,p1,p2. RFC 6384 §7.2 has the ALG send PORT,
	// because an IPv4-only server that lacks EPSV (the reason the ALG is
	// needed) most likely lacks EPRT too; PORT is the default.
	NAT64KeepEPRT bool
	// NAT64EPSVProbe makes the gateway of a NAT64 flow learn whether the
	// server has EPSV instead of sending every EPSV (bare or "EPSV 2") as
	// PASV with its 227 turned into a 229, the default (RFC 6384 §6: the
	// ALG SHOULD translate all occurrences). The first EPSV goes as
	// "PASV\r\nEPSV": then EPSVs pass unchanged when the server answered
	// 229, or, when it rejected EPSV, the 227 to the PASV answers the
	// client as a 229 and later EPSVs go as PASV. One 229 is no positive
	// knowledge (RFC 6384 §1: servers that accept EPSV and then fail).
	NAT64EPSVProbe bool
}

// Translator is what the gateway asks of the NAT when an announcing endpoint
// is translated. The NAT implements it.
type Translator interface {
	// MapData reserves the public endpoint for a data connection that the
	// sender of direction dir announced at its real endpoint, installs the
	// expectation that lets the peer in, and returns the public endpoint to
	// write into the text. ok is false when no endpoint or expectation could
	// be had. now is the Segment.Now of the segment carrying the
	// announcement (the expectation's creation time).
	MapData(dir conntrack.Dir, announced netip.AddrPort, now int64) (public netip.AddrPort, ok bool)
}

// Action says what the NAT does with a segment after the gateway saw it.
type Action uint8

// Actions.
const (
	// Pass forwards the payload unchanged (sequence numbers still mapped).
	Pass Action = iota
	// Replace forwards Result.Payload instead, as the bytes starting at the
	// original sequence number Result.Seq.
	Replace
	// Drop drops the segment; Result.Events says why.
	Drop
	// Reset forwards the segment as a reset (RST, no payload) at the
	// original sequence number Result.Seq: the gateway tore the session
	// down (RFC 6384 §12); the Control drops every later segment.
	Reset
)

// Event bits report what the gateway did, for counters.
type Event uint32

// Events.
const (
	EvRewrite          Event = 1 << iota // an announcement was rewritten
	EvBounce                             // announced address differs from the sender's: left unchanged
	EvLowPort                            // announced port below 1024 (or 0): left unchanged
	EvMapFailed                          // no public endpoint or expectation: segment dropped
	EvHeld                               // a partial command was held back
	EvMerged                             // held bytes were released merged with their continuation
	EvAbandoned                          // a held command was let through unchanged after retransmissions
	EvRetransRewrite                     // a retransmission got its earlier rewrite again
	EvRetransMismatch                    // a retransmission differs from the text first seen: dropped
	EvOutOfOrder                         // a segment beyond the next expected byte: dropped
	EvTLS                                // the control channel switched to TLS: inspection stopped
	EvUntranslated                       // an announcement by an endpoint the NAT does not translate
	EvTruncated                          // a merged release was cut at a line end to fit the MSS
	EvDupHeld                            // a duplicate of held bytes: dropped
	EvRewriteLimit                       // more announcements in one segment than may be rewritten: left unchanged (NAT64 in-band rewrites: the rest of the segment is cut, EvTruncated, and comes again)
	EvTLSEnded                           // a direction left TLS (CCC, RFC 4217 §6): inspected again from a line start
	EvEPSVToPASV                         // NAT64: an EPSV went to the server as PASV (or PASV+EPSV), or a 227 was turned into a 229 (RFC 6384 §6)
	EvRefused                            // NAT64: EPSV ALL (504) or EPSV with a protocol other than 2 (522) answered by the gateway, never passed (RFC 6384 §6)
	EvALGS                               // NAT64: an ALGS command answered by the gateway (RFC 6384 §11)
	EvReplySubstituted                   // NAT64: a server reply replaced or removed in-band
	EvQueueFull                          // NAT64: no room to track another gateway answer: the command passed unchanged
	EvTornDown                           // NAT64: a stand-in NOOP was answered with something else than 200: the session was torn down, or a segment of a torn-down session dropped (RFC 6384 §12)
	EvTelnetRefused                      // NAT64: a Telnet option negotiation was removed, not relayed (RFC 6384 §5)
	EvLedgerFull                         // seqdelta.Capacity rewrites of the direction not yet acknowledged: the announcement passed unchanged, no expectation
	evEnd

	// EvAll has every event bit set, so that counters can check they name each.
	EvAll = evEnd - 1
)

// MaxRewritesPerSegment bounds the announcements rewritten in one segment.
// Each rewrite holds one of the seqdelta.Capacity correction points (and
// history entries) of its direction until the receiver acknowledges it; half
// the capacity keeps one segment of pipelined commands from taking them all.
// Further announcements in the segment pass unchanged, with no expectation
// (fail safe); no FTP client sends more than one before its reply.
const MaxRewritesPerSegment = seqdelta.Capacity / 2

// Result is the gateway's decision on one segment.
type Result struct {
	Action  Action
	Seq     uint32 // original sequence number of Payload[0] (Replace)
	Payload []byte // replacement payload (Replace); aliases the Control's buffer
	Events  Event
}

// Segment is one TCP segment of the control connection as the gateway sees
// it: sequence numbers in the sender's original space.
type Segment struct {
	Dir     conntrack.Dir
	Seq     uint32
	Payload []byte
	SYN     bool
	FIN     bool
	RST     bool
	MSS     uint16 // MSS option of a SYN, else 0
	// Now is the time the segment is processed at (the caller's clock,
	// Unix ns), handed to Translator.MapData.
	Now int64
}

// Control is the FTP gateway state of one control connection (RFC 959). The
// client is the connection's initiator: direction Original carries commands,
// Reply carries replies. When the original tuple is IPv6 and the reply
// tuple IPv4 (an IPv6 client reaching an IPv4 server through NAT64), the
// gateway is the FTP ALG of RFC 6384 instead (nat64.go): EPRT becomes
// PORT, EPSV goes as PASV, EPSV ALL and ALGS are answered by the gateway,
// all in band. A Control is not safe for concurrent use;
// the flow lock guards it.
type Control struct {
	cfg               *Config
	dir               [2]stream
	flow              [2]conntrack.Tuple // the flow's tuples, to know who is translated
	reply             int                // code of the multi-line reply in progress, 0 if none
	auth              bool               // AUTH sent, reply awaited
	rewritesInSegment int                // announcements rewritten in the segment being processed
	led               *seqdelta.Ledger   // ledger of the segment being processed (for room; set by Segment)
	now               int64              // Segment.Now of the segment being processed, for MapData
	out               []byte             // output payload scratch, reused
	merge             []byte             // held bytes + continuation scratch, reused
	heldBuffers       [2][MaxLine]byte
	policy            linePolicy // classic{} or &n64
	n64               nat64      // RFC 6384 state of a NAT64 flow
	cut               bool       // the line being processed must wait for the next segment
}

// NewControl returns the gateway state for a control flow with the given
// original and reply tuples.
func NewControl(cfg *Config, tuples [2]conntrack.Tuple) *Control {
	c := &Control{cfg: cfg, flow: tuples}
	// RFC 6384 §5: an IPv6 client reaching an IPv4 server through a NAT64
	// (RFC 6146) is seen as an IPv6 original tuple and an IPv4 reply tuple.
	c.n64.on = tuples[0].Src.Is6() && !tuples[0].Src.Is4In6() && tuples[1].Src.Unmap().Is4()
	// the other way: an IPv4 client reaching an IPv6 server published by
	// a static NAT64 binding (RFC 6384 in reverse, rev64.go)
	c.n64.rev = tuples[0].Src.Unmap().Is4() && tuples[1].Src.Is6() && !tuples[1].Src.Is4In6()
	c.policy = classic{}
	if c.n64.on || c.n64.rev {
		c.policy = &c.n64
	}
	c.dir[0].held = c.heldBuffers[0][:0]
	c.dir[1].held = c.heldBuffers[1][:0]
	return c
}

// AdoptControl returns the gateway of a control connection that natalg
// adopts from the kernel's conntrack entry after a restart: nothing of its
// streams is known but whether each direction is encrypted (tls, by
// conntrack.Dir), and the first segment seen in each direction is taken to
// start a line: "FTP commands are "Telnet strings" terminated by the
// "Telnet end of line code"" (RFC 959 §4.1.3) and a reply line is
// "terminated by the Telnet end-of-line code" (§4.2), and clients send a
// command once the previous reply is in, so a segment after a pause starts
// one. A command or reply that was half received when natalg stopped is
// read from its middle: it is not rewritten.
func AdoptControl(cfg *Config, tuples [2]conntrack.Tuple, tls [2]bool) *Control {
	c := NewControl(cfg, tuples)
	for d := range c.dir {
		c.dir[d].adopted = true
		c.dir[d].tls = tls[d]
	}
	return c
}

// TLSDir reports whether direction d (a conntrack.Dir) is encrypted.
func (c *Control) TLSDir(d conntrack.Dir) bool { return c.dir[d].tls }

// TLS reports whether the control channel is encrypted (RFC 4217 §4) in
// either direction.
func (c *Control) TLS() bool { return c.dir[0].tls || c.dir[1].tls }

// before reports a < b in sequence space.
func before(a, b uint32) bool { return int32(a-b) < 0 }

// Segment runs one segment through the gateway. led is the sequence ledger of
// the segment's direction; the gateway records its rewrites there. tr maps
// announced endpoints. The caller holds the flow lock and has verified the
// segment's checksum.
func (c *Control) Segment(seg *Segment, led *seqdelta.Ledger, tr Translator) Result {
	if c.n64.dead {
		return Result{Action: Drop, Events: EvTornDown}
	}
	s := &c.dir[seg.Dir]
	c.rewritesInSegment = 0
	c.led, c.now = led, seg.Now
	if seg.SYN {
		s.synchronize(seg.Seq)
		if seg.MSS != 0 {
			// The SYN's MSS limits what the other direction may send.
			c.dir[seg.Dir.Other()].mss = seg.MSS
		}
		return Result{}
	}
	if len(seg.Payload) == 0 || seg.RST {
		return Result{}
	}
	if !s.synced {
		s.pickUp(seg.Seq)
	}
	var resumed Event
	if s.tls {
		if !s.resume(seg) {
			return Result{}
		}
		// Clear text again from s.next, at a line start; the TLS bytes
		// before it in this segment pass as already seen.
		resumed = EvTLSEnded
	}
	res := s.segment(c, seg, led, tr)
	res.Events |= resumed
	if c.n64.reset {
		c.n64.reset = false
		return Result{Action: Reset, Seq: seg.Seq, Events: res.Events | EvTornDown}
	}
	return res
}

// linesLost tells the policy that a line was never seen whole: the RFC
// 6384 gateway can no longer match replies to commands (classic flows keep
// no such state).
func (c *Control) linesLost() { c.n64.stop() }

func (c *Control) maxHoldRetries() int {
	if c.cfg.MaxHoldRetries > 0 {
		return c.cfg.MaxHoldRetries
	}
	return 2
}

// maxGrowth bounds how much a rewrite can lengthen line: the longest
// replacement (an IPv6 LPRT long-host-port, "6,16," + 16 * "255," +
// "2,255,255" = 78 bytes; EPRT's "|2|" + 39-character IPv6 + "|65535|" is
// 49) for a line that may be an announcement, 0 for any other.
func maxGrowth(line []byte, client bool) int {
	if len(line) == 0 {
		return 0
	}
	switch c := line[0] | 0x20; {
	case client && (c == 'p' || c == 'e' || c == 'l'), !client && line[0] == '2':
		return maxLongText
	}
	return 0
}

// maxLongText is the length of the longest RFC 1639 long-host-port
// AppendLPRT writes: "6,16," + 16 * "255," + "2,255,255".
const maxLongText = 5 + 16*4 + 9

// announce handles an announcement a in line: it checks the announced
// endpoint against the sender (the kernel's loose=0 rule, RFC 2577 §3),
// asks the NAT for the public endpoint and rewrites the text.
func (c *Control) announce(out []byte, dir conntrack.Dir, seq uint32, line []byte, a Announcement, led *seqdelta.Ledger, tr Translator) ([]byte, Event, bool) {
	sender := c.flow[dir].Src
	if sender == c.flow[dir.Other()].Dst {
		// The NAT does not translate the announcing side: nothing to do;
		// the data connection will be an outbound flow.
		return append(out, line...), EvUntranslated, false
	}
	addr := a.Addr
	if a.Kind == Kind229 {
		addr = sender
	}
	if addr.Unmap() != sender.Unmap() {
		return append(out, line...), EvBounce, false
	}
	if a.Port == 0 || a.Port < 1024 && !c.cfg.AllowLowPorts {
		return append(out, line...), EvLowPort, false
	}
	if c.rewritesInSegment >= MaxRewritesPerSegment {
		return append(out, line...), EvRewriteLimit, false
	}
	if !c.room(dir, led) {
		// Rather than fold away a correction point a retransmission may
		// still need, the announcement passes as sent, with no
		// expectation, until the receiver's ACK makes room.
		return append(out, line...), EvLedgerFull, false
	}
	pub, ok := tr.MapData(dir, netip.AddrPortFrom(sender, a.Port), c.now)
	if !ok {
		return append(out, line...), EvMapFailed, false
	}
	var buf [maxAnnounceText]byte
	var text []byte
	switch a.Kind {
	case KindPORT, Kind227:
		if !pub.Addr().Unmap().Is4() {
			return append(out, line...), EvMapFailed, false
		}
		text = AppendPORT(buf[:0], pub.Addr().Unmap(), pub.Port())
	case KindEPRT:
		text = AppendEPRT(buf[:0], a.Delim, pub.Addr().Unmap(), pub.Port())
	case Kind229:
		text = AppendEPSV(buf[:0], a.Delim, pub.Port())
	case KindLPRT, Kind228:
		// RFC 1639 §2: the long-host-port of the public endpoint, in the
		// address family of the public address (4 for NAT44).
		text = AppendLPRT(buf[:0], pub.Addr().Unmap(), pub.Port())
	}
	oldText := line[a.Start:a.End]
	if bytes.Equal(oldText, text) {
		// Same text (a 229 whose port was kept): the expectation is what
		// mattered; the payload is untouched.
		return append(out, line...), EvRewrite, false
	}
	out = append(out, line[:a.Start]...)
	out = append(out, text...)
	out = append(out, line[a.End:]...)
	start := seq + uint32(a.Start)
	end := seq + uint32(a.End)
	c.flushRun(led)
	led.Record(start, end, int32(len(text)-len(oldText)))
	c.dir[dir].remember(start, oldText, text)
	c.rewritesInSegment++
	return out, EvRewrite, true
}

// room reports whether one more rewrite of direction dir can be recorded:
// a free correction point in led (the direction's ledger) and a free
// history entry, besides the ones the NAT64 run in progress will take when
// it is flushed. When there is none, it first forgets the rewrites the
// receiver has acknowledged whole (prune). Entries are forgotten only then,
// not on every ACK: as long as a point is kept, even a retransmission of
// acknowledged bytes (the ACK lost on the sender's side) is mapped and
// rewritten exactly.
func (c *Control) room(dir conntrack.Dir, led *seqdelta.Ledger) bool {
	need := 1
	if r := &c.n64.run; r.active && r.dir == dir {
		need++
	}
	s := &c.dir[dir]
	if led.Len()+need > seqdelta.Capacity || s.historyCount+need > historyLen {
		s.prune(led)
	}
	return led.Len()+need <= seqdelta.Capacity && s.historyCount+need <= historyLen
}

// Outstanding returns the number of rewrites of direction dir remembered
// (history entries), acknowledged or not.
func (c *Control) Outstanding(dir conntrack.Dir) int { return c.dir[dir].historyCount }

// Acked tells the gateway that the receiver of direction dir acknowledged
// every original byte before ack (its ACK field mapped back by the
// direction's ledger). The gateway keeps the highest such acknowledgment,
// to forget the rewrites before it when it needs room (prune). An
// acknowledgment of bytes the gateway has not seen pass (beyond the
// direction's next byte, or into a held line, which was never forwarded)
// is ignored, so a forged ACK cannot make it forget a rewrite. The caller
// holds the flow lock and has checked the segment's checksum.
func (c *Control) Acked(dir conntrack.Dir, ack uint32) { c.dir[dir].acknowledged(ack) }
