package alg

import (
	"bytes"
	"net/netip"
)

// The scanner: one grammar for whole lines and for line starts whose LF has
// not come yet. Like the search table of the Linux kernel's FTP helper
// (nf_conntrack_ftp.c, find_pattern: 1 match, 0 no match, -1 need more
// data), it answers for the text it has: Match, NoMatch, or NeedMore when
// the text is the start of a line that may still become an announcement.
// ParseClientLine, ParseServerLine and PrefixCouldBe are its three uses.

// Verdict is the scanner's answer on a text.
type Verdict uint8

// Verdicts.
const (
	NoMatch  Verdict = iota // the text is not, and cannot become, what is sought
	NeedMore                // the text ended early: more bytes may make it a match
	Match                   // the text is what is sought
)

var verdictNames = [...]string{NoMatch: "NoMatch", NeedMore: "NeedMore", Match: "Match"}

// String returns the verdict's name.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "Verdict(?)"
}

// pattern is one entry of the scanner's table: a command verb (matched
// without regard to ASCII case, RFC 959 §5.3) or a reply code, the kind of
// line it starts, and for an address announcement the grammar of its
// argument.
type pattern struct {
	text   string
	client bool
	kind   Kind
	// arg is the argument grammar of an announcement (nil: the line is
	// only recognised; a partial one is never held).
	arg argGrammar
}

// argGrammar names the grammar of an announcement's argument.
type argGrammar uint8

const (
	argNone       argGrammar = iota
	argHostPort              // RFC 959 §4.1.2 h1,h2,h3,h4,p1,p2
	argLongPort              // RFC 1639 §2 af,hal,h1,...,pal,p1,p2
	argExtended              // RFC 2428 §2 <d><af><d><addr><d><port><d>
	argExtPassive            // RFC 2428 §3 (<d><d><d><port><d>)
)

// patterns is the scanner's table: every command and reply the gateway
// reads. Commands first (client), then replies (server).
var patterns = [...]pattern{
	{"PORT", true, KindPORT, argHostPort},
	{"EPRT", true, KindEPRT, argExtended},
	{"LPRT", true, KindLPRT, argLongPort},
	{"AUTH", true, KindAUTH, argNone},
	{"CCC", true, KindCCC, argNone},
	{"PASV", true, KindPASV, argNone},
	{"EPSV", true, KindEPSV, argNone},
	{"LPSV", true, KindLPSV, argNone},
	{"227", false, Kind227, argHostPort},
	{"228", false, Kind228, argLongPort},
	{"229", false, Kind229, argExtPassive},
}

// lookupVerb returns the table's entry for the client verb v.
func lookupVerb(v []byte) *pattern {
	if len(v) == 0 {
		return nil
	}
	first := v[0] &^ 0x20 // upper case of an ASCII letter
	for i := range patterns {
		if p := &patterns[i]; p.client && p.text[0] == first && eqFold(v, p.text) {
			return p
		}
	}
	return nil
}

// startsAnnouncement answers for a line start p (no LF) of the given side
// whose verb or code is not complete yet, or just complete: NeedMore when
// an announcing pattern's text begins with it (and, once the text is
// whole, a separator follows: white space for a verb, ' ' or '-' for a
// code), else NoMatch. rest is where the argument begins (-1 if unknown).
func startsAnnouncement(p []byte, client bool) (found *pattern, rest int, v Verdict) {
	for i := range patterns {
		pat := &patterns[i]
		if pat.client != client || pat.arg == argNone || len(p) > 0 && p[0]&^0x20 != pat.text[0]&^0x20 {
			continue
		}
		n := min(len(p), len(pat.text))
		if client && !eqFold(p[:n], pat.text[:n]) || !client && string(p[:n]) != pat.text[:n] {
			continue
		}
		if len(p) <= len(pat.text) {
			return pat, -1, NeedMore
		}
		sep := p[len(pat.text)]
		if client && isWS(sep) || !client && (sep == ' ' || sep == '-') {
			return pat, len(pat.text) + 1, NeedMore
		}
	}
	return nil, -1, NoMatch
}

