package alg

import (
	"bytes"
	"net/netip"
	"strconv"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/seqdelta"
)

// This file holds the FTP ALG for IPv6-to-IPv4 translation (NAT64, RFC
// 6146) of RFC 6384: an IPv6-only client talks to an IPv4 server through
// its RFC 6052 address. The client's IPv6 EPRT becomes a PORT (or EPRT |1|)
// naming the NAT's pool endpoint; EPSV passes, or goes to the server as
// PASV when the server lacks it, its 227 turned into a 229; LPRT and LPSV
// are refused; ALGS is answered by the gateway.
//
// The NAT cannot send segments of its own, so everything the gateway
// answers is answered in band: the command is replaced on the way to the
// server by one whose reply is harmless (NOOP, or PASV before EPSV), and
// the server's reply to it is replaced on the way back by the gateway's
// answer, or removed. FTP replies come in command order (RFC 959 §4.2), so
// the gateway counts the client's commands and keeps a small FIFO of what
// to do with each outstanding reply.

// answer is a reply the gateway gives in place of the server's.
type answer uint8

const (
	ansALGSOn  answer = iota // ALGS: translation on (RFC 6384 §11)
	ansALGSOff               // ALGS: translation off (RFC 6384 §11)
	ansLPRT                  // LPRT refused (RFC 6384 §5.3)
	ansLPSV                  // LPSV refused (RFC 6384 §5.3)
	ansPORT                  // PORT from the IPv6 client refused (RFC 6384 §5.2)
	ansEPSV229               // the 229 built from a 227 (text built, not a constant)
)

// answers are the gateway's replies, each at most maxAnnounceText bytes.
// The 216 status reply of ALGS carries "EPSVEPRT" (both the EPSV and the
// EPRT translations are active) or "NONE" (RFC 6384 §11).
var answers = [...]string{
	ansALGSOn:  "216 EPSVEPRT NAT64 FTP ALG enabled\r\n",
	ansALGSOff: "216 NONE NAT64 FTP ALG disabled\r\n",
	ansLPRT:    "502 LPRT not supported through NAT64, use EPRT\r\n",
	ansLPSV:    "502 LPSV not supported through NAT64, use EPSV\r\n",
	ansPORT:    "501 PORT cannot name an IPv6 client, use EPRT\r\n",
	ansEPSV229: "",
}

// pendKind says what the gateway does with the reply to one outstanding
// command.
type pendKind uint8

const (
	pendPlain     pendKind = iota // n ordinary commands: their replies pass
	pendAnswer                    // a NOOP standing in for a command: its 2xx becomes answer ans
	pendProbePASV                 // the PASV sent before a first EPSV: its reply is removed, a 227's port kept
	pendProbeEPSV                 // that EPSV: a 229 passes; a rejection becomes a 229 from the kept port
	pendTo229                     // a PASV standing in for EPSV: its 227 becomes a 229
	pendEPSVAll                   // EPSV ALL: a 2xx means the server has EPSV
)

// pending is one entry of the FIFO of outstanding replies.
type pending struct {
	kind pendKind
	ans  answer
	n    uint16 // pendPlain: number of commands
}

// pendingCap bounds the FIFO. Ordinary commands in a row share an entry, so
// it only fills when the client pipelines many commands the gateway must
// answer; then further ones pass unchanged (EvQueueFull).
const pendingCap = 8

// epsvSupport is what the gateway knows of the server's EPSV (RFC 2428 §3).
type epsvSupport uint8

const (
	epsvUnknown epsvSupport = iota
	epsvYes
	epsvNo
)

// replyMode is what the gateway does with the lines of the reply in
// progress.
type replyMode uint8

const (
	modePass    replyMode = iota
	modeReplace           // the first line becomes the gateway's answer, the others are removed
	modeDelete            // every line is removed (a 227's port is kept)
	modeTo229             // the 227 line becomes a 229, the others are removed
)

// nat64 is the RFC 6384 state of a control connection.
type nat64 struct {
	on       bool // an IPv6 client and an IPv4 server (the tuples' families differ)
	lost     bool // replies can no longer be told apart: no in-band answers
	off      bool // ALGS DISABLE64 received (RFC 6384 §11)
	greeted  bool // the server's greeting (220) went by
	epsvAll  bool // the server accepted EPSV ALL: it refuses PASV now (RFC 2428 §4)
	epsv     epsvSupport
	pasvPort uint16 // port of the 227 answering the gateway's probe PASV, 0 if none
	q        [pendingCap]pending
	qh, qn   uint8
	mode     replyMode // for the reply in progress
	ans      answer    // modeReplace: the answer
	emitted  bool      // modeTo229: the 229 was written
	run      run
}

