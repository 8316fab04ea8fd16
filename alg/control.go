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
	// be had.
	MapData(dir conntrack.Dir, announced netip.AddrPort) (public netip.AddrPort, ok bool)
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
}

// historyLen bounds a direction's rewrite history: like the ledger's
// correction points, an entry stays until the receiver has acknowledged the
// rewritten text (Control.Acked) and room is needed (Control.room), and no
// rewrite is made without room for it.
const historyLen = seqdelta.Capacity

// rewrite is a rewrite done earlier, kept to repeat it on a retransmission.
// The replaced text may be longer than maxAnnounceText (a whole command or
// reply the NAT64 gateway replaces, up to a segment): its first
// maxAnnounceText bytes are kept to check retransmitted bytes against, and
// a hash of all of it to check a retransmission that covers it whole. The
// replacement is always at most maxAnnounceText bytes.
type rewrite struct {
	start   uint32 // original sequence number of the replaced text
	oldLen  uint8  // bytes of it kept in oldText
	newLen  uint8
	span    uint32 // length of the replaced text when longer than oldLen, else 0
	oldSum  uint64 // FNV-1a of the whole replaced text (when span != 0)
	oldText [maxAnnounceText]byte
	newText [maxAnnounceText]byte
}

// size returns the length of the replaced original text.
func (r *rewrite) size() uint32 {
	if r.span != 0 {
		return r.span
	}
	return uint32(r.oldLen)
}

// maxAnnounceText bounds a replacement text (an IPv6 LPRT long-host-port of
// maxLongText bytes, "|2|" + 45-char IPv6 + "|65535|", or a reply of the
// NAT64 gateway) and the part of a replaced text kept verbatim.
const maxAnnounceText = 80

// legacyAnnounceText is the part of a replaced text kept verbatim by
// versions that bounded it at 64 bytes; their saved rewrites still load.
const legacyAnnounceText = 64

