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
// naming the NAT's pool endpoint (§7.2); every EPSV goes to the server as
// PASV, its 227 turned into a 229 (§6; Config.NAT64EPSVProbe learns instead
// whether the server has EPSV); EPSV ALL and EPSV with a protocol other
// than 2 are answered by the gateway (§6), and so is ALGS (§11). Every
// other command, LPRT, LPSV and PORT included, passes unchanged, and so
// does its reply (§10). Telnet option negotiation is removed (§5).
//
// The NAT cannot send segments of its own, so everything the gateway
// answers is answered in band: the command is replaced on the way to the
// server by one whose reply is harmless (NOOP, §12, or PASV), and the
// server's reply to it is replaced on the way back by the gateway's
// answer, or removed. FTP replies come in command order (RFC 959 §4.2), so
// the gateway counts the client's commands and keeps a small FIFO of what
// to do with each outstanding reply. A stand-in NOOP answered with anything
// but 200 tears the session down (§12): its reply becomes a reset to the
// client (Result.Action Reset) and every later segment is dropped (the NAT
// sends the server's next one back to it as a reset, nat/ftp.go).

// answer is a reply the gateway gives in place of the server's.
type answer uint8

// (The values are saved with a flow's state, NAT64State.Ans: keep them.)
const (
	ansALGSOn    answer = iota // ALGS: EPSV and EPRT translated (RFC 6384 §11)
	ansALGSOff                 // ALGS: nothing translated (RFC 6384 §11)
	ansALGSEPSV                // ALGS: EPSV translated, EPRT kept as EPRT (Config.NAT64KeepEPRT)
	ansALGSBad                 // ALGS without one of its three arguments (RFC 6384 §11)
	ansEPSVAll                 // EPSV ALL (RFC 6384 §6)
	ansEPSV229                 // the 229 built from a 227 (text built, not a constant)
	ansEPSVProto               // EPSV with a protocol other than 2 (RFC 6384 §6)
)

// answers are the gateway's replies, each at most maxAnnounceText bytes.
// The 216 status reply of ALGS carries the translations in effect: EPSVEPRT
// (EPSV to PASV and EPRT to PORT), EPSV (EPRT not turned into PORT) or NONE
// (RFC 6384 §11 ABNF: "216" SP response-token [freetext]); its errors are
// 504, invalid parameter. Only the reply codes are normative (RFC 6384
// §5.1, last paragraph: "Requirements language only applies to the
// response number").
var answers = [...]string{
	ansALGSOn:    "216 EPSVEPRT EPSV to PASV and EPRT to PORT translation on\r\n",
	ansALGSOff:   "216 NONE translation off\r\n",
	ansALGSEPSV:  "216 EPSV EPSV to PASV translation on\r\n",
	ansALGSBad:   "504 ALGS takes STATUS64, ENABLE64 or DISABLE64\r\n",
	ansEPSVAll:   "504 Command not implemented for that parameter\r\n",
	ansEPSV229:   "",
	ansEPSVProto: "522 Network protocol not supported, use (2)\r\n",
}

// pendKind says what the gateway does with the reply to one outstanding
// command.
type pendKind uint8

const (
	pendPlain     pendKind = iota // n ordinary commands: their replies pass
	pendAnswer                    // a NOOP standing in for a command: its 200 becomes its answer, anything else tears the session down
	pendProbePASV                 // the PASV sent before a first EPSV: its reply is removed, a 227's port kept
	pendProbeEPSV                 // that EPSV: a 229 passes; a rejection becomes a 229 from the kept port
	pendTo229                     // a PASV standing in for EPSV: its 227 becomes a 229
	pendUnused                    // (was EPSV ALL passed; kept so saved kinds keep their values)
	pendTo227                     // an EPSV standing in for an IPv4 client's PASV: its 229 becomes a 227 (rev64.go)
)