// run is a rewrite being built over adjacent bytes of one segment: a line
// replaced, then the lines after it removed, make one correction point and
// one history entry.
type run struct {
	active     bool
	dir        conntrack.Dir
	start, end uint32
	sum        uint64
	old        [maxAnnounceText]byte // first bytes of the replaced text
	new        [maxAnnounceText]byte
	newN       int
}

// stop ends the in-band answers for good (TLS: the commands and replies are
// no longer seen, RFC 4217 §4, RFC 6384 §9).
func (n *nat64) stop() {
	n.lost, n.qn, n.mode = true, 0, modePass
}

// tracked reports whether the gateway counts commands and replies: both
// directions were seen from their SYN (a flow picked up mid-stream has
// replies outstanding that were never seen) and nothing was lost since.
func (c *Control) tracked() bool {
	return c.n64.on && !c.n64.lost && c.dir[0].fromSYN && c.dir[1].fromSYN
}

// room reports whether k special entries, and an ordinary command after
// them, fit in the FIFO.
func (n *nat64) room(k int) bool { return int(n.qn)+k < pendingCap }

func (n *nat64) push(p pending) {
	if p.kind == pendPlain && n.qn > 0 {
		t := &n.q[(int(n.qh)+int(n.qn)-1)%pendingCap]
		if t.kind == pendPlain && t.n < 65535 {
			t.n++
			return
		}
	}
	if int(n.qn) == pendingCap {
		// unreachable while room is respected; never guess
		n.stop()
		return
	}
	if p.kind == pendPlain {
		p.n = 1
	}
	n.q[(int(n.qh)+int(n.qn))%pendingCap] = p
	n.qn++
}

// pop removes the entry of the oldest outstanding command; ok is false when
// no command is outstanding.
func (n *nat64) pop() (p pending, ok bool) {
	if n.qn == 0 {
		return pending{}, false
	}
	h := &n.q[n.qh]
	if h.kind == pendPlain && h.n > 1 {
		h.n--
		return pending{kind: pendPlain}, true
	}
	p = *h
	n.qh = uint8((int(n.qh) + 1) % pendingCap)
	n.qn--
	return p, true
}

// headSpecial reports whether the reply to come is one the gateway acts on.
func (n *nat64) headSpecial() bool {
	return n.qn > 0 && n.q[n.qh].kind != pendPlain
}

// canRewrite reports whether a rewrite with newLen bytes of replacement at
// seq can still be made in this segment (MaxRewritesPerSegment counts runs).
func (c *Control) canRewrite(dir conntrack.Dir, seq uint32, newLen int) bool {
	r := &c.n64.run
	if r.active && r.dir == dir && r.end == seq && r.newN+newLen <= maxAnnounceText {
		return true
	}
	return c.segRew < MaxRewritesPerSegment && c.room(dir, c.led)
}

// runAdd replaces the original bytes old at seq by repl (at most
// maxAnnounceText bytes), joining the run in progress when adjacent. The
// caller writes repl to the output. canRewrite must have said yes.
func (c *Control) runAdd(dir conntrack.Dir, seq uint32, old, repl []byte, led *seqdelta.Ledger) {
	r := &c.n64.run
	if r.active && (r.dir != dir || r.end != seq || r.newN+len(repl) > maxAnnounceText) {
		c.flushRun(led)
	}
	if !r.active {
		r.active, r.dir, r.start, r.end, r.sum, r.newN = true, dir, seq, seq, fnvBasis, 0
		c.segRew++
	}
	if k := r.end - r.start; k < maxAnnounceText {
		copy(r.old[k:], old)
	}
	r.sum = fnv64(r.sum, old)
	r.end += uint32(len(old))
	r.newN += copy(r.new[r.newN:], repl)
}

