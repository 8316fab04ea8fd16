package alg

import (
	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/seqdelta"
)

// linePolicy is what the gateway does with the lines of a control
// connection once its stream (stream.go) has framed them: in-order,
// retransmissions replayed, partial lines held or passed. A Control has one
// for its lifetime, chosen by NewControl from the flow's tuples:
//
//   - classic (this file): the ALG of a NAT44 (or NAT66) flow, RFC 959
//     PORT and 227, RFC 2428 EPRT and 229, RFC 1639 LPRT and 228: the
//     announced endpoint is mapped to the public one and the text rewritten.
//   - *nat64 (nat64.go, rev64.go): the ALG of RFC 6384 for a flow between
//     an IPv6 and an IPv4 endpoint: EPRT becomes PORT, EPSV goes as PASV,
//     replies answered or replaced in band, Telnet negotiations removed.
//
// Every method runs under the flow lock, within Control.Segment.
type linePolicy interface {
	// line handles one complete line (ending in LF) sent in direction dir
	// at original sequence number seq, appending it, rewritten or not, to
	// out; changed reports a rewrite.
	line(c *Control, out []byte, dir conntrack.Dir, seq uint32, line []byte, led *seqdelta.Ledger, tr Translator) (_ []byte, ev Event, changed bool)
	// lineStart handles the bytes at a line start that come before the
	// line itself (RFC 6384 §5 Telnet negotiations): consumed bytes are
	// not relayed; stop means the rest of the segment must wait.
	lineStart(c *Control, dir conntrack.Dir, seq uint32, data []byte, led *seqdelta.Ledger) (consumed int, ev Event, stop bool)
	// holds reports whether a line start without its LF (partial) is held
	// back until its continuation arrives, because it may need a rewrite.
	holds(c *Control, client bool, partial []byte) bool
	// passed is told of a partial line that goes out unchanged.
	passed(c *Control, client bool, partial []byte)
	// growth bounds how much line may grow when it is handled.
	growth(c *Control, line []byte, client bool) int
}

// classic is the line policy of RFC 959/2428/1639 address translation.
type classic struct{}

func (classic) line(c *Control, out []byte, dir conntrack.Dir, seq uint32, line []byte, led *seqdelta.Ledger, tr Translator) ([]byte, Event, bool) {
	if dir == conntrack.Original {
		a, ok := c.command(line)
		if !ok {
			return append(out, line...), 0, false
		}
		switch a.Kind {
		case KindPORT, KindEPRT, KindLPRT:
			return c.announce(out, dir, seq, line, a, led, tr)
		}
		return append(out, line...), 0, false
	}
	r := c.followReply(line, false)
	if r.tls {
		return append(out, line...), EvTLS, false
	}
	if !r.eligible {
		return append(out, line...), 0, false
	}
	switch r.Kind {
	case Kind227, Kind229, Kind228:
		return c.announce(out, dir, seq, line, r.Announcement, led, tr)
	}
	return append(out, line...), 0, false
}

func (classic) lineStart(*Control, conntrack.Dir, uint32, []byte, *seqdelta.Ledger) (int, Event, bool) {
	return 0, 0, false
}

func (classic) holds(_ *Control, client bool, partial []byte) bool {
	return PrefixCouldBe(partial, client, MaxLine)
}

func (classic) passed(*Control, bool, []byte) {}

func (classic) growth(_ *Control, line []byte, client bool) int { return maxGrowth(line, client) }

// command parses a client line (ParseClientLine) and notes an AUTH, whose
// 234 reply starts TLS (RFC 4217 §4).
func (c *Control) command(line []byte) (Announcement, bool) {
	a, ok := ParseClientLine(line)
	if ok && a.Kind == KindAUTH {
		c.auth = true
	}
	return a, ok
}

// replyLine is a server line as the reply accounting sees it.
type replyLine struct {
	Announcement      // what ParseServerLine (or replyHead) found
	ok           bool // the line parsed (or, lenient, starts a reply)
	first        bool // the first line of a reply
	final        bool // the last line of a reply
	member       bool // a line of a reply (first or within a multi-line one)
	eligible     bool // a line that may announce: not the text of a multi-line reply
	tls          bool // the 234 to an AUTH: both directions are TLS from here
}

// followReply parses a server line and follows the replies it belongs to:
// the multi-line reply in progress (RFC 959 §4.2: it ends with a line
// starting with its code and a space), and the 234 to an AUTH, after which
// both directions carry the TLS handshake (RFC 4217 §4). lenient counts a
// line too long to parse by its first four bytes (RFC 959 §4.2), for the
// RFC 6384 gateway, which must see every reply.
func (c *Control) followReply(line []byte, lenient bool) replyLine {
	var r replyLine
	r.Announcement, r.ok = ParseServerLine(line)
	if !r.ok && lenient {
		if code, multi, isReply := replyHead(line); isReply {
			r.Announcement, r.ok = Announcement{Reply: code, Multiline: multi}, true
		}
	}
	ok, a := r.ok, &r.Announcement
	r.first = c.reply == 0 && ok && a.Reply != 0
	r.final = ok && a.Reply != 0 && !a.Multiline && (c.reply == 0 || a.Reply == c.reply)
	r.member = r.first || c.reply != 0
	r.eligible = ok
	if ok && a.Reply != 0 {
		switch {
		case c.reply != 0 && a.Reply == c.reply && !a.Multiline:
			c.reply = 0 // last line of the multi-line reply
		case c.reply != 0 && a.Reply != c.reply:
			r.eligible = false // text inside another reply
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
			r.tls = true
			return r
		}
		if c.reply == 0 && a.Reply >= 400 {
			c.auth = false
		}
	} else if c.reply != 0 {
		r.eligible = false // continuation text of a multi-line reply
	}
	return r
}
