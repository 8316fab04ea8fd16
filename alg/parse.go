// Package alg implements the FTP application-layer gateway of the NAT.
//
// Layout: control.go is the entry point (Control.Segment) and the
// announcement rewrite; stream.go frames each direction into lines (holds,
// retransmission replay, rewrite history, TLS records); policy.go is the
// line policy interface and its classic RFC 959/2428/1639 implementation,
// nat64.go and rev64.go the RFC 6384 one; scan.go is the table-driven
// scanner under the grammar here; state.go and state_binary.go save and
// restore a Control; event.go names the events.
//
// This file holds the pure grammar layer: it classifies one complete
// control-connection line and locates the text a NAT must rewrite, with
// the scanner of scan.go. It keeps no state, performs no I/O, never
// allocates and never panics.
package alg

import (
	"bytes"
	"net/netip"
)

// MaxLine is the longest line, in bytes and including the terminating CR LF,
// that ParseClientLine and ParseServerLine examine. RFC 959 sets no limit on
// the length of a command or reply line; 512 bytes is far more than any
// legitimate PORT, EPRT, 227 or 229 line needs (the longest EPRT with an
// IPv6 address is 58 bytes). Longer lines are reported as ok == false.
const MaxLine = 512

// Kind says what a line announces.
type Kind uint8

// The kinds of lines recognised by ParseClientLine and ParseServerLine.
const (
	KindNone Kind = iota
	KindPORT      // client: PORT h1,h2,h3,h4,p1,p2 (RFC 959 §4.1.2)
	KindEPRT      // client: EPRT <d><af><d><addr><d><port><d> (RFC 2428 §2)
	Kind227       // server: 227 reply to PASV (RFC 959 §4.2; lenient per RFC 1123 §4.1.2.6)
	Kind229       // server: 229 reply to EPSV (RFC 2428 §3): (<d><d><d><port><d>)
	KindAUTH      // client: AUTH <mechanism> (RFC 4217/2228); Start/End hold the mechanism
	KindCCC       // client: CCC (RFC 4217 §6)
	KindLPRT      // client: LPRT <long-host-port> (RFC 1639 §2), address family 4 or 6
	KindLPSV      // client: LPSV (RFC 1639 §3)
	Kind228       // server: 228 reply to LPSV (RFC 1639 §3): "(<long-host-port>)", address family 4 or 6
	KindEPSV      // client: EPSV [1|2|ALL] (RFC 2428 §3); Start/End hold the argument
	KindPASV      // client: PASV (RFC 959 §4.1.2)
)

var kindNames = [...]string{
	KindNone: "None",
	KindPORT: "PORT",
	KindEPRT: "EPRT",
	Kind227:  "227",
	Kind229:  "229",
	KindAUTH: "AUTH",
	KindCCC:  "CCC",
	KindLPRT: "LPRT",
	KindLPSV: "LPSV",
	Kind228:  "228",
	KindEPSV: "EPSV",
	KindPASV: "PASV",
}

// String returns the verb or reply code the kind stands for ("PORT", "227",
// ...), "None" for KindNone and "Kind(?)" for unknown values.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(?)"
}

// Announcement is the result of ParseClientLine and ParseServerLine.
//
// Start and End are byte offsets into the parsed line (0 <= Start <= End <=
// len(line)) delimiting the text a NAT must replace:
//
//	PORT:  the six numbers "h1,h2,h3,h4,p1,p2" (exclusive of trailing spaces and CR LF)
//	EPRT:  from the first delimiter to the last, inclusive: "|1|198.18.0.2|50000|"
//	227:   the six numbers only (parentheses, if any, and the surrounding free text are kept)
//	229:   from the first delimiter to the last, inclusive: "|||50000|"
//	AUTH:  the mechanism name ("TLS")
//	EPSV:  the argument ("1", "2", "ALL"), empty (Start == End) if there is none
//	LPRT:  the long-host-port "af,hal,h1,...,pal,p1,p2" (exclusive of trailing spaces and CR LF)
//	228:   the long-host-port only, as for 227
//	LPSV:  the argument, possibly empty
//
// For all other kinds Start and End are 0.
type Announcement struct {
	Kind       Kind
	Addr       netip.Addr // announced address (invalid for 229 and non-address kinds)
	Port       uint16     // announced port; may be 0 for PORT and 227 (the caller decides)
	Start, End int
	Delim      byte // EPRT/229 delimiter character
	Reply      int  // reply code for server lines (227, 229, 234, ...), 0 for commands
	Multiline  bool // server line "ddd-..." (first line of a multi-line reply, RFC 959 §4.2)
}