// flushRun records the run in progress in the ledger and in the history.
func (c *Control) flushRun(led *seqdelta.Ledger) {
	r := &c.n64.run
	if !r.active {
		return
	}
	r.active = false
	led.Record(r.start, r.end, int32(r.newN)-int32(r.end-r.start))
	h := c.dir[r.dir].nextRewrite()
	h.start, h.span, h.oldSum = r.start, 0, 0
	h.oldLen = uint8(min(r.end-r.start, maxAnnounceText))
	if r.end-r.start > maxAnnounceText {
		h.span, h.oldSum = r.end-r.start, r.sum
	}
	h.oldText = r.old
	h.newLen = uint8(copy(h.newText[:], r.new[:r.newN]))
}

// replaceLine writes repl in place of the whole line at seq.
func (c *Control) replaceLine(out []byte, dir conntrack.Dir, seq uint32, line []byte, repl string, led *seqdelta.Ledger) []byte {
	var b [maxAnnounceText]byte
	r := b[:copy(b[:], repl)]
	c.runAdd(dir, seq, line, r, led)
	return append(out, r...)
}

// hold64 reports whether a partial line of a NAT64 flow must be held until
// it is complete: a client line that may become a command the gateway
// rewrites, or any reply line while the reply to come or in progress is one
// the gateway acts on.
func (c *Control) hold64(client bool, rest []byte) bool {
	if !c.n64.on {
		return false
	}
	if client {
		n := min(len(rest), 4)
		for _, v := range [...]string{"EPSV", "ALGS", "LPRT", "LPSV", "PORT", "EPRT"} {
			if eqFold(rest[:n], v[:n]) && (len(rest) == n || n == 4 && isWS(rest[4]) || n == 4 && rest[4] == '\r') {
				return true
			}
		}
		return false
	}
	// a reply start shorter than "ddd " cannot be counted (partial64)
	return c.tracked() && (len(rest) < 4 || c.n64.mode != modePass || c.reply == 0 && c.n64.headSpecial())
}

// replyHead reads the reply code and the multi-line mark of a line that
// starts a reply or ends a multi-line one: "ddd " or "ddd-" (RFC 959 §4.2).
func replyHead(p []byte) (code int, multi, ok bool) {
	if len(p) < 4 || !isDigit(p[0]) || !isDigit(p[1]) || !isDigit(p[2]) || p[3] != ' ' && p[3] != '-' {
		return 0, false, false
	}
	return int(p[0]-'0')*100 + int(p[1]-'0')*10 + int(p[2]-'0'), p[3] == '-', true
}

// partial64 counts a line whose start passes before its end arrives (it is
// not held: no rewrite can apply to it), so that the FIFO stays in step
// with the replies: a client line is one more ordinary command; a server
// line may start or end a reply (its first four bytes say which; shorter
// starts are held by hold64).
func (c *Control) partial64(client bool, rest []byte) {
	n := &c.n64
	if !c.tracked() {
		return
	}
	if client {
		if blank(rest) {
			n.stop()
			return
		}
		if len(rest) >= 5 && eqFold(rest[:4], "AUTH") && isWS(rest[4]) {
			c.auth = true
		}
		n.push(pending{kind: pendPlain})
		return
	}
	code, multi, ok := replyHead(rest)
	if !ok || c.reply != 0 && code != c.reply {
		return // text inside a multi-line reply
	}
	first := c.reply == 0
	final := !multi
	switch {
	case first && multi:
		c.reply = code
	case final:
		c.reply = 0
	}
	if !first {
		return
	}
	if code == 234 && c.auth && final {
		// RFC 4217 §4, as in line; the rest of this line is no record,
		// so the server direction will not be inspected again
		c.auth = false
		c.dir[0].startTLS()
		c.dir[1].startTLS()
		n.stop()
		return
	}
	if code >= 400 && final {
		c.auth = false
	}
	if code < 200 {
		return
	}
	if !n.greeted {
		n.greeted = true
		return
	}
	if n.headSpecial() {
		// held unless too long or with FIN: its substitution is lost
		n.stop()
		return
	}
	n.pop()
}

// growth bounds how much a rewrite can lengthen line (see maxGrowth); on a
// tracked NAT64 flow a reply line may become one of the gateway's answers.
func (c *Control) growth(line []byte, client bool) int {
	g := maxGrowth(line, client)
	if !client && c.tracked() {
		g = max(g, maxAnnounceText)
	}
	return g
}