// fnv64 returns the FNV-1a hash of p.
func fnv64(h uint64, p []byte) uint64 {
	for _, b := range p {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}

const fnvBasis = 14695981039346656037

// stream is the gateway's view of one direction of the control connection.
type stream struct {
	synced    bool
	fromSYN   bool   // synced by this direction's SYN (not picked up mid-stream)
	lineStart bool   // the byte at next begins a line
	adopted   bool   // not synced yet: the first segment starts a line (AdoptControl)
	next      uint32 // next expected original sequence number
	mss       uint16 // MSS announced by this direction's receiver

	held     []byte // a partial candidate line starting at heldSeq, ending at next
	heldSeq  uint32
	heldRuns uint8 // retransmissions of held bytes absorbed

	history [historyLen]rewrite
	hn      int // number of valid entries, newest last

	// acked is the receiver's highest trusted acknowledgment (original
	// sequence space), valid when ackedOK: the rewrites before it may be
	// forgotten when room is needed. Not saved in state files: the next
	// ACK brings it back.
	acked   uint32
	ackedOK bool

	// TLS record framing (RFC 8446 §5.1, RFC 5246 §6.2) while this
	// direction is encrypted: nothing is inspected, only record headers
	// are followed, to find where the peers go back to clear text (CCC).
	tls     bool    // this direction carries TLS records
	tlsLost bool    // framing lost or implausible: never inspected again
	recLeft uint32  // bytes left in the current record's body
	hdr     [5]byte // a record header being collected
	hdrN    uint8
	recs    bool // a whole record header has been seen
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
	cfg    *Config
	dir    [2]stream
	flow   [2]conntrack.Tuple // the flow's tuples, to know who is translated
	reply  int                // code of the multi-line reply in progress, 0 if none
	auth   bool               // AUTH sent, reply awaited
	segRew int                // announcements rewritten in the segment being processed
	led    *seqdelta.Ledger   // ledger of the segment being processed (for room; set by Segment)
	out    []byte             // output payload scratch, reused
	merge  []byte             // held bytes + continuation scratch, reused
	heldBf [2][MaxLine]byte
	n64    nat64 // RFC 6384 state of a NAT64 flow
	cut    bool  // the line being processed must wait for the next segment
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
	c.dir[0].held = c.heldBf[0][:0]
	c.dir[1].held = c.heldBf[1][:0]
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
	c.segRew = 0
	c.led = led
	if seg.SYN {
		s.synced, s.lineStart, s.next = true, true, seg.Seq+1
		s.fromSYN = true
		s.held, s.hn = s.held[:0], 0
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
		// Picked up mid-stream: line boundaries unknown until the next LF,
		// unless the control connection was adopted after a restart
		// (AdoptControl), where the next segment is taken to start a line.
		s.synced, s.lineStart, s.next = true, s.adopted, seg.Seq
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
	res := c.segment(seg, s, led, tr)
	res.Events |= resumed
	if c.n64.reset {
		c.n64.reset = false
		return Result{Action: Reset, Seq: seg.Seq, Events: res.Events | EvTornDown}
	}
	return res
}

// segment runs a segment of a clear-text direction through the gateway.
func (c *Control) segment(seg *Segment, s *stream, led *seqdelta.Ledger, tr Translator) Result {
	start, end := seg.Seq, seg.Seq+uint32(len(seg.Payload))
	if before(s.next, start) {
		// A gap: a command in the missing bytes could still change the
		// length of everything after it, so nothing beyond it may go out
		// before it. The sender retransmits.
		return Result{Action: Drop, Events: EvOutOfOrder}
	}
	if len(s.held) > 0 && !before(start, s.heldSeq) && before(start, s.next) && !before(s.next, end) {
		// Only bytes we are holding.
		if start != s.heldSeq {
			return Result{Action: Drop, Events: EvDupHeld}
		}
		s.heldRuns++
		if int(s.heldRuns) > c.maxHoldRetries() {
			// Give up: let the sender's bytes through as they are; the rest
			// of what we held comes again from the sender.
			s.next, s.lineStart = end, false
			s.held, s.heldRuns = s.held[:0], 0
			// a line never seen whole: NAT64 replies can no longer be
			// matched to commands
			c.n64.stop()
			return Result{Events: EvAbandoned}
		}
		return Result{Action: Drop, Events: EvHeld}
	}
	if len(s.held) > 0 && !before(start, s.heldSeq) && before(start, s.next) {
		// A retransmission of held bytes that brings new ones: drop our copy
		// and take the line from the sender's bytes.
		s.next, s.lineStart, s.held = s.heldSeq, true, s.held[:0]
	}
	if len(s.held) > 0 && before(start, s.heldSeq) {
		s.next, s.lineStart, s.held = s.heldSeq, true, s.held[:0]
	}

	var ev Event
	out := c.out[:0]
	outSeq := start
	fresh := seg.Payload // bytes not seen before
	if before(start, s.next) {
		// Bytes already seen: repeat earlier rewrites on them.
		oldEnd := end
		if before(s.next, end) {
			oldEnd = s.next
		}
		var ok bool
		out, outSeq, ok = s.replay(out, start, seg.Payload[:oldEnd-start])
		if !ok {
			c.out = out
			return Result{Action: Drop, Events: EvRetransMismatch}
		}
		// (an empty out is a rewrite too: text removed whole, whether
		// or not c.out was ever allocated, as in a restored Control)
		if !(len(out) == int(oldEnd-start) && outSeq == start && bytes.Equal(out, seg.Payload[:oldEnd-start])) {
			ev |= EvRetransRewrite
		}
		fresh = seg.Payload[oldEnd-start:]
		start = oldEnd
	}
	changed := ev != 0
	if len(fresh) > 0 {
		var data []byte
		dataSeq := start
		if len(s.held) > 0 {
			// Merge the held partial line with its continuation.
			c.merge = append(append(c.merge[:0], s.held...), fresh...)
			data = c.merge
			dataSeq = s.heldSeq
			if len(out) == 0 {
				outSeq = dataSeq
			}
			s.held = s.held[:0]
			s.heldRuns = 0
			ev |= EvMerged
			changed = true
		} else {
			data = fresh
		}
		var e Event
		var ch bool
		out, e, ch = c.scan(out, seg, dataSeq, data, led, tr, ev&EvMerged != 0)
		ev |= e
		changed = changed || ch
	}
	c.out = out
	if ev&EvMapFailed != 0 {
		return Result{Action: Drop, Events: ev}
	}
	if !changed {
		return Result{Events: ev}
	}
	if len(out) == 0 && (ev&EvHeld != 0 || ev&(EvReplySubstituted|EvRetransRewrite|EvTelnetRefused) == 0) {
		return Result{Action: Drop, Events: ev}
	}
	// An empty replacement (a reply the NAT64 gateway removed) goes out as
	// a pure ACK, its sequence number shifted by the ledger.
	return Result{Action: Replace, Seq: outSeq, Payload: out, Events: ev}
}

func (c *Control) maxHoldRetries() int {
	if c.cfg.MaxHoldRetries > 0 {
		return c.cfg.MaxHoldRetries
	}
	return 2
}

// maxRecord is the largest TLSCiphertext length (RFC 5246 §6.2.3: 2^14 +
// 2048; TLS 1.3 allows 2^14 + 256).
const maxRecord = 1<<14 + 2048

// startTLS puts the direction in TLS mode from its next byte.
func (s *stream) startTLS() {
	s.tls, s.recLeft, s.hdrN, s.recs = true, 0, 0, false
	// a partial line held when the peer answered 234 is no line; the
	// direction is not inspected again
	s.tlsLost = len(s.held) > 0
	s.held = s.held[:0]
}

// resume follows the TLS records of an encrypted direction through seg. It
// returns true when, at a record boundary after at least one record, the
// next bytes are clear FTP text instead of a record header (the peers ended
// TLS with close_notify, RFC 4217 §6): then the direction is clear again,
// s.next is where the text starts and lineStart is set. Anything doubtful
// (a gap, a first record that is not a handshake, a header that is neither
// a record nor text) marks the framing lost: the direction stays
// uninspected for good.
func (s *stream) resume(seg *Segment) bool {
	start, end := seg.Seq, seg.Seq+uint32(len(seg.Payload))
	if s.tlsLost {
		if before(s.next, end) && !before(s.next, start) {
			s.next = end
		}
		return false
	}
	if before(s.next, start) {
		// bytes missing: the record boundaries after them are unknown
		s.tlsLost = true
		return false
	}
	if !before(s.next, end) {
		return false // nothing new
	}
	p := seg.Payload[s.next-start:]
	i := 0
	for i < len(p) {
		if s.recLeft > 0 {
			k := uint32(len(p) - i)
			if k > s.recLeft {
				k = s.recLeft
			}
			i += int(k)
			s.recLeft -= k
			continue
		}
		b := p[i]
		if s.hdrN == 0 && !s.recs && b != 22 {
			// TLS starts with a handshake record (ClientHello, ServerHello);
			// anything else after 234 is not followed
			s.tlsLost = true
			s.next = end
			return false
		}
		if s.hdrN == 0 && (b < 20 || b > 23) {
			// not a record: clear text, if it looks like an FTP line
			s.next += uint32(i)
			if !ftpText(p[i:], seg.Dir == conntrack.Original) {
				s.tlsLost = true
				s.next = end
				return false
			}
			s.tls, s.lineStart = false, true
			return true
		}
		s.hdr[s.hdrN] = b
		s.hdrN++
		if !plausibleHeader(s.hdr[:s.hdrN]) {
			s.tlsLost = true
			s.next = end
			return false
		}
		i++
		if s.hdrN == 5 {
			s.recLeft = uint32(s.hdr[3])<<8 | uint32(s.hdr[4])
			s.hdrN, s.recs = 0, true
		}
	}
	s.next = end
	return false
}

// plausibleHeader reports whether h, the first bytes of a TLS record header,
// can be one: content type change_cipher_spec, alert, handshake or
// application_data (20-23), version 3.x with x <= 4, length at most
// maxRecord.
func plausibleHeader(h []byte) bool {
	switch {
	case h[0] < 20 || h[0] > 23:
		return false
	case len(h) > 1 && h[1] != 3:
		return false
	case len(h) > 2 && h[2] > 4:
		return false
	case len(h) > 4 && int(h[3])<<8|int(h[4]) > maxRecord:
		return false
	}
	return true
}

// ftpText reports whether p, bytes where a direction left TLS, starts like
// an FTP line: a letter (a command) from the client, a digit (a reply) from
// the server, then printable ASCII, tab or CR up to the first LF (or the end
// of p), at most MaxLine bytes.
func ftpText(p []byte, client bool) bool {
	if len(p) == 0 {
		return false
	}
	c := p[0]
	if client && !('a' <= c|0x20 && c|0x20 <= 'z') || !client && !('0' <= c && c <= '9') {
		return false
	}
	for i, b := range p {
		if i >= MaxLine {
			return false
		}
		if b == '\n' {
			return true
		}
		if (b < 0x20 || b > 0x7e) && b != '\t' && b != '\r' {
			return false
		}
	}
	return true
}

// replay appends to out the translated form of already-seen original bytes
// p starting at seq, repeating every recorded rewrite they touch. When p
// starts inside rewritten text, the output starts at the rewrite's start (the
// whole replacement is sent again). ok is false when p differs from the text
// that was rewritten.
func (s *stream) replay(out []byte, seq uint32, p []byte) (_ []byte, outSeq uint32, ok bool) {
	end := seq + uint32(len(p))
	cur := seq
	outSeq = seq
	touched := false
	for i := 0; i < s.hn; i++ {
		r := &s.history[i]
		rEnd := r.start + r.size()
		if !before(r.start, end) || !before(seq, rEnd) {
			continue // no overlap
		}
		if !touched && before(r.start, seq) {
			outSeq = r.start
		}
		touched = true
		// Check the bytes we have against the text first rewritten.
		lo, hi := r.start, rEnd
		if before(lo, seq) {
			lo = seq
		}
		if before(end, hi) {
			hi = end
		}
		// the bytes within the kept prefix must be the same, and a
		// retransmission of the whole text must have the same hash
		pe := hi
		if before(r.start+uint32(r.oldLen), pe) {
			pe = r.start + uint32(r.oldLen)
		}
		if before(lo, pe) && !bytes.Equal(p[lo-seq:pe-seq], r.oldText[lo-r.start:pe-r.start]) {
			return out, seq, false
		}
		if r.span != 0 && lo == r.start && hi == rEnd && fnv64(fnvBasis, p[lo-seq:hi-seq]) != r.oldSum {
			return out, seq, false
		}
		if before(cur, r.start) {
			out = append(out, p[cur-seq:r.start-seq]...)
		}
		out = append(out, r.newText[:r.newLen]...)
		cur = rEnd
	}
	if !touched {
		return append(out, p...), seq, true
	}
	if before(cur, end) {
		out = append(out, p[cur-seq:]...)
	}
	return out, outSeq, true
}

// scan processes in-order bytes data starting at original sequence number
// seq, line by line, appending the output to out. merged means data begins
// with held bytes released now: then the output is cut after the last whole
// line that fits the receiver's MSS, and the sender retransmits the rest.
func (c *Control) scan(out []byte, seg *Segment, seq uint32, data []byte, led *seqdelta.Ledger, tr Translator, merged bool) ([]byte, Event, bool) {
	s := &c.dir[seg.Dir]
	client := seg.Dir == conntrack.Original
	var ev Event
	changed := false
	limit := int(s.mss)
	if limit == 0 {
		limit = 536 // RFC 9293 §3.7.1 default send MSS
	}
	if limit < len(seg.Payload) {
		limit = len(seg.Payload)
	}
	base := len(out)
	i := 0
	for i < len(data) {
		if s.tls {
			// the rest of the segment that carried the 234: records
			rest := data[i:]
			tail := Segment{Dir: seg.Dir, Seq: seq + uint32(i), Payload: rest}
			s.next = tail.Seq
			c.flushRun(led)
			if s.resume(&tail) {
				// no way back to clear text within the 234's segment
				s.tls, s.tlsLost = true, true
				s.next = tail.Seq + uint32(len(rest))
			}
			out = append(out, rest...)
			return out, ev, changed
		}
		if s.lineStart && (c.n64.on || c.n64.rev) && data[i] == telnetIAC {
			// RFC 6384 §5: Telnet negotiations are not relayed
			k, e, stop := c.telnet64(seg.Dir, seq+uint32(i), data[i:], led)
			ev, changed, i = ev|e, changed || e != 0, i+k
			if stop {
				break
			}
			if k > 0 {
				continue
			}
		}
		nl := bytes.IndexByte(data[i:], '\n')
		if !s.lineStart {
			if nl < 0 {
				out = append(out, data[i:]...)
				i = len(data)
				break
			}
			out = append(out, data[i:i+nl+1]...)
			i += nl + 1
			s.lineStart = true
			continue
		}
		if nl < 0 {
			rest := data[i:]
			if !seg.FIN && len(rest) < MaxLine && (PrefixCouldBe(rest, client, MaxLine) || c.hold64(client, rest)) {
				s.held = append(s.held[:0], rest...)
				s.heldSeq = seq + uint32(i)
				s.heldRuns = 0
				ev |= EvHeld
				changed = true
				i = len(data)
				break
			}
			c.partial64(client, rest)
			out = append(out, rest...)
			i = len(data)
			s.lineStart = false
			break
		}
		line := data[i : i+nl+1]
		if merged && len(out)-base > 0 && len(out)-base+len(line)+c.growth(line, client) > limit {
			// Cut here; the rest is not consumed and comes again.
			ev |= EvTruncated
			changed = true
			break
		}
		var e Event
		var ch bool
		out, e, ch = c.line(out, seg.Dir, seq+uint32(i), line, led, tr)
		ev |= e
		changed = changed || ch
		if c.cut {
			// No rewrite left for this segment: the line and the rest
			// are not consumed and come again.
			c.cut = false
			ev |= EvRewriteLimit | EvTruncated
			changed = true
			break
		}
		i += nl + 1
	}
	c.flushRun(led)
	s.next = seq + uint32(i)
	if len(s.held) > 0 {
		s.next = s.heldSeq + uint32(len(s.held))
	}
	if i < len(data) && len(s.held) == 0 {
		s.lineStart = true
	}
	return out, ev, changed
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

// line handles one complete line (ending in LF) sent in direction dir at
// original sequence number seq, appending it, rewritten or not, to out.
func (c *Control) line(out []byte, dir conntrack.Dir, seq uint32, line []byte, led *seqdelta.Ledger, tr Translator) ([]byte, Event, bool) {
	var a Announcement
	var ok bool
	if dir == conntrack.Original {
		a, ok = ParseClientLine(line)
		if ok && a.Kind == KindAUTH {
			c.auth = true
		}
		if c.n64.rev {
			return c.commandRev(out, seq, line, a, ok, led)
		}
		if c.n64.on {
			return c.command64(out, seq, line, a, ok, led, tr)
		}
	} else {
		a, ok = ParseServerLine(line)
		if !ok && (c.n64.on || c.n64.rev) {
			// a reply line too long to parse still counts (RFC 959 §4.2)
			if code, multi, isReply := replyHead(line); isReply {
				a, ok = Announcement{Reply: code, Multiline: multi}, true
			}
		}
		first := c.reply == 0 && ok && a.Reply != 0
		final := ok && a.Reply != 0 && !a.Multiline && (c.reply == 0 || a.Reply == c.reply)
		member := first || c.reply != 0
		eligible := ok
		if ok && a.Reply != 0 {
			switch {
			case c.reply != 0 && a.Reply == c.reply && !a.Multiline:
				c.reply = 0 // last line of the multi-line reply
			case c.reply != 0 && a.Reply != c.reply:
				eligible = false // text inside another reply
			case c.reply == 0 && a.Multiline:
				c.reply = a.Reply
			}
			if c.reply == 0 && a.Reply == 234 && c.auth {
				// RFC 4217 §4: after 234 the next bytes of both directions
				// are the TLS handshake.
				c.auth = false
				c.dir[0].startTLS()
				c.dir[1].startTLS()
				c.n64.stop()
				return append(out, line...), EvTLS, false
			}
			if c.reply == 0 && a.Reply >= 400 {
				c.auth = false
			}
		} else if c.reply != 0 {
			eligible = false // continuation text of a multi-line reply
		}
		if c.n64.on || c.n64.rev {
			// The server is the IPv4 side: its 227 and 229 need no
			// mapping (RFC 6384 §6); only replies the gateway must
			// answer or translate are touched.
			return c.reply64(out, seq, line, a, first, final, member, led, tr)
		}
		ok = eligible
	}
	if !ok {
		return append(out, line...), 0, false
	}
	switch a.Kind {
	case KindPORT, KindEPRT, KindLPRT:
		if dir != conntrack.Original {
			return append(out, line...), 0, false
		}
	case Kind227, Kind229, Kind228:
		if dir != conntrack.Reply {
			return append(out, line...), 0, false
		}
	default:
		return append(out, line...), 0, false
	}
	return c.announce(out, dir, seq, line, a, led, tr)
}

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
	if c.segRew >= MaxRewritesPerSegment {
		return append(out, line...), EvRewriteLimit, false
	}
	if !c.room(dir, led) {
		// Rather than fold away a correction point a retransmission may
		// still need, the announcement passes as sent, with no
		// expectation, until the receiver's ACK makes room.
		return append(out, line...), EvLedgerFull, false
	}
	pub, ok := tr.MapData(dir, netip.AddrPortFrom(sender, a.Port))
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
	c.segRew++
	return out, EvRewrite, true
}

// remember keeps a rewrite for retransmissions.
func (s *stream) remember(start uint32, oldText, newText []byte) {
	if len(newText) > maxAnnounceText {
		return
	}
	r := s.nextRewrite()
	r.start = start
	r.oldLen = uint8(copy(r.oldText[:], oldText))
	r.span, r.oldSum = 0, 0
	if len(oldText) > maxAnnounceText {
		r.span, r.oldSum = uint32(len(oldText)), fnv64(fnvBasis, oldText)
	}
	r.newLen = uint8(copy(r.newText[:], newText))
}

// nextRewrite returns the history entry for a new rewrite. The caller has
// checked room; a full history (never reached) reuses the newest entry
// rather than forget one a retransmission may need.
func (s *stream) nextRewrite() *rewrite {
	if s.hn == 0 {
		// acknowledgments are followed only while rewrites are kept
		// (Acked): an older one may be from far back in sequence space
		s.ackedOK = false
	}
	if s.hn < historyLen {
		s.hn++
	}
	return &s.history[s.hn-1]
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
	if led.Len()+need > seqdelta.Capacity || s.hn+need > historyLen {
		c.prune(dir, led)
	}
	return led.Len()+need <= seqdelta.Capacity && s.hn+need <= historyLen
}

// prune forgets the rewrites of direction dir whose replaced text ends at
// or before the receiver's acknowledgment (Acked): from the history and from
// led (seqdelta.Ledger.Prune). The sender never needs them again: a segment
// it retransmits from before them is, for those bytes, below the receiver's
// RCV.NXT, where "only the new parts are processed" (RFC 9293 §3.10.7.4).
func (c *Control) prune(dir conntrack.Dir, led *seqdelta.Ledger) {
	s := &c.dir[dir]
	if !s.ackedOK {
		return
	}
	k := 0
	for k < s.hn && !before(s.acked, s.history[k].start+s.history[k].size()) {
		k++
	}
	if k > 0 {
		copy(s.history[:], s.history[k:s.hn])
		s.hn -= k
	}
	led.Prune(s.acked)
}

// Outstanding returns the number of rewrites of direction dir remembered
// (history entries), acknowledged or not.
func (c *Control) Outstanding(dir conntrack.Dir) int { return c.dir[dir].hn }

// Acked tells the gateway that the receiver of direction dir acknowledged
// every original byte before ack (its ACK field mapped back by the
// direction's ledger). The gateway keeps the highest such acknowledgment,
// to forget the rewrites before it when it needs room (prune). An
// acknowledgment of bytes the gateway has not seen pass (beyond the
// direction's next byte, or into a held line, which was never forwarded)
// is ignored, so a forged ACK cannot make it forget a rewrite. The caller
// holds the flow lock and has checked the segment's checksum.
func (c *Control) Acked(dir conntrack.Dir, ack uint32) {
	s := &c.dir[dir]
	if !s.synced || before(s.next, ack) || len(s.held) > 0 && before(s.heldSeq, ack) {
		return
	}
	if !s.ackedOK || before(s.acked, ack) {
		s.acked, s.ackedOK = ack, true
	}
}