// ParseClientLine parses one line sent by an FTP client (RFC 959 §5.3).
//
// line must hold exactly one line: the bytes up to and including the LF, or
// the same bytes without the LF. A CR immediately before the LF (or at the
// very end if there is no LF) is not part of the argument. A line that
// contains an LF anywhere but at its end, or that is longer than MaxLine, is
// rejected (zero Announcement, false).
//
// The command verb must start the line (no leading white space) and is
// matched case-insensitively (RFC 959 §5.3: "PoRt" is PORT). One or more
// spaces or tabs separate it from the argument; trailing spaces and tabs
// before the CR LF are ignored.
//
// ok is true when the line is a well-formed instance of one of the kinds
// PORT, EPRT, AUTH, CCC, LPRT, LPSV, EPSV, PASV:
//
//   - PORT (RFC 959 §4.1.2): exactly six decimal fields "h1,h2,h3,h4,p1,p2",
//     each 1-3 digits (leading zeros allowed) with value 0..255, nothing but
//     white space after them. Port = p1*256+p2. A port of 0 or an
//     unspecified address is reported with ok == true: the caller decides.
//   - EPRT (RFC 2428 §2): "<d><af><d><addr><d><port><d>" where d is one
//     character in ASCII 33..126 other than a digit and occurs exactly four
//     times; af is "1" (addr is a dotted quad, leading zeros rejected as by
//     netip.ParseAddr) or "2" (addr is IPv6 text per RFC 4291 §2.2, as
//     accepted by netip.ParseAddr but without a zone; IPv4-mapped addresses
//     are reported as parsed); port is 1-5 digits with value 1..65535.
//   - AUTH (RFC 2228 §3, RFC 4217 §4): one argument token (ASCII 33..126).
//   - EPSV (RFC 2428 §3): no argument, or "1", "2" or "ALL" (any case).
//   - CCC (RFC 4217 §6) and PASV (RFC 959 §4.1.2): no argument.
//   - LPRT (RFC 1639 §2): a long-host-port "af,hal,h1,...,pal,p1,p2":
//     decimal fields of 1-3 digits (leading zeros allowed) with value
//     0..255, separated by commas, nothing but white space after them; af 4
//     with hal 4 (an IPv4 address) or af 6 with hal 16 (an IPv6 address,
//     IPv4-mapped ones reported as parsed), and pal 2 (a TCP port, p1 the
//     high byte). Other address families cannot be translated: ok is false.
//     A port of 0 is reported with ok == true: the caller decides.
//   - LPSV (RFC 1639 §3): any argument; it is only recognised.
//
// When the verb is one of these but the rest of the line is malformed, ok is
// false and the returned Announcement has only Kind set, so that a caller
// can refuse, say, a PORT command it could not rewrite. For any other line
// the zero Announcement and false are returned. Reply is always 0.
func ParseClientLine(line []byte) (Announcement, bool) {
	s, ok := lineContent(line)
	if !ok {
		return Announcement{}, false
	}
	n := 0
	for n < len(s) && !isWS(s[n]) {
		n++
	}
	pat := lookupVerb(s[:n])
	if pat == nil {
		return Announcement{}, false
	}
	kind := pat.kind
	i := n
	for i < len(s) && isWS(s[i]) {
		i++
	}
	e := len(s)
	for e > i && isWS(s[e-1]) {
		e--
	}
	arg := s[i:e]
	bad := Announcement{Kind: kind}
	a := Announcement{Kind: kind}
	switch kind {
	case KindPORT:
		addr, port, end, v := scanFields(s, i, false, true)
		if v != Match || end != e {
			return bad, false
		}
		a.Addr, a.Port, a.Start, a.End = addr, port, i, end
	case KindEPRT:
		d, addr, port, end, v := scanEPRT(arg, true)
		if v != Match || end != len(arg) {
			return bad, false
		}
		a.Addr, a.Port, a.Delim, a.Start, a.End = addr, port, d, i, e
	case KindAUTH:
		if len(arg) == 0 {
			return bad, false
		}
		for _, c := range arg {
			if c < 33 || c > 126 {
				return bad, false
			}
		}
		a.Start, a.End = i, e
	case KindEPSV:
		if len(arg) != 0 && !(len(arg) == 1 && (arg[0] == '1' || arg[0] == '2')) && !eqFold(arg, "ALL") {
			return bad, false
		}
		a.Start, a.End = i, e
	case KindCCC, KindPASV:
		if len(arg) != 0 {
			return bad, false
		}
	case KindLPRT:
		addr, port, end, v := scanFields(s, i, true, true)
		if v != Match || end != e {
			return bad, false
		}
		a.Addr, a.Port, a.Start, a.End = addr, port, i, end
	case KindLPSV:
		a.Start, a.End = i, e
	}
	return a, true
}