// parseALGS recognises "ALGS STATUS64", "ALGS ENABLE64" and "ALGS
// DISABLE64" (RFC 6384 §11; verb and argument in any case, RFC 959 §5.3).
// Any other ALGS argument is not the NAT64 ALG's and passes to the server.
func parseALGS(line []byte) (arg string, ok bool) {
	s, ok := lineContent(line)
	if !ok || len(s) < 5 || !eqFold(s[:4], "ALGS") || !isWS(s[4]) {
		return "", false
	}
	s = bytes.TrimRight(bytes.TrimLeft(s[4:], " \t"), " \t")
	for _, a := range [...]string{"STATUS64", "ENABLE64", "DISABLE64"} {
		if eqFold(s, a) {
			return a, true
		}
	}
	return "", false
}

// blank reports whether line holds only white space: no command, and
// servers differ on whether it gets a reply.
func blank(line []byte) bool {
	for _, b := range line {
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			return false
		}
	}
	return true
}

// command64 handles a complete command line of a NAT64 flow.
//
//   - ALGS STATUS64/ENABLE64/DISABLE64 (RFC 6384 §11): answered by the
//     gateway with 216 and the state; DISABLE64 stops every translation
//     below for the session, ENABLE64 starts them again.
//   - EPRT |2|addr|port| with the client's own address (RFC 6384 §5.2):
//     the NAT maps the endpoint and the command becomes PORT with the pool
//     endpoint (or EPRT |1|, Config.NAT64KeepEPRT). Any other address is
//     left unchanged (RFC 2577 §3 bounce rule, EvBounce).
//   - PORT: an IPv4 address cannot be the IPv6 client's (RFC 6384 §5.2):
//     refused with 501 rather than let the server connect to a third party.
//   - LPRT, LPSV (RFC 1639): refused with 502 (RFC 6384 §5.3).
//   - EPSV (RFC 6384 §5.1): see epsv64.
//
// Refusals and answers are in band: the line goes to the server as NOOP
// and the reply to it is replaced (reply64). Without room in the FIFO, or
// on a flow whose replies are not tracked, such commands pass unchanged.
func (c *Control) command64(out []byte, seq uint32, line []byte, a Announcement, ok bool, led *seqdelta.Ledger, tr Translator) ([]byte, Event, bool) {
	n := &c.n64
	if blank(line) {
		// Some servers answer an empty line (500), some ignore it: the
		// replies can no longer be matched to commands for sure.
		n.stop()
		return append(out, line...), 0, false
	}
	tracked := c.tracked()
	algs, isALGS := parseALGS(line)
	special := isALGS || !n.off && ok && (a.Kind == KindPORT || a.Kind == KindEPRT || a.Kind == KindLPRT || a.Kind == KindLPSV || a.Kind == KindEPSV)
	if special && !c.canRewrite(conntrack.Original, seq, maxAnnounceText) {
		c.cut = true
		return out, 0, false
	}
	if isALGS && tracked {
		if !n.room(1) {
			n.push(pending{kind: pendPlain})
			return append(out, line...), EvQueueFull, false
		}
		switch algs {
		case "ENABLE64":
			n.off = false
		case "DISABLE64":
			n.off = true
		}
		ans := ansALGSOn
		if n.off {
			ans = ansALGSOff
		}
		n.push(pending{kind: pendAnswer, ans: ans})
		return c.replaceLine(out, conntrack.Original, seq, line, "NOOP\r\n", led), EvALGS, true
	}
	if !special {
		n.push(pending{kind: pendPlain})
		return append(out, line...), 0, false
	}
	switch a.Kind {
	case KindEPRT:
		n.push(pending{kind: pendPlain})
		return c.eprt64(out, seq, line, a, led, tr)
	case KindPORT:
		return c.refuse(out, seq, line, ansPORT, EvBounce, led)
	case KindLPRT:
		return c.refuse(out, seq, line, ansLPRT, 0, led)
	case KindLPSV:
		return c.refuse(out, seq, line, ansLPSV, 0, led)
	}
	return c.epsv64(out, seq, line, a, led)
}

