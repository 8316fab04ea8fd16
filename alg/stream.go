package alg

// The stream of one direction of a control connection: it alone frames the
// bytes into lines, holds a partial line that may need a rewrite until its
// continuation comes, replays its earlier rewrites on retransmissions, keeps
// the history of those rewrites (and prunes it with the ledger when the
// receiver has acknowledged them), and follows TLS records while the
// direction is encrypted. It hands each whole line to the Control's line
// policy (policy.go), which decides what the line becomes.

import (
	"bytes"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/seqdelta"
)

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

	history      [historyLen]rewrite
	historyCount int // number of valid entries, newest last

	// mapFailedAt is where the data of a segment dropped for an
	// announcement that could not be mapped began (valid when mapFailed).
	// Its bytes were consumed, so a retransmission of them would take the
	// replay path, which knows no rewrite for them and would send the
	// inside address out: such a retransmission is dropped too. The
	// control connection stalls, failing closed, as the kernel's helper
	// does when it cannot map.
	mapFailedAt uint32
	mapFailed   bool

	// acked is the receiver's highest trusted acknowledgment (original
	// sequence space), valid when ackedOK: the rewrites before it may be
	// forgotten when room is needed. Not saved in state files: the next
	// ACK brings it back.
	acked   uint32
	ackedOK bool

	// TLS record framing (RFC 8446 §5.1, RFC 5246 §6.2) while this
	// direction is encrypted: nothing is inspected, only record headers
	// are followed, to find where the peers go back to clear text (CCC).
	tls        bool    // this direction carries TLS records
	tlsLost    bool    // framing lost or implausible: never inspected again
	recLeft    uint32  // bytes left in the current record's body
	hdr        [5]byte // a record header being collected
	hdrN       uint8
	recordSeen bool // a whole record header has been seen
}

// synchronize starts the direction at its SYN, of sequence number seq:
// its first byte, seq+1, begins a line; nothing is held or remembered.
func (s *stream) synchronize(seq uint32) {
	s.synced, s.lineStart, s.next = true, true, seq+1
	s.fromSYN = true
	s.held, s.historyCount = s.held[:0], 0
}

// pickUp starts a direction first seen mid-stream at seq: line boundaries
// are unknown until the next LF, unless the control connection was adopted
// after a restart (AdoptControl), where the next segment is taken to start
// a line.
func (s *stream) pickUp(seq uint32) {
	s.synced, s.lineStart, s.next = true, s.adopted, seq
}

// segment runs a segment of a clear-text direction through the gateway.
func (s *stream) segment(c *Control, seg *Segment, led *seqdelta.Ledger, tr Translator) Result {
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
			c.linesLost()
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
		if s.mapFailed && before(s.mapFailedAt, oldEnd) {
			return Result{Action: Drop, Events: EvMapFailed}
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
	scanFrom := start
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
		scanFrom = dataSeq
		var e Event
		var ch bool
		out, e, ch = s.scan(c, out, seg, dataSeq, data, led, tr, ev&EvMerged != 0)
		ev |= e
		changed = changed || ch
	}
	c.out = out
	if ev&EvMapFailed != 0 {
		if !s.mapFailed || before(scanFrom, s.mapFailedAt) {
			s.mapFailed, s.mapFailedAt = true, scanFrom
		}
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

// maxRecord is the largest TLSCiphertext length (RFC 5246 §6.2.3: 2^14 +
// 2048; TLS 1.3 allows 2^14 + 256).
const maxRecord = 1<<14 + 2048

// startTLS puts the direction in TLS mode from its next byte.
func (s *stream) startTLS() {
	s.tls, s.recLeft, s.hdrN, s.recordSeen = true, 0, 0, false
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
		if s.hdrN == 0 && !s.recordSeen && b != 22 {
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
			s.hdrN, s.recordSeen = 0, true
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
	for i := 0; i < s.historyCount; i++ {
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
func (s *stream) scan(c *Control, out []byte, seg *Segment, seq uint32, data []byte, led *seqdelta.Ledger, tr Translator, merged bool) ([]byte, Event, bool) {
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
		if s.lineStart {
			k, e, stop := c.policy.lineStart(c, seg.Dir, seq+uint32(i), data[i:], led)
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
			if !seg.FIN && len(rest) < MaxLine && c.policy.holds(c, client, rest) {
				s.held = append(s.held[:0], rest...)
				s.heldSeq = seq + uint32(i)
				s.heldRuns = 0
				ev |= EvHeld
				changed = true
				i = len(data)
				break
			}
			c.policy.passed(c, client, rest)
			out = append(out, rest...)
			i = len(data)
			s.lineStart = false
			break
		}
		line := data[i : i+nl+1]
		if merged && len(out)-base > 0 && len(out)-base+len(line)+c.policy.growth(c, line, client) > limit {
			// Cut here; the rest is not consumed and comes again.
			ev |= EvTruncated
			changed = true
			break
		}
		var e Event
		var ch bool
		out, e, ch = c.policy.line(c, out, seg.Dir, seq+uint32(i), line, led, tr)
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
	if s.historyCount == 0 {
		// acknowledgments are followed only while rewrites are kept
		// (Acked): an older one may be from far back in sequence space
		s.ackedOK = false
	}
	if s.historyCount < historyLen {
		s.historyCount++
	}
	return &s.history[s.historyCount-1]
}

// prune forgets the rewrites of the direction whose replaced text ends at
// or before the receiver's acknowledgment (acknowledged): from the history
// and from led (seqdelta.Ledger.Prune). The sender never needs them again: a segment
// it retransmits from before them is, for those bytes, below the receiver's
// RCV.NXT, where "only the new parts are processed" (RFC 9293 §3.10.7.4).
func (s *stream) prune(led *seqdelta.Ledger) {
	if !s.ackedOK {
		return
	}
	k := 0
	for k < s.historyCount && !before(s.acked, s.history[k].start+s.history[k].size()) {
		k++
	}
	if k > 0 {
		copy(s.history[:], s.history[k:s.historyCount])
		s.historyCount -= k
	}
	led.Prune(s.acked)
}

// acknowledged keeps ack, the receiver's acknowledgment of the
// direction's original bytes before it, when it is the highest seen and
// covers only bytes that went out (see Control.Acked).
func (s *stream) acknowledged(ack uint32) {
	if !s.synced || before(s.next, ack) || len(s.held) > 0 && before(s.heldSeq, ack) {
		return
	}
	if !s.ackedOK || before(s.acked, ack) {
		s.acked, s.ackedOK = ack, true
	}
}