// ParseServerLine parses one line sent by an FTP server (RFC 959 §4.2).
//
// line must hold exactly one line, as for ParseClientLine; a line with an LF
// other than at its end, or longer than MaxLine, is rejected.
//
// A line that begins with three ASCII digits followed by ' ' (the last line
// of a reply) or '-' (the first line of a multi-line reply, Multiline set)
// yields ok == true and Reply set to the code, whatever the code. Any other
// line (for example the text lines inside a multi-line reply) yields the
// zero Announcement and false.
//
// In addition, Kind, Addr, Port, Start and End are filled in for:
//
//   - 227 (RFC 959 §4.1.2, §4.2): the first run of six comma-separated
//     decimal fields (each 1-3 digits, 0..255, as for PORT) anywhere after
//     the code, that is neither preceded nor followed by a digit or comma.
//     Parentheses are optional and the surrounding text is free, as RFC 1123
//     §4.1.2.6 requires clients to accept. Port 0 is reported; the caller
//     decides.
//   - 229 (RFC 2428 §3): the first "(" followed by "<d><d><d><port><d>)",
//     where d is a character in ASCII 33..126 other than a digit and port is
//     1-5 digits with value 1..65535. Addr is invalid (the reply carries no
//     address).
//   - 228 (RFC 1639 §3): the first run of comma-separated decimal fields
//     after the code, neither preceded nor followed by a digit or comma,
//     that is a long-host-port as LPRT takes it (af 4/hal 4 or af
//     6/hal 16, pal 2). The suggested text is "228 Entering Long Passive
//     Mode (af, hal, h1, ...)"; spaces after the commas are not accepted
//     (servers write none; a run with them is not rewritten).
//
// A 227, 228 or 229 reply in which no announcement is found is reported
// with ok == true, the Reply code and Kind == KindNone.
func ParseServerLine(line []byte) (Announcement, bool) {
	s, ok := lineContent(line)
	if !ok || len(s) < 4 || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[2]) || (s[3] != ' ' && s[3] != '-') {
		return Announcement{}, false
	}
	a := Announcement{
		Reply:     int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0'),
		Multiline: s[3] == '-',
	}
	switch a.Reply {
	case 227:
		for i := 4; i < len(s); i++ {
			if !isDigit(s[i]) || isDigit(s[i-1]) || s[i-1] == ',' {
				continue
			}
			addr, port, end, v := scanFields(s, i, false, true)
			if v == Match && (end == len(s) || s[end] != ',') {
				a.Kind, a.Addr, a.Port, a.Start, a.End = Kind227, addr, port, i, end
				break
			}
		}
	case 229:
		for i := 4; i+6 < len(s); i++ {
			if s[i] != '(' {
				continue
			}
			d := s[i+1]
			if !isDelim(d) || s[i+2] != d || s[i+3] != d {
				continue
			}
			k := bytes.IndexByte(s[i+4:], d)
			if k < 0 {
				continue
			}
			k += i + 4
			port, ok := parsePort(s[i+4 : k])
			if !ok || k+1 >= len(s) || s[k+1] != ')' {
				continue
			}
			a.Kind, a.Port, a.Delim, a.Start, a.End = Kind229, port, d, i+1, k+1
			break
		}
	case 228:
		for i := 4; i < len(s); i++ {
			if !isDigit(s[i]) || isDigit(s[i-1]) || s[i-1] == ',' {
				continue
			}
			addr, port, end, v := scanFields(s, i, true, true)
			if v == Match && (end == len(s) || s[end] != ',') {
				a.Kind, a.Addr, a.Port, a.Start, a.End = Kind228, addr, port, i, end
				break
			}
		}
	}
	return a, true
}