// refuse answers a command with the gateway's refusal ans, in band. When it
// cannot, the command passes unchanged with the events passEv.
func (c *Control) refuse(out []byte, seq uint32, line []byte, ans answer, passEv Event, led *seqdelta.Ledger) ([]byte, Event, bool) {
	n := &c.n64
	if !c.tracked() || !n.room(1) {
		ev := passEv
		if c.tracked() {
			ev |= EvQueueFull
		}
		n.push(pending{kind: pendPlain})
		return append(out, line...), ev, false
	}
	n.push(pending{kind: pendAnswer, ans: ans})
	return c.replaceLine(out, conntrack.Original, seq, line, "NOOP\r\n", led), EvRefused, true
}

// eprt64 translates the IPv6 client's EPRT (RFC 6384 §5.2, RFC 2428 §2).
func (c *Control) eprt64(out []byte, seq uint32, line []byte, a Announcement, led *seqdelta.Ledger, tr Translator) ([]byte, Event, bool) {
	sender := c.flow[conntrack.Original].Src
	if a.Addr != sender {
		// |1| (never the IPv6 client's) or another IPv6 host: the
		// bounce rule of RFC 2577 §3; the server will refuse or fail
		return append(out, line...), EvBounce, false
	}
	if a.Port < 1024 && !c.cfg.AllowLowPorts {
		return append(out, line...), EvLowPort, false
	}
	pub, ok := tr.MapData(conntrack.Original, netip.AddrPortFrom(sender, a.Port))
	if !ok || !pub.Addr().Unmap().Is4() {
		return append(out, line...), EvMapFailed, false
	}
	var buf [maxAnnounceText]byte
	var text []byte
	from := 0
	if c.cfg.NAT64KeepEPRT {
		text = AppendEPRT(buf[:0], a.Delim, pub.Addr().Unmap(), pub.Port())
		from = a.Start
	} else {
		text = AppendPORT(append(buf[:0], "PORT "...), pub.Addr(), pub.Port())
	}
	c.runAdd(conntrack.Original, seq+uint32(from), line[from:a.End], text, led)
	out = append(out, line[:from]...)
	out = append(out, text...)
	return append(out, line[a.End:]...), EvRewrite, true
}

// epsv64 handles the client's EPSV (RFC 2428 §3, RFC 6384 §5.1).
//
// EPSV ALL passes unchanged: after it the server refuses PASV (RFC 2428
// §4), so it is never translated; a 2xx to it shows the server has EPSV.
// Any other EPSV (bare, "1" or "2": the server's side of the data
// connection is IPv4 whatever the client asked) passes unchanged after an
// accepted EPSV ALL, and otherwise goes:
//
//   - as PASV, its 227 turned into a 229, when Config.NAT64EPSVToPASV asks
//     or the server is known to reject EPSV;
//   - unchanged when the server is known to have EPSV;
//   - the first time, as "PASV\r\nEPSV": the PASV first, so that the
//     server's last passive listener is the EPSV one when it has EPSV. The
//     reply to the PASV is removed and a 227's port kept; a 229 to the EPSV
//     passes (EPSV supported); a rejection becomes a 229 with the kept
//     port (EPSV unsupported: later EPSVs go as PASV).
//
// The 229 needs no expectation: the client connects to the server's
// RFC 6052 address, the destination of its control connection.
func (c *Control) epsv64(out []byte, seq uint32, line []byte, a Announcement, led *seqdelta.Ledger) ([]byte, Event, bool) {
	n := &c.n64
	if eqFold(line[a.Start:a.End], "ALL") {
		if c.tracked() && n.room(1) {
			n.push(pending{kind: pendEPSVAll})
		} else {
			n.push(pending{kind: pendPlain})
		}
		return append(out, line...), 0, false
	}
	if !c.tracked() || n.epsvAll || n.epsv == epsvYes && !c.cfg.NAT64EPSVToPASV {
		n.push(pending{kind: pendPlain})
		return append(out, line...), 0, false
	}
	if c.cfg.NAT64EPSVToPASV || n.epsv == epsvNo {
		if !n.room(1) {
			n.push(pending{kind: pendPlain})
			return append(out, line...), EvQueueFull, false
		}
		n.push(pending{kind: pendTo229})
		return c.replaceLine(out, conntrack.Original, seq, line, "PASV\r\n", led), EvEPSVToPASV, true
	}
	if !n.room(2) {
		n.push(pending{kind: pendPlain})
		return append(out, line...), EvQueueFull, false
	}
	n.push(pending{kind: pendProbePASV})
	n.push(pending{kind: pendProbeEPSV})
	var b [10]byte
	text := append(append(b[:0], "PASV\r\n"...), line[:4]...)
	c.runAdd(conntrack.Original, seq, line[:4], text, led)
	out = append(out, text...)
	return append(out, line[4:]...), EvEPSVToPASV, true
}

