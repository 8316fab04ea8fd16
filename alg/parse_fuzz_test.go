package alg

import (
	"bytes"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// This file holds a deliberately naive reference implementation of the
// grammar (regular expressions, strings.Split, netip.ParseAddr, strconv),
// written independently of parse.go, and a fuzz target comparing the two.

// ciPattern turns "PORT" into "[Pp][Oo][Rr][Tt]": regexp's (?i) folds
// Unicode (e.g. U+017F matches 's'), but FTP verbs are ASCII only.
func ciPattern(verb string) string {
	var b strings.Builder
	for _, c := range verb {
		b.WriteString("[" + string(c) + strings.ToLower(string(c)) + "]")
	}
	return b.String()
}

var (
	refVerbRe = func() *regexp.Regexp {
		var alts []string
		for _, v := range []string{"PORT", "EPRT", "AUTH", "CCC", "PASV", "EPSV", "LPRT", "LPSV"} {
			alts = append(alts, ciPattern(v))
		}
		return regexp.MustCompile(`^(` + strings.Join(alts, "|") + `)(?:[ \t]|$)`)
	}()
	refPortRe  = regexp.MustCompile(`^(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})$`)
	refNumRe   = regexp.MustCompile(`^\d{1,5}$`)
	refAuthRe  = regexp.MustCompile(`^[!-~]+$`)
	refReplyRe = regexp.MustCompile(`^(\d{3})([ -])`)
	refOctet   = `(25[0-5]|2[0-4]\d|[01]?\d?\d)`
	ref227Re   = regexp.MustCompile(`(?:^|[^\d,])(` + strings.Repeat(refOctet+",", 5) + refOctet + `)(?:[^\d,]|$)`)
	ref229Re   = regexp.MustCompile(`^\(([!-/:-~])([!-/:-~])([!-/:-~])(\d{1,5})([!-/:-~])\)`)
	refRunRe   = regexp.MustCompile(`^\d+(?:,\d+)*`)
)

// refLong checks an RFC 1639 §2 long-host-port "af,hal,h1,...,pal,p1,p2"
// split at its commas: every field 1-3 digits with value 0..255, af 4 with
// hal 4 or af 6 with hal 16, pal 2, and exactly that many fields.
func refLong(run string) (netip.Addr, uint16, bool) {
	f := strings.Split(run, ",")
	var v []int
	for _, x := range f {
		n, err := strconv.Atoi(x)
		if err != nil || len(x) < 1 || len(x) > 3 || n > 255 {
			return netip.Addr{}, 0, false
		}
		v = append(v, n)
	}
	if len(v) < 2 || !(v[0] == 4 && v[1] == 4 || v[0] == 6 && v[1] == 16) || len(v) != 2+v[1]+3 || v[2+v[1]] != 2 {
		return netip.Addr{}, 0, false
	}
	var b []byte
	for _, n := range v[2 : 2+v[1]] {
		b = append(b, byte(n))
	}
	addr, _ := netip.AddrFromSlice(b)
	return addr, uint16(v[3+v[1]]*256 + v[4+v[1]]), true
}

var refKinds = map[string]Kind{
	"PORT": KindPORT, "EPRT": KindEPRT, "AUTH": KindAUTH, "CCC": KindCCC,
	"PASV": KindPASV, "EPSV": KindEPSV, "LPRT": KindLPRT, "LPSV": KindLPSV,
}

// refContent returns the line without its LF and the CR before it.
func refContent(line string) (string, bool) {
	if len(line) > MaxLine {
		return "", false
	}
	if i := strings.IndexByte(line, '\n'); i >= 0 && i != len(line)-1 {
		return "", false
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), true
}

func refPort(s string) (uint16, bool) {
	if !refNumRe.MatchString(s) {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return uint16(n), n >= 1 && n <= 65535
}

func refClient(line string) (Announcement, bool) {
	s, ok := refContent(line)
	if !ok {
		return Announcement{}, false
	}
	m := refVerbRe.FindStringSubmatch(s)
	if m == nil {
		return Announcement{}, false
	}
	verb := m[1]
	kind := refKinds[strings.ToUpper(verb)]
	rest := s[len(verb):]
	start := len(verb) + len(rest) - len(strings.TrimLeft(rest, " \t"))
	arg := strings.TrimRight(s[start:], " \t")
	end := start + len(arg)
	bad := Announcement{Kind: kind}
	switch kind {
	case KindPORT:
		m := refPortRe.FindStringSubmatch(arg)
		if m == nil {
			return bad, false
		}
		var v [6]int
		for i := range v {
			v[i], _ = strconv.Atoi(m[i+1])
			if v[i] > 255 {
				return bad, false
			}
		}
		addr := netip.AddrFrom4([4]byte{byte(v[0]), byte(v[1]), byte(v[2]), byte(v[3])})
		return Announcement{Kind: kind, Addr: addr, Port: uint16(v[4]*256 + v[5]), Start: start, End: end}, true
	case KindEPRT:
		if arg == "" || arg[0] < 33 || arg[0] > 126 || (arg[0] >= '0' && arg[0] <= '9') {
			return bad, false
		}
		d := arg[0]
		f := strings.Split(arg, string(d))
		if len(f) != 5 || f[0] != "" || f[4] != "" {
			return bad, false
		}
		addr, err := netip.ParseAddr(f[2])
		if err != nil || addr.Zone() != "" || !(f[1] == "1" && addr.Is4() || f[1] == "2" && addr.Is6()) {
			return bad, false
		}
		port, ok := refPort(f[3])
		if !ok {
			return bad, false
		}
		return Announcement{Kind: kind, Addr: addr, Port: port, Delim: d, Start: start, End: end}, true
	case KindLPRT:
		if refRunRe.FindString(arg) != arg {
			return bad, false
		}
		addr, port, ok := refLong(arg)
		if !ok {
			return bad, false
		}
		return Announcement{Kind: kind, Addr: addr, Port: port, Start: start, End: end}, true
	case KindAUTH:
		if !refAuthRe.MatchString(arg) {
			return bad, false
		}
	case KindEPSV:
		if arg != "" && arg != "1" && arg != "2" && strings.ToUpper(arg) != "ALL" {
			return bad, false
		}
	case KindCCC, KindPASV:
		if arg != "" {
			return bad, false
		}
		return Announcement{Kind: kind}, true
	}
	return Announcement{Kind: kind, Start: start, End: end}, true
}

func refServer(line string) (Announcement, bool) {
	s, ok := refContent(line)
	if !ok {
		return Announcement{}, false
	}
	m := refReplyRe.FindStringSubmatch(s)
	if m == nil {
		return Announcement{}, false
	}
	code, _ := strconv.Atoi(m[1])
	a := Announcement{Reply: code, Multiline: m[2] == "-"}
	text := s[4:]
	switch code {
	case 227:
		if m := ref227Re.FindStringSubmatchIndex(text); m != nil {
			var v [6]int
			for i := range v {
				v[i], _ = strconv.Atoi(text[m[2*i+4]:m[2*i+5]])
			}
			a.Kind = Kind227
			a.Addr = netip.AddrFrom4([4]byte{byte(v[0]), byte(v[1]), byte(v[2]), byte(v[3])})
			a.Port = uint16(v[4]*256 + v[5])
			a.Start, a.End = 4+m[2], 4+m[3]
		}
	case 229:
		for i := 0; i < len(text); i++ {
			if text[i] != '(' {
				continue
			}
			m := ref229Re.FindStringSubmatch(text[i:])
			if m == nil || m[1] != m[2] || m[1] != m[3] || m[1] != m[5] {
				continue
			}
			port, ok := refPort(m[4])
			if !ok {
				continue
			}
			a.Kind, a.Port, a.Delim = Kind229, port, m[1][0]
			a.Start, a.End = 4+i+1, 4+i+len(m[0])-1
			break
		}
	case 228:
		// the first run of digits and commas, neither preceded nor followed
		// by a digit or comma, that is a long-host-port
		for i := 0; i < len(text); i++ {
			if text[i] < '0' || text[i] > '9' || i > 0 && (text[i-1] >= '0' && text[i-1] <= '9' || text[i-1] == ',') {
				continue
			}
			run := refRunRe.FindString(text[i:])
			if i+len(run) < len(text) && text[i+len(run)] == ',' {
				continue
			}
			addr, port, ok := refLong(run)
			if !ok {
				continue
			}
			a.Kind, a.Addr, a.Port = Kind228, addr, port
			a.Start, a.End = 4+i, 4+i+len(run)
			break
		}
	}
	return a, true
}

func TestReferenceAgreesOnTable(t *testing.T) {
	for _, c := range clientCases {
		a, ok := ParseClientLine([]byte(c.line))
		r, rok := refClient(c.line)
		if a != r || ok != rok {
			t.Errorf("client %q: got %+v %v, reference %+v %v", c.line, a, ok, r, rok)
		}
	}
	for _, c := range serverCases {
		a, ok := ParseServerLine([]byte(c.line))
		r, rok := refServer(c.line)
		if a != r || ok != rok {
			t.Errorf("server %q: got %+v %v, reference %+v %v", c.line, a, ok, r, rok)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, c := range clientCases {
		f.Add([]byte(c.line))
	}
	for _, c := range serverCases {
		f.Add([]byte(c.line))
	}
	for _, s := range ipv6Texts()[:20] {
		f.Add([]byte("EPRT |2|" + s + "|21|\r\n"))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		for _, client := range []bool{true, false} {
			parse, ref := ParseServerLine, refServer
			if client {
				parse, ref = ParseClientLine, refClient
			}
			a, ok := parse(line)
			if !bytes.Equal(line, orig) {
				t.Fatalf("input modified")
			}
			if a.Start < 0 || a.Start > a.End || a.End > len(line) {
				t.Fatalf("client=%v %q: bad span [%d:%d]", client, line, a.Start, a.End)
			}
			r, rok := ref(string(line))
			if a != r || ok != rok {
				t.Fatalf("client=%v %q: got %+v %v, reference %+v %v", client, line, a, ok, r, rok)
			}
			if !ok {
				continue
			}
			// Rewriting the span with the formatted announcement must parse back.
			var repl []byte
			switch a.Kind {
			case KindPORT, Kind227:
				repl = AppendPORT(nil, a.Addr, a.Port)
			case KindEPRT:
				repl = AppendEPRT(nil, a.Delim, a.Addr, a.Port)
			case Kind229:
				repl = AppendEPSV(nil, a.Delim, a.Port)
			case KindLPRT, Kind228:
				repl = AppendLPRT(nil, a.Addr, a.Port)
			default:
				continue
			}
			out := append(append(append([]byte{}, line[:a.Start]...), repl...), line[a.End:]...)
			b, bok := parse(out)
			if len(out) <= MaxLine && (!bok || b.Kind != a.Kind || b.Addr != a.Addr || b.Port != a.Port || !bytes.Equal(out[b.Start:b.End], repl)) {
				t.Fatalf("client=%v %q rewritten to %q: %+v %v", client, line, out, b, bok)
			}
			// No prefix of an announcement may be reported as hopeless.
			content := bytes.TrimSuffix(line, []byte("\n"))
			for i := 0; i <= len(content); i++ {
				if !PrefixCouldBe(content[:i], client, 0) {
					t.Fatalf("PrefixCouldBe(%q, %v) = false, but %q is an announcement", content[:i], client, line)
				}
			}
			// The scanner: a whole announcement (its CR come, the
			// reference says it is one) is a Match before its LF; a
			// server's announcement is never complete before its LF (the
			// free text goes on).
			if v := scanStart(content, client); client && bytes.HasSuffix(content, []byte("\r")) && v != Match || !client && v != NeedMore {
				t.Fatalf("scanStart(%q, %v) = %v, but %q is an announcement", content, client, v, line)
			}
		}
		PrefixCouldBe(line, true, len(line)/2)
		PrefixCouldBe(line, false, -1)
	})
}