// PrefixCouldBe reports whether prefix, the beginning of a line whose LF has
// not arrived yet, could still become a line for which ParseClientLine
// (client == true: a well-formed PORT, EPRT or LPRT) or ParseServerLine
// (client == false: a 227, 228 or 229 announcement) returns an address
// announcement. It is
// used to decide whether a partial line must be held back until it is
// complete. Verbs are matched case-insensitively (RFC 959 §5.3).
//
// Preconditions: prefix contains no LF (if it does, the result is false).
// maxLine is the longest line the caller is willing to buffer; values <= 0
// or > MaxLine mean MaxLine. A prefix longer than that is never held: the
// result is false.
//
// Client prefixes are checked against the PORT and EPRT grammars of
// ParseClientLine exactly ("PORT 1,2,3" is true, "PORT 1,2,x" and "PASV"
// are false), and against LPRT's with each completed field checked
// (address family, lengths, values). For server lines, once "227 ", "228 ",
// "229 " (or with '-') has been seen the free text may still carry the
// announcement later on, so the result is true until the length limit is
// exceeded.
func PrefixCouldBe(prefix []byte, client bool, maxLine int) bool {
	limit := MaxLine
	if maxLine > 0 && maxLine < limit {
		limit = maxLine
	}
	if len(prefix) > limit || bytes.IndexByte(prefix, '\n') >= 0 {
		return false
	}
	return scanStart(prefix, client) != NoMatch
}

// scanStart answers for p, the start of a line whose LF has not come yet:
// NeedMore (or Match, for a client argument already whole) when it may
// still become an address announcement, NoMatch when it cannot. A server
// line that starts "227 ", "228 " or "229 " (or with '-') may carry the
// announcement anywhere in its free text: NeedMore.
func scanStart(p []byte, client bool) Verdict {
	pat, argAt, v := startsAnnouncement(p, client)
	if v == NoMatch || argAt < 0 || !client {
		return v
	}
	i := argAt
	for i < len(p) && isWS(p[i]) {
		i++
	}
	rest := p[i:]
	final := false
	if len(rest) > 0 && rest[len(rest)-1] == '\r' {
		// Only the CR of the final CR LF may appear: everything before it
		// must already be a complete argument.
		rest, final = rest[:len(rest)-1], true
	}
	var end int
	switch pat.arg {
	case argHostPort, argLongPort:
		_, _, end, v = scanFields(rest, 0, pat.arg == argLongPort, final)
	default:
		_, _, _, end, v = scanEPRT(rest, final)
	}
	if v != Match {
		return v
	}
	for _, c := range rest[end:] {
		if !isWS(c) {
			return NoMatch
		}
	}
	return Match
}

// portPrefix reports whether b is a prefix of a port accepted by parsePort.
func portPrefix(b []byte) bool {
	if len(b) > 5 {
		return false
	}
	v := 0
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
		v = v*10 + int(c-'0')
	}
	return v <= 65535 && (len(b) < 5 || v > 0)
}