// epsvRejected reports whether code rejects an EPSV: not recognised (500),
// bad argument (501), not implemented (502, 504: RFC 959 §4.2.1), or
// network protocol not supported (522, RFC 2428 §3).
func epsvRejected(code int) bool {
	switch code {
	case 500, 501, 502, 504, 522:
		return true
	}
	return false
}

// append229 appends the 229 reply for port (RFC 2428 §3 wording, RFC 6384
// §5.1).
func append229(dst []byte, port uint16) []byte {
	dst = append(dst, "229 Entering Extended Passive Mode (|||"...)
	dst = strconv.AppendUint(dst, uint64(port), 10)
	return append(dst, "|)\r\n"...)
}

// reply64 handles a complete reply line of a NAT64 flow. first and final
// say whether it starts and ends a reply (RFC 959 §4.2; a single-line reply
// is both), member whether it belongs to one at all.
//
// The first completion reply is the server's greeting. Each later one
// (code 2xx-5xx; 1xx are preliminary) answers the oldest outstanding
// command, whose FIFO entry says what to do with its lines.
func (c *Control) reply64(out []byte, seq uint32, line []byte, a Announcement, first, final, member bool, led *seqdelta.Ledger) ([]byte, Event, bool) {
	n := &c.n64
	if !c.tracked() || !member {
		return append(out, line...), 0, false
	}
	if (first && n.headSpecial() || !first && n.mode != modePass) && !c.canRewrite(conntrack.Reply, seq, maxAnnounceText) {
		c.cut = true
		return out, 0, false
	}
	if first {
		n.mode = modePass
		if a.Reply >= 200 {
			if !n.greeted {
				n.greeted = true
			} else if p, ok := n.pop(); ok {
				n.start(p, a.Reply)
			}
		}
	}
	mode := n.mode
	if final {
		n.mode = modePass
	}
	var ev Event
	switch mode {
	case modePass:
		return append(out, line...), 0, false
	case modeReplace:
		if first {
			var b [maxAnnounceText]byte
			text := append(b[:0], answers[n.ans]...)
			if n.ans == ansEPSV229 {
				text = append229(b[:0], n.pasvPort)
				ev = EvEPSVToPASV
			}
			c.runAdd(conntrack.Reply, seq, line, text, led)
			return append(out, text...), ev | EvReplySubstituted, true
		}
	case modeDelete:
		if a.Reply == 227 && a.Kind == Kind227 && a.Port != 0 && n.pasvPort == 0 {
			n.pasvPort = a.Port
		}
	case modeTo229:
		if !n.emitted && a.Reply == 227 && a.Kind == Kind227 && a.Port != 0 {
			n.emitted = true
			var b [maxAnnounceText]byte
			text := append229(b[:0], a.Port)
			c.runAdd(conntrack.Reply, seq, line, text, led)
			return append(out, text...), EvReplySubstituted | EvEPSVToPASV, true
		}
		if final && !n.emitted {
			// a 227 without numbers: the client gets its last line
			return append(out, line...), 0, false
		}
	}
	c.runAdd(conntrack.Reply, seq, line, nil, led)
	return out, ev | EvReplySubstituted, true
}

// start sets the mode of a reply with code that answers the command of p.
func (n *nat64) start(p pending, code int) {
	n.emitted = false
	switch p.kind {
	case pendAnswer:
		if code >= 200 && code < 300 {
			n.mode, n.ans = modeReplace, p.ans
		}
	case pendProbePASV:
		n.mode, n.pasvPort = modeDelete, 0
	case pendProbeEPSV:
		switch {
		case code == 229:
			n.epsv = epsvYes
		case epsvRejected(code) && n.pasvPort != 0:
			n.epsv = epsvNo
			n.mode, n.ans = modeReplace, ansEPSV229
		}
	case pendTo229:
		if code == 227 {
			n.mode = modeTo229
		}
	case pendEPSVAll:
		if code >= 200 && code < 300 {
			n.epsv, n.epsvAll = epsvYes, true
		}
	}
}