// pending is one entry of the FIFO of outstanding replies.
type pending struct {
	kind     pendKind
	answer   answer
	commands uint16 // pendPlain: number of commands
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
	modePass     replyMode = iota
	modeReplace            // the first line becomes the gateway's answer, the others are removed
	modeDelete             // every line is removed (a 227's port is kept)
	modeTo229              // the 227 line becomes a 229, the others are removed
	modeTeardown           // a stand-in NOOP was not answered 200: the session is torn down
	modeTo227              // the 229 line becomes a 227 with the mapped endpoint, the others are removed (rev64.go)
)

// nat64 is the RFC 6384 state of a control connection.
type nat64 struct {
	on                  bool // an IPv6 client and an IPv4 server (the tuples' families differ)
	rev                 bool // an IPv4 client and an IPv6 server (a static NAT64 binding, rev64.go)
	lost                bool // replies can no longer be told apart: no in-band answers
	off                 bool // ALGS DISABLE64 received (RFC 6384 §11)
	greeted             bool // the server's greeting (220) went by
	dead                bool // torn down (RFC 6384 §12): every segment is dropped
	reset               bool // the segment being processed becomes a reset to its receiver
	epsv                epsvSupport
	pasvPort            uint16              // port of the 227 answering the gateway's probe PASV, 0 if none
	queue               [pendingCap]pending // FIFO of outstanding replies (ring)
	queueHead, queueLen uint8               // the oldest entry of queue, the number of entries
	mode                replyMode           // for the reply in progress
	answer              answer              // modeReplace: the answer
	emitted             bool                // modeTo229: the 229 was written
	run                 run
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
// no longer seen, RFC 4217 §4, RFC 6384 §5).
func (n *nat64) stop() {
	n.lost, n.queueLen, n.mode = true, 0, modePass
}

// tracked reports whether the gateway counts commands and replies: both
// directions were seen from their SYN (a flow picked up mid-stream has
// replies outstanding that were never seen) and nothing was lost since.
func (c *Control) tracked() bool {
	return (c.n64.on || c.n64.rev) && !c.n64.lost && c.dir[0].fromSYN && c.dir[1].fromSYN
}

// room reports whether k special entries, and an ordinary command after
// them, fit in the FIFO.
func (n *nat64) room(k int) bool { return int(n.queueLen)+k < pendingCap }

func (n *nat64) push(p pending) {
	if p.kind == pendPlain && n.queueLen > 0 {
		last := &n.queue[(int(n.queueHead)+int(n.queueLen)-1)%pendingCap]
		if last.kind == pendPlain && last.commands < 65535 {
			last.commands++
			return
		}
	}
	if int(n.queueLen) == pendingCap {
		// unreachable while room is respected; never guess
		n.stop()
		return
	}
	if p.kind == pendPlain {
		p.commands = 1
	}
	n.queue[(int(n.queueHead)+int(n.queueLen))%pendingCap] = p
	n.queueLen++
}

// pop removes the entry of the oldest outstanding command; ok is false when
// no command is outstanding.
func (n *nat64) pop() (p pending, ok bool) {
	if n.queueLen == 0 {
		return pending{}, false
	}
	head := &n.queue[n.queueHead]
	if head.kind == pendPlain && head.commands > 1 {
		head.commands--
		return pending{kind: pendPlain}, true
	}
	p = *head
	n.queueHead = uint8((int(n.queueHead) + 1) % pendingCap)
	n.queueLen--
	return p, true
}

// headSpecial reports whether the reply to come is one the gateway acts on.
func (n *nat64) headSpecial() bool {
	return n.queueLen > 0 && n.queue[n.queueHead].kind != pendPlain
}

// canRewrite reports whether a rewrite with newLen bytes of replacement at
// seq can still be made in this segment (MaxRewritesPerSegment counts runs).
func (c *Control) canRewrite(dir conntrack.Dir, seq uint32, newLen int) bool {
	r := &c.n64.run
	if r.active && r.dir == dir && r.end == seq && r.newN+newLen <= maxAnnounceText {
		return true
	}
	return c.rewritesInSegment < MaxRewritesPerSegment && c.room(dir, c.led)
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
		c.rewritesInSegment++
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
	if _, complete := telnetNegotiation(rest); !complete {
		// a Telnet negotiation cut short: it is removed whole (RFC 6384
		// §5)
		return true
	}
	if client && c.n64.rev {
		return false // PORT, EPRT and PASV are in PrefixCouldBe's set
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

// parseALGS recognises an ALGS command (RFC 6384 §11; verb and argument in
// any case, RFC 959 §5.3): arg is "STATUS64", "ENABLE64" or "DISABLE64",
// or "" for a bare ALGS or any other argument (answered 504).
func parseALGS(line []byte) (arg string, ok bool) {
	s, ok := lineContent(line)
	if !ok || len(s) < 4 || !eqFold(s[:4], "ALGS") || len(s) > 4 && !isWS(s[4]) {
		return "", false
	}
	s = bytes.TrimRight(bytes.TrimLeft(s[4:], " \t"), " \t")
	for _, a := range [...]string{"STATUS64", "ENABLE64", "DISABLE64"} {
		if eqFold(s, a) {
			return a, true
		}
	}
	return "", true
}

// epsvArg classifies the argument of an EPSV command (RFC 2428 §3).
type epsvArg uint8

const (
	epsvNone    epsvArg = iota // not an EPSV command
	epsvPlain                  // EPSV or EPSV 2
	epsvAllArg                 // EPSV ALL
	epsvOtherNo                // EPSV with a number other than 2
	epsvOther                  // any other argument: not the gateway's (RFC 6384 §10)
)

// parseEPSV classifies an EPSV command line by its argument (RFC 2428 §3,
// RFC 6384 §6; verb and ALL in any case).
func parseEPSV(line []byte) epsvArg {
	s, ok := lineContent(line)
	if !ok || len(s) < 4 || !eqFold(s[:4], "EPSV") || len(s) > 4 && !isWS(s[4]) {
		return epsvNone
	}
	s = bytes.TrimRight(bytes.TrimLeft(s[4:], " \t"), " \t")
	switch {
	case len(s) == 0 || len(s) == 1 && s[0] == '2':
		return epsvPlain
	case eqFold(s, "ALL"):
		return epsvAllArg
	}
	for _, b := range s {
		if !isDigit(b) {
			return epsvOther
		}
	}
	if len(bytes.TrimLeft(s, "0")) == 1 && s[len(s)-1] == '2' {
		return epsvPlain // "02"
	}
	return epsvOtherNo
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
//   - ALGS (RFC 6384 §11): answered by the gateway: 216 and the
//     translations in effect for STATUS64, ENABLE64 and DISABLE64 (which
//     stops every translation below for the session, ENABLE64 starts them
//     again), 504 for a bare ALGS or another argument.
//   - EPRT |2|addr|port| with the client's own address (RFC 6384 §7.2):
//     the NAT maps the endpoint and the command becomes PORT with the pool
//     endpoint (or EPRT |1|, Config.NAT64KeepEPRT). Any other address is
//     left unchanged (RFC 6384 §7.2, RFC 2577 §3 bounce rule, EvBounce).
//   - EPSV (RFC 6384 §6): see epsv64.
//   - Anything else, LPRT, LPSV (RFC 6384 §1 leaves them out) and PORT
//     included, passes unchanged with its reply (RFC 6384 §10), and opens
//     nothing: no endpoint is mapped, no expectation made. A PORT of the
//     IPv6 client cannot name its own address (RFC 2577 §3: EvBounce).
//
// Answers are in band: the line goes to the server as NOOP and the reply to
// it is replaced (reply64). Without room in the FIFO, or on a flow whose
// replies are not tracked, such commands pass unchanged (EvQueueFull).
func (c *Control) command64(out []byte, seq uint32, line []byte, a Announcement, ok bool, led *seqdelta.Ledger, tr Translator) ([]byte, Event, bool) {
	n := &c.n64
	if blank(line) {
		// Some servers answer an empty line (500), some ignore it: the
		// replies can no longer be matched to commands for sure.
		n.stop()
		return append(out, line...), 0, false
	}
	algs, isALGS := parseALGS(line)
	epsv := epsvNone
	if !n.off {
		epsv = parseEPSV(line)
	}
	eprt := !n.off && ok && a.Kind == KindEPRT
	special := isALGS || eprt || epsv != epsvNone && epsv != epsvOther
	if special && !c.canRewrite(conntrack.Original, seq, maxAnnounceText) {
		c.cut = true
		return out, 0, false
	}
	switch {
	case isALGS:
		if c.tracked() && n.room(1) {
			switch algs {
			case "ENABLE64":
				n.off = false
			case "DISABLE64":
				n.off = true
			}
		}
		reply := ansALGSBad
		switch {
		case algs == "":
		case n.off:
			reply = ansALGSOff
		case c.cfg.NAT64KeepEPRT:
			reply = ansALGSEPSV
		default:
			reply = ansALGSOn
		}
		return c.answer(out, seq, line, reply, EvALGS, led)
	case eprt:
		n.push(pending{kind: pendPlain})
		return c.eprt64(out, seq, line, a, led, tr)
	case epsv == epsvAllArg:
		return c.answer(out, seq, line, ansEPSVAll, EvRefused, led)
	case epsv == epsvOtherNo:
		return c.answer(out, seq, line, ansEPSVProto, EvRefused, led)
	case epsv == epsvPlain:
		return c.epsv64(out, seq, line, led)
	}
	n.push(pending{kind: pendPlain})
	var ev Event
	if !n.off && ok && (a.Kind == KindPORT || a.Kind == KindLPRT) && a.Addr.IsValid() && a.Addr != c.flow[conntrack.Original].Src {
		// passed unchanged, no mapping: what the server does with a
		// third party's address is its business (RFC 2577 §3)
		ev = EvBounce
	}
	return append(out, line...), ev, false
}

// answer replaces a command by a stand-in NOOP whose 200 reply becomes the
// gateway's answer reply (RFC 6384 §12). When it cannot (replies not
// tracked, or the FIFO full), the command passes unchanged, EvQueueFull.
func (c *Control) answer(out []byte, seq uint32, line []byte, reply answer, ev Event, led *seqdelta.Ledger) ([]byte, Event, bool) {
	n := &c.n64
	if !c.tracked() || !n.room(1) {
		n.push(pending{kind: pendPlain})
		return append(out, line...), EvQueueFull, false
	}
	n.push(pending{kind: pendAnswer, answer: reply})
	return c.replaceLine(out, conntrack.Original, seq, line, "NOOP\r\n", led), ev, true
}

// eprt64 translates the IPv6 client's EPRT (RFC 6384 §7.2, RFC 2428 §2).
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
	pub, ok := tr.MapData(conntrack.Original, netip.AddrPortFrom(sender, a.Port), c.now)
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

// epsv64 handles the client's EPSV or EPSV 2 (RFC 2428 §3, RFC 6384 §6:
// the server's side of the data connection is IPv4 whatever the client
// asked).
//
// By default it goes to the server as PASV and the 227 answering it comes
// back as a 229 (RFC 6384 §6: the ALG SHOULD translate all occurrences;
// one 229 from a server is no positive knowledge, §1 shows servers whose
// EPSV fails later). With Config.NAT64EPSVProbe the gateway learns instead:
//
//   - unchanged when the server is known to have EPSV;
//   - as PASV when it is known to reject it;
//   - the first time, as "PASV\r\nEPSV": the PASV first, so that the
//     server's last passive listener is the EPSV one when it has EPSV. The
//     reply to the PASV is removed and a 227's port kept; a 229 to the EPSV
//     passes (EPSV supported); a rejection becomes a 229 with the kept
//     port (EPSV unsupported: later EPSVs go as PASV).
//
// The 229 needs no expectation: the client connects to the server's
// RFC 6052 address, the destination of its control connection. The IPv4
// address in the 227 is ignored (RFC 6384 §6: it SHOULD be).
func (c *Control) epsv64(out []byte, seq uint32, line []byte, led *seqdelta.Ledger) ([]byte, Event, bool) {
	n := &c.n64
	probe := c.cfg.NAT64EPSVProbe
	if !c.tracked() || probe && n.epsv == epsvYes {
		n.push(pending{kind: pendPlain})
		return append(out, line...), 0, false
	}
	if !probe || n.epsv == epsvNo {
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
// §6).
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
func (c *Control) reply64(out []byte, seq uint32, line []byte, a Announcement, first, final, member bool, led *seqdelta.Ledger, tr Translator) ([]byte, Event, bool) {
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
		if c.n64.rev && first && a.Kind == Kind229 {
			// the IPv6 server's 229 to the IPv4 client's own EPSV: its
			// port is mapped on the pool address (rev64.go)
			return c.announce(out, conntrack.Reply, seq, line, a, led, tr)
		}
		return append(out, line...), 0, false
	case modeTo227:
		return c.to227(out, seq, line, a, final, led, tr)
	case modeTeardown:
		// RFC 6384 §12: the reply to the stand-in NOOP is never relayed;
		// the session is torn down
		n.dead, n.reset = true, true
		return out, EvTornDown, false
	case modeReplace:
		if first {
			var b [maxAnnounceText]byte
			text := append(b[:0], answers[n.answer]...)
			if n.answer == ansEPSV229 {
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
		// RFC 6384 §12: the 200 to the NOOP becomes the gateway's answer;
		// anything else SHOULD tear the session down
		n.mode, n.answer = modeTeardown, p.answer
		if code == 200 {
			n.mode = modeReplace
		}
	case pendProbePASV:
		n.mode, n.pasvPort = modeDelete, 0
	case pendProbeEPSV:
		switch {
		case code == 229:
			n.epsv = epsvYes
		case epsvRejected(code) && n.pasvPort != 0:
			n.epsv = epsvNo
			n.mode, n.answer = modeReplace, ansEPSV229
		}
	case pendTo229:
		if code == 227 {
			n.mode = modeTo229
		}
	case pendTo227:
		if code == 229 {
			n.mode = modeTo227
		}
	}
}

// Telnet command bytes (RFC 854): IAC introduces a command; WILL, WONT, DO
// and DONT negotiate an option (three bytes with it); SB ... IAC SE is a
// subnegotiation.
const (
	telnetIAC  = 255
	telnetDONT = 254
	telnetDO   = 253
	telnetWONT = 252
	telnetWILL = 251
	telnetSB   = 250
	telnetSE   = 240
)

// telnetNegotiation returns the length of the Telnet option negotiation at
// the start of p (IAC WILL/WONT/DO/DONT option, or IAC SB ... IAC SE), 0 if
// p starts with no negotiation (another Telnet command, such as IAC IP or
// IAC DM of an ABOR, RFC 959 §4.1.3, or an escaped IAC IAC), and complete
// false if p ends inside one.
func telnetNegotiation(p []byte) (n int, complete bool) {
	if len(p) < 2 {
		return 0, len(p) == 0 || p[0] != telnetIAC
	}
	if p[0] != telnetIAC {
		return 0, true
	}
	switch p[1] {
	case telnetWILL, telnetWONT, telnetDO, telnetDONT:
		if len(p) < 3 {
			return 0, false
		}
		return 3, true
	case telnetSB:
		for i := 2; i+1 < len(p); i++ {
			if p[i] == telnetIAC && p[i+1] == telnetSE {
				return i + 2, true
			}
			if p[i] == telnetIAC && p[i+1] == telnetIAC {
				i++ // an escaped 255 inside the subnegotiation
			}
		}
		return 0, false
	}
	return 0, true
}

// telnet64 removes the Telnet option negotiations at the start of data, a
// line start of direction dir at original sequence number seq: RFC 6384 §5
// has the ALG refuse them without relaying, as an FTP server does (RFC 1123
// §4.1.2.12), so that the peers never agree on options the gateway does
// not implement. The refusal itself (WONT or DONT to the negotiator) cannot
// be sent: the NAT originates no segment; the negotiator, without an
// answer, stays in the default NVT mode, which is what a refusal means
// (RFC 854). It returns the bytes consumed, the events, and stop when the
// rest of the segment must wait (a rewrite limit: it comes again).
func (c *Control) telnet64(dir conntrack.Dir, seq uint32, data []byte, led *seqdelta.Ledger) (consumed int, ev Event, stop bool) {
	for consumed < len(data) {
		k, _ := telnetNegotiation(data[consumed:])
		if k == 0 {
			break
		}
		if !c.canRewrite(dir, seq+uint32(consumed), 0) {
			return consumed, ev | EvRewriteLimit | EvTruncated, true
		}
		c.runAdd(dir, seq+uint32(consumed), data[consumed:consumed+k], nil, led)
		consumed += k
		ev |= EvTelnetRefused
	}
	return consumed, ev, false
}

// telnetInLine returns how many Telnet option negotiations line holds, an
// escaped IAC IAC not counting.
func telnetInLine(line []byte) int {
	k := 0
	for i := 0; i < len(line); i++ {
		if line[i] != telnetIAC || i+1 >= len(line) {
			continue
		}
		if line[i+1] == telnetIAC {
			i++
			continue
		}
		if n, _ := telnetNegotiation(line[i:]); n > 0 {
			k++
			i += n - 1
		}
	}
	return k
}

// telnetLine removes the Telnet option negotiations inside a complete line
// of a NAT64 flow (those at a line start are gone already, telnet64): RFC
// 6384 §5 has them refused without relaying. The rest of the line passes
// unchanged. A client line counts as an ordinary command; a server line
// cut by negotiations can no longer be matched to a command for sure, so
// the in-band answers stop (stop). Without room for the rewrites in this
// segment, the line waits for the next one (c.cut).
func (c *Control) telnetLine(out []byte, dir conntrack.Dir, seq uint32, line []byte, k int, led *seqdelta.Ledger) ([]byte, Event, bool) {
	if c.rewritesInSegment+k > MaxRewritesPerSegment {
		c.cut = true
		return out, 0, false
	}
	from := 0
	for i := 0; i < len(line); i++ {
		if line[i] != telnetIAC || i+1 >= len(line) {
			continue
		}
		if line[i+1] == telnetIAC {
			i++
			continue
		}
		n, _ := telnetNegotiation(line[i:])
		if n == 0 {
			continue
		}
		out = append(out, line[from:i]...)
		c.runAdd(dir, seq+uint32(i), line[i:i+n], nil, led)
		from = i + n
		i += n - 1
	}
	out = append(out, line[from:]...)
	if dir == conntrack.Original {
		c.n64.push(pending{kind: pendPlain})
	} else {
		c.n64.stop()
	}
	return out, EvTelnetRefused, true
}

// The RFC 6384 gateway is the line policy (policy.go) of a NAT64 control
// flow, in either direction (rev says which): its state is the policy.

func (n *nat64) line(c *Control, out []byte, dir conntrack.Dir, seq uint32, line []byte, led *seqdelta.Ledger, tr Translator) ([]byte, Event, bool) {
	if k := telnetInLine(line); k > 0 {
		return c.telnetLine(out, dir, seq, line, k, led) // RFC 6384 §5
	}
	if dir == conntrack.Original {
		a, ok := c.command(line)
		if n.rev {
			return c.commandRev(out, seq, line, a, ok, led)
		}
		return c.command64(out, seq, line, a, ok, led, tr)
	}
	r := c.followReply(line, true)
	if r.tls {
		return append(out, line...), EvTLS, false
	}
	// The server is the IPv4 side: its 227 and 229 need no mapping (RFC
	// 6384 §6); only replies the gateway must answer or translate are
	// touched.
	return c.reply64(out, seq, line, r.Announcement, r.first, r.final, r.member, led, tr)
}

func (n *nat64) lineStart(c *Control, dir conntrack.Dir, seq uint32, data []byte, led *seqdelta.Ledger) (int, Event, bool) {
	if data[0] != telnetIAC {
		return 0, 0, false
	}
	// RFC 6384 §5: Telnet negotiations are not relayed
	return c.telnet64(dir, seq, data, led)
}

func (n *nat64) holds(c *Control, client bool, partial []byte) bool {
	return PrefixCouldBe(partial, client, MaxLine) || c.hold64(client, partial)
}

func (n *nat64) passed(c *Control, client bool, partial []byte) { c.partial64(client, partial) }

func (n *nat64) growth(c *Control, line []byte, client bool) int { return c.growth(line, client) }