// scanFields scans comma-separated decimal fields at s[i:], each 1-3
// digits with value 0..255: six of them (a host-port, RFC 959 §4.1.2), or
// when long a long-host-port (RFC 1639 §2: af 4 with hal 4 or af 6 with
// hal 16 address fields, then pal 2 port fields). On Match, end is the
// index after the last field's digits (the caller checks what follows);
// when s ends before that, the answer is NeedMore unless final, NoMatch
// for anything else. A field is checked (af, hal, pal) once a comma or the
// end of the fields follows it.
func scanFields(s []byte, i int, long, final bool) (addr netip.Addr, port uint16, end int, v Verdict) {
	var f [3 + 16 + 2]byte
	n, want := 0, 6
	if long {
		want = 3
	}
	for {
		digits, val := 0, 0
		for i < len(s) && isDigit(s[i]) {
			digits++
			val = val*10 + int(s[i]-'0')
			if digits > 3 || val > 255 {
				return netip.Addr{}, 0, 0, NoMatch
			}
			i++
		}
		if i == len(s) && !final {
			return netip.Addr{}, 0, 0, NeedMore
		}
		if digits == 0 {
			return netip.Addr{}, 0, 0, NoMatch
		}
		f[n] = byte(val)
		if long {
			switch {
			case n == 0 && val != 4 && val != 6:
				return netip.Addr{}, 0, 0, NoMatch // address family (RFC 1639 §2)
			case n == 1:
				if f[0] == 4 && val != 4 || f[0] == 6 && val != 16 {
					return netip.Addr{}, 0, 0, NoMatch // host-address-length
				}
				want = 2 + val + 1
			case n == want-1 && want == 2+int(f[1])+1:
				if val != 2 {
					return netip.Addr{}, 0, 0, NoMatch // port-address-length
				}
				want += 2
			}
		}
		n++
		if n == want {
			break
		}
		if i == len(s) || s[i] != ',' {
			return netip.Addr{}, 0, 0, NoMatch
		}
		i++
	}
	if !long {
		return netip.AddrFrom4([4]byte(f[:4])), uint16(f[4])<<8 | uint16(f[5]), i, Match
	}
	hal := int(f[1])
	if hal == 4 {
		addr = netip.AddrFrom4([4]byte(f[2:6]))
	} else {
		addr = netip.AddrFrom16([16]byte(f[2:18]))
	}
	return addr, uint16(f[3+hal])<<8 | uint16(f[4+hal]), i, Match
}

// scanEPRT scans an EPRT argument "<d><af><d><addr><d><port><d>" (RFC
// 2428 §2) at the start of b: d is one character in ASCII 33..126 other
// than a digit, af "1" (a dotted quad) or "2" (IPv6 text), port 1..65535.
// On Match, end is the index after the fourth delimiter. When b ends
// before that, the answer is NeedMore unless final.
func scanEPRT(b []byte, final bool) (d byte, addr netip.Addr, port uint16, end int, v Verdict) {
	more := NeedMore
	if final {
		more = NoMatch
	}
	if len(b) == 0 {
		return 0, netip.Addr{}, 0, 0, more
	}
	d = b[0]
	if !isDelim(d) {
		return 0, netip.Addr{}, 0, 0, NoMatch
	}
	rest := b[1:]
	k := bytes.IndexByte(rest, d)
	if k < 0 {
		if len(rest) == 0 || len(rest) == 1 && (rest[0] == '1' || rest[0] == '2') {
			return 0, netip.Addr{}, 0, 0, more
		}
		return 0, netip.Addr{}, 0, 0, NoMatch
	}
	if k != 1 || (rest[0] != '1' && rest[0] != '2') {
		return 0, netip.Addr{}, 0, 0, NoMatch
	}
	af := rest[0]
	if af == '1' && d == '.' || af == '2' && d == ':' {
		return 0, netip.Addr{}, 0, 0, NoMatch // the address could never be written
	}
	rest = rest[2:]
	k = bytes.IndexByte(rest, d)
	if k < 0 {
		if af == '1' && scanIPv4(rest, nil) != NoMatch || af == '2' && ipv6Prefix(rest) {
			return 0, netip.Addr{}, 0, 0, more
		}
		return 0, netip.Addr{}, 0, 0, NoMatch
	}
	addr, ok := parseAF(af, rest[:k])
	if !ok {
		return 0, netip.Addr{}, 0, 0, NoMatch
	}
	rest = rest[k+1:]
	k = bytes.IndexByte(rest, d)
	if k < 0 {
		if portPrefix(rest) {
			return 0, netip.Addr{}, 0, 0, more
		}
		return 0, netip.Addr{}, 0, 0, NoMatch
	}
	port, ok = parsePort(rest[:k])
	if !ok {
		return 0, netip.Addr{}, 0, 0, NoMatch
	}
	return d, addr, port, len(b) - len(rest) + k + 1, Match
}

// scanIPv4 scans a dotted-quad IPv4 address as netip.ParseAddr takes it:
// four decimal fields 0..255 without leading zeros. It answers Match when
// b is one whole (and stores its fields in f, when f is not nil), NeedMore
// when b is the start of one, else NoMatch.
func scanIPv4(b []byte, f []byte) Verdict {
	dots, digits, val := 0, 0, 0
	for _, c := range b {
		switch {
		case isDigit(c):
			if digits == 1 && val == 0 {
				return NoMatch // leading zero
			}
			digits++
			val = val*10 + int(c-'0')
			if val > 255 {
				return NoMatch
			}
		case c == '.':
			if digits == 0 || dots == 3 {
				return NoMatch
			}
			if f != nil {
				f[dots] = byte(val)
			}
			dots, digits, val = dots+1, 0, 0
		default:
			return NoMatch
		}
	}
	if dots != 3 || digits == 0 {
		return NeedMore
	}
	if f != nil {
		f[3] = byte(val)
	}
	return Match
}