// ipv6Prefix reports whether b is a prefix of an address accepted by
// parseIPv6 (RFC 4291 §2.2 text without a zone).
func ipv6Prefix(b []byte) bool {
	groups := 0         // complete 16-bit groups, each followed by ':'
	ellipsis := false   // "::" seen
	afterColon := false // b ends with ':' (afterEll: with "::")
	afterEll := false
	i := 0
	if len(b) >= 1 && b[0] == ':' {
		if len(b) == 1 {
			return true
		}
		if b[1] != ':' {
			return false
		}
		ellipsis, afterEll, i = true, true, 2
	}
	for i < len(b) {
		start, dot := i, false
		for i < len(b) && (isHex(b[i]) || b[i] == '.') {
			dot = dot || b[i] == '.'
			i++
		}
		tok := b[start:i]
		if i == len(b) {
			// Partial last token.
			max := 8
			if ellipsis {
				max = 7
			}
			if dot {
				// Embedded IPv4 must be last (RFC 4291 §2.2 form 3).
				if ellipsis {
					return groups <= 5 && scanIPv4(tok, nil) != NoMatch
				}
				return groups == 6 && scanIPv4(tok, nil) != NoMatch
			}
			return len(tok) <= 4 && groups+1 <= max
		}
		if b[i] != ':' || len(tok) == 0 || len(tok) > 4 || dot {
			return false
		}
		groups++
		i++
		afterColon, afterEll = true, false
		if i < len(b) && b[i] == ':' {
			if ellipsis {
				return false
			}
			ellipsis, afterEll = true, true
			i++
		}
		if groups > 8 {
			return false
		}
	}
	switch {
	case afterEll:
		return groups <= 7
	case afterColon:
		max := 8
		if ellipsis {
			max = 7
		}
		return groups+1 <= max
	}
	return true // empty
}

// lineContent strips the final LF and a CR before it. ok is false if line is
// longer than MaxLine or holds an LF before its last byte.
func lineContent(line []byte) (s []byte, ok bool) {
	if len(line) > MaxLine {
		return nil, false
	}
	s = line
	if i := bytes.IndexByte(s, '\n'); i >= 0 {
		if i != len(s)-1 {
			return nil, false
		}
		s = s[:i]
	}
	if len(s) > 0 && s[len(s)-1] == '\r' {
		s = s[:len(s)-1]
	}
	return s, true
}

// eqFold reports whether b equals the upper-case ASCII string s, ignoring
// ASCII case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseAF parses an EPRT address of address family af (RFC 2428 §2: "1" is
// IPv4, "2" is IPv6).
func parseAF(af byte, b []byte) (netip.Addr, bool) {
	switch af {
	case '1':
		return parseIPv4(b)
	case '2':
		return parseIPv6(b)
	}
	return netip.Addr{}, false
}

// parsePort parses 1-5 decimal digits with value 1..65535.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v == 0 || v > 65535 {
		return 0, false
	}
	return uint16(v), true
}

// parseIPv4 parses a dotted-quad IPv4 address exactly as netip.ParseAddr
// does: four decimal fields 0..255 without leading zeros.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var f [4]byte
	if scanIPv4(b, f[:]) != Match {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(f), true
}

// parseIPv6 parses IPv6 address text (RFC 4291 §2.2) exactly as
// netip.ParseAddr does for input containing ':' before any '.', except
// that zones ("%eth0") are rejected.
func parseIPv6(s []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // position of "::" in ip
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, uint32(0)
	hex:
		for ; off < len(s); off++ {
			c := s[off]
			switch {
			case '0' <= c && c <= '9':
				acc = acc<<4 + uint32(c-'0')
			case 'a' <= c && c <= 'f':
				acc = acc<<4 + uint32(c-'a'+10)
			case 'A' <= c && c <= 'F':
				acc = acc<<4 + uint32(c-'A'+10)
			default:
				break hex
			}
			if off > 3 {
				return netip.Addr{}, false // more than 4 digits
			}
		}
		if off == 0 {
			return netip.Addr{}, false
		}
		if off < len(s) && s[off] == '.' {
			// Trailing embedded IPv4 (RFC 4291 §2.2 form 3).
			if (ellipsis < 0 && i != 12) || i+4 > 16 {
				return netip.Addr{}, false
			}
			if scanIPv4(s, ip[i:i+4]) != Match {
				return netip.Addr{}, false
			}
			s = nil
			i += 4
			break
		}
		ip[i] = byte(acc >> 8)
		ip[i+1] = byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false // multiple "::"
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false // "::" must stand for at least one group
	}
	return netip.AddrFrom16(ip), true
}

// isDelim reports whether c may delimit EPRT and 229 fields: RFC 2428 §2
// allows ASCII 33..126; digits are excluded because they would be ambiguous.
func isDelim(c byte) bool { return c >= 33 && c <= 126 && !isDigit(c) }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func isWS(c byte) bool { return c == ' ' || c == '\t' }
