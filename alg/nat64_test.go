package alg

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/natalg/natalg/conntrack"
)

// nat64Tuples: an IPv6-only client fd00:64::2 reaching the IPv4 server
// 198.18.0.2 at its RFC 6052 address 2001:db8:64::c612:2, translated to the pool
// address 198.19.64.1.
func nat64Tuples() [2]conntrack.Tuple {
	return [2]conntrack.Tuple{
		{Src: netip.MustParseAddr("fd00:64::2"), Dst: netip.MustParseAddr("2001:db8:64::c612:2"), SrcPort: 40000, DstPort: 21, Proto: 6},
		{Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.19.64.1"), SrcPort: 21, DstPort: 40000, Proto: 6},
	}
}

// session64 is a NAT64 control connection under test: client data from
// 1000, server data from 5000 (after the greeting "220 ready\r\n").
type session64 struct {
	*harness
	t    *testing.T
	cseq uint32 // next client byte
	sseq uint32 // next server byte
}

func newSession64(t *testing.T, cfg *Config) *session64 {
	t.Helper()
	h := &harness{c: NewControl(cfg, nat64Tuples()), nat: &fakeNAT{public: netip.MustParseAddr("198.19.64.1")}}
	if !h.c.n64.on {
		t.Fatal("NAT64 flow not detected")
	}
	h.seg(conntrack.Original, 999, "", true, false)
	h.c.Segment(&Segment{Dir: conntrack.Reply, Seq: 4999, SYN: true, MSS: 1460}, &h.led[1], h.nat)
	s := &session64{harness: h, t: t, cseq: 1000, sseq: 5000}
	s.server("220 ready\r\n").pass()
	return s
}

// sent is a segment given to the gateway and its result.
type sent struct {
	s   *session64
	d   conntrack.Dir
	seq uint32
	p   string
	r   Result
}

func (s *session64) send(d conntrack.Dir, p string) *sent {
	seq := &s.cseq
	if d == conntrack.Reply {
		seq = &s.sseq
	}
	x := &sent{s: s, d: d, seq: *seq, p: p}
	x.r = s.seg(d, *seq, p, false, false)
	*seq += uint32(len(p))
	return x
}

func (s *session64) client(p string) *sent { return s.send(conntrack.Original, p) }
func (s *session64) server(p string) *sent { return s.send(conntrack.Reply, p) }

func (x *sent) pass() *sent {
	x.s.t.Helper()
	if x.r.Action != Pass {
		x.s.t.Fatalf("%q: want Pass, got %+v %q", x.p, x.r, x.r.Payload)
	}
	return x
}

// replaced checks that the segment was replaced, from its first byte, by
// want.
func (x *sent) replaced(want string) *sent {
	x.s.t.Helper()
	if x.r.Action != Replace || x.r.Seq != x.seq || string(x.r.Payload) != want {
		x.s.t.Fatalf("%q: want Replace at %d by %q, got %+v %q", x.p, x.seq, want, x.r, x.r.Payload)
	}
	return x
}

func (x *sent) events(want Event) *sent {
	x.s.t.Helper()
	if x.r.Events&want != want {
		x.s.t.Fatalf("%q: events %#x lack %#x", x.p, x.r.Events, want)
	}
	return x
}

// again sends the segment again (a retransmission) and checks that it gets
// the very same output, without touching the ledger.
func (x *sent) again() *sent {
	x.s.t.Helper()
	first := append([]byte(nil), x.r.Payload...)
	led := x.s.led[x.d]
	r := x.s.seg(x.d, x.seq, x.p, false, false)
	if x.r.Action == Pass {
		if r.Action != Pass {
			x.s.t.Fatalf("retransmitted %q: %+v", x.p, r)
		}
	} else if r.Action != Replace || r.Seq != x.r.Seq || !bytes.Equal(r.Payload, first) {
		x.s.t.Fatalf("retransmitted %q: got %+v %q, want %q at %d", x.p, r, r.Payload, first, x.r.Seq)
	}
	if x.s.led[x.d] != led {
		x.s.t.Fatal("a retransmission changed the ledger")
	}
	return x
}

// offsets checks the ledgers' cumulative offsets.
func (s *session64) offsets(client, server int32) {
	s.t.Helper()
	if got := s.led[0].Offset(); got != client {
		s.t.Fatalf("client ledger offset %d, want %d", got, client)
	}
	if got := s.led[1].Offset(); got != server {
		s.t.Fatalf("server ledger offset %d, want %d", got, server)
	}
}

func TestNAT64EPRTToPORT(t *testing.T) {
	s := newSession64(t, &Config{})
	in := "EPRT |2|fd00:64::2|50000|\r\n"
	out := "PORT 198,19,64,1,195,80\r\n"
	s.client(in).replaced(out).events(EvRewrite).again()
	s.offsets(int32(len(out)-len(in)), 0)
	if len(s.nat.asked) != 1 || s.nat.asked[0] != netip.MustParseAddrPort("[fd00:64::2]:50000") {
		t.Fatalf("asked %v", s.nat.asked)
	}
	s.server("200 PORT command successful\r\n").pass()
	// the next byte of the client maps past the rewrite
	if got := s.led[0].Seq(s.cseq); got != s.cseq+uint32(len(out)-len(in)) {
		t.Fatalf("next client byte maps to %d", got)
	}
}

func TestNAT64EPRTKeepEPRT(t *testing.T) {
	s := newSession64(t, &Config{NAT64KeepEPRT: true})
	in := "eprt !2!fd00:64::2!50000!\r\n"
	out := "eprt !1!198.19.64.1!50000!\r\n"
	s.client(in).replaced(out).events(EvRewrite).again()
	s.offsets(int32(len(out)-len(in)), 0)
}

func TestNAT64EPRTBounce(t *testing.T) {
	s := newSession64(t, &Config{})
	s.client("EPRT |2|fd00:64::9|50000|\r\n").pass().events(EvBounce)
	s.client("EPRT |1|198.18.0.9|50000|\r\n").pass().events(EvBounce)
	s.client("EPRT |2|fd00:64::2|80|\r\n").pass().events(EvLowPort)
	if len(s.nat.asked) != 0 {
		t.Fatalf("asked %v", s.nat.asked)
	}
	s.offsets(0, 0)
}

// TestNAT64EPSVProbeSupported: with NAT64EPSVProbe, the first EPSV goes as
// PASV+EPSV; the 227 is removed, the 229 passes; later EPSVs pass
// unchanged.
func TestNAT64EPSVProbeSupported(t *testing.T) {
	s := newSession64(t, &Config{NAT64EPSVProbe: true})
	s.client("EPSV\r\n").replaced("PASV\r\nEPSV\r\n").events(EvEPSVToPASV).again()
	s.offsets(6, 0)
	r227 := "227 Entering Passive Mode (198,18,0,2,195,80).\r\n"
	s.server(r227).replaced("").events(EvReplySubstituted).again()
	s.offsets(6, -int32(len(r227)))
	x := s.server("229 Entering Extended Passive Mode (|||50001|)\r\n").pass()
	if got := s.led[1].Seq(x.seq); got != 5011 {
		t.Fatalf("229 maps to %d, want 5011", got)
	}
	s.client("EPSV\r\n").pass()
	s.server("229 Entering Extended Passive Mode (|||50002|)\r\n").pass()
	s.offsets(6, -int32(len(r227)))
	if len(s.nat.asked) != 0 {
		t.Fatalf("asked %v", s.nat.asked)
	}
}

// TestNAT64EPSVProbeRejected: with NAT64EPSVProbe, the server rejects
// EPSV: the 229 is made from the 227 answering the gateway's PASV, and
// later EPSVs go as PASV.
func TestNAT64EPSVProbeRejected(t *testing.T) {
	for _, rej := range []string{"500 'EPSV': command not understood.\r\n", "502 Not implemented\r\n", "501-What?\r\n501 Bad\r\n"} {
		s := newSession64(t, &Config{NAT64EPSVProbe: true})
		s.client("epsv\r\n").replaced("PASV\r\nepsv\r\n").again()
		r227 := "227 Entering Passive Mode (198,18,0,2,195,80)\r\n"
		// the 227 and the rejection in one segment
		w229 := "229 Entering Extended Passive Mode (|||50000|)\r\n"
		s.server(r227 + rej).replaced(w229).events(EvReplySubstituted | EvEPSVToPASV).again()
		s.offsets(6, int32(len(w229)-len(r227)-len(rej)))
		// the next EPSV goes as PASV, its 227 becomes a 229
		s.client("EPSV\r\n").replaced("PASV\r\n").events(EvEPSVToPASV).again()
		s.server("227 Entering Passive Mode (198,18,0,2,195,81)\r\n").replaced("229 Entering Extended Passive Mode (|||50001|)\r\n").again()
		s.offsets(6, int32(len(w229)-len(r227)-len(rej))+1)
	}
}

// TestNAT64EPSVProbeOther: a probe answered by something else than 229 or
// a rejection passes, and the next EPSV probes again.
func TestNAT64EPSVProbeOther(t *testing.T) {
	s := newSession64(t, &Config{NAT64EPSVProbe: true})
	s.client("EPSV\r\n").replaced("PASV\r\nEPSV\r\n")
	s.server("530 Please login\r\n").replaced("")
	s.server("530 Please login\r\n").pass()
	s.client("EPSV\r\n").replaced("PASV\r\nEPSV\r\n")
}

// TestNAT64EPSVToPASV: by default every EPSV (bare or "EPSV 2", any case)
// goes to the server as PASV and its 227 comes back as a 229 (RFC 6384
// §6), the 227's address ignored; the client's own PASV and a failed
// PASV's error pass.
func TestNAT64EPSVToPASV(t *testing.T) {
	s := newSession64(t, &Config{})
	s.client("EPSV 2\r\n").replaced("PASV\r\n").events(EvEPSVToPASV).again()
	r227, w229 := "227 Entering Passive Mode (10,0,0,7,195,80).\r\n", "229 Entering Extended Passive Mode (|||50000|)\r\n"
	s.server(r227).replaced(w229).again()
	s.offsets(-2, int32(len(w229)-len(r227)))
	// the client's own PASV: its 227 is the client's business
	s.client("PASV\r\n").pass()
	s.server("227 Entering Passive Mode (198,18,0,2,195,82).\r\n").pass()
	// a PASV that fails: the error passes
	s.client("epsv\r\n").replaced("PASV\r\n")
	s.server("425 Cannot open passive connection\r\n").pass()
	// EPSV still goes as PASV after any number of them
	s.client("EPSV\r\n").replaced("PASV\r\n")
	s.server("227 Entering Passive Mode (198,18,0,2,195,83)\r\n").replaced("229 Entering Extended Passive Mode (|||50003|)\r\n")
	if len(s.nat.asked) != 0 {
		t.Fatalf("asked %v", s.nat.asked)
	}
}

// TestNAT64EPSVAll: EPSV ALL never reaches the server: it goes as NOOP and
// the client gets 504 (RFC 6384 §6); EPSVs after it still go as PASV.
// "EPSV 1" and other protocol numbers get 522, also never passed; an
// argument that is no number passes (RFC 6384 §10).
func TestNAT64EPSVAll(t *testing.T) {
	for _, probe := range []bool{false, true} {
		s := newSession64(t, &Config{NAT64EPSVProbe: probe})
		s.client("EPSV ALL\r\n").replaced("NOOP\r\n").events(EvRefused).again()
		s.server("200 NOOP ok\r\n").replaced("504 Command not implemented for that parameter\r\n").events(EvReplySubstituted).again()
		s.client("epsv all\r\n").replaced("NOOP\r\n")
		s.server("200 NOOP ok\r\n").replaced(answers[ansEPSVAll])
		for _, c := range []string{"EPSV 1\r\n", "EPSV 3\r\n", "EPSV 01\r\n", "EPSV  22\r\n"} {
			s.client(c).replaced("NOOP\r\n").events(EvRefused)
			s.server("200 NOOP ok\r\n").replaced("522 Network protocol not supported, use (2)\r\n")
		}
		s.client("EPSV FOO\r\n").pass()
		s.server("501 Bad argument\r\n").pass()
		s.client("EPSV 2\r\n").replaced("PASV\r\n" + map[bool]string{false: "", true: "EPSV 2\r\n"}[probe])
	}
}

// TestNAT64UntranslatedPass: LPRT, LPSV and the IPv6 client's PORT are not
// translated by the gateway: they pass unchanged and so do the server's
// replies (RFC 6384 §10); no endpoint is mapped, so no expectation (no
// pinhole) is made. A PORT (an IPv4 address: never the client's) counts as
// a bounce.
func TestNAT64UntranslatedPass(t *testing.T) {
	s := newSession64(t, &Config{})
	lprt := "LPRT 6,16,253,0,0,100,0,0,0,0,0,0,0,0,0,0,0,2,2,195,80\r\n"
	s.client(lprt).pass()
	s.server("200 LPRT command successful\r\n").pass()
	s.client("LPRT 6,16,253,0,0,100,0,0,0,0,0,0,0,0,0,0,0,9,2,195,80\r\n").pass()
	s.server("500 Unknown command\r\n").pass()
	s.client("LPSV\r\n").pass()
	s.server("228 Entering Long Passive Mode (4,4,198,18,0,2,2,195,80)\r\n").pass()
	s.client("PORT 198,18,0,9,195,80\r\n").pass().events(EvBounce)
	s.server("500 Illegal PORT command\r\n").pass()
	s.client("PORT 198,19,64,1,195,80\r\n").pass().events(EvBounce)
	s.server("200 PORT command successful\r\n").pass()
	s.offsets(0, 0)
	if len(s.nat.asked) != 0 {
		t.Fatalf("asked %v: a pinhole for an untranslated command", s.nat.asked)
	}
	// the FIFO stayed in step: the next gateway answer is the right one
	s.client("ALGS STATUS64\r\n").replaced("NOOP\r\n")
	s.server("200 NOOP ok\r\n").replaced(answers[ansALGSOn])
}

// TestNAT64NOOPNot200: a stand-in NOOP answered with anything but 200 is
// never relayed: the segment carrying that reply becomes a reset, and
// every later segment of the session is dropped (RFC 6384 §12).
func TestNAT64NOOPNot200(t *testing.T) {
	for _, reply := range []string{"421 Timeout\r\n", "500-No\r\n500 NOOP\r\n", "202 Not needed\r\n"} {
		s := newSession64(t, &Config{})
		s.client("EPSV ALL\r\n").replaced("NOOP\r\n")
		x := s.server("226 Done\r\n" + reply)
		if x.r.Action != Reset || x.r.Seq != x.seq || x.r.Events&EvTornDown == 0 {
			t.Fatalf("%q: %+v %q, want a reset at %d", reply, x.r, x.r.Payload, x.seq)
		}
		if r := s.client("NOOP\r\n").r; r.Action != Drop || r.Events&EvTornDown == 0 {
			t.Fatalf("%q: a later client segment: %+v", reply, r)
		}
		if r := s.server("200 ok\r\n").r; r.Action != Drop || r.Events&EvTornDown == 0 {
			t.Fatalf("%q: a later server segment: %+v", reply, r)
		}
	}
}

// TestNAT64Telnet: Telnet option negotiations (IAC WILL/WONT/DO/DONT, IAC
// SB ... IAC SE) from either side are removed, not relayed (RFC 6384 §5),
// also when cut over segments; a command after them is still handled;
// IAC IP and IAC DM of an ABOR (RFC 959 §4.1.3) pass.
func TestNAT64Telnet(t *testing.T) {
	s := newSession64(t, &Config{})
	s.client("\xff\xfb\x18\xff\xfd\x01EPSV\r\n").replaced("PASV\r\n").events(EvTelnetRefused | EvEPSVToPASV).again()
	s.server("\xff\xfb\x01227 Entering Passive Mode (198,18,0,2,195,80)\r\n").replaced("229 Entering Extended Passive Mode (|||50000|)\r\n").events(EvTelnetRefused)
	s.client("\xff\xfa\x18\x00xterm\xff\xf0").replaced("").events(EvTelnetRefused)
	x := s.client("\xff\xfc")
	if x.r.Action != Drop || x.r.Events&EvHeld == 0 {
		t.Fatalf("a negotiation cut short: %+v", x.r)
	}
	y := s.client("\x18USER a\r\n")
	if y.r.Action != Replace || y.r.Seq != x.seq || string(y.r.Payload) != "USER a\r\n" {
		t.Fatalf("merged negotiation: %+v %q", y.r, y.r.Payload)
	}
	s.server("331 Password\r\n").pass()
	s.client("\xff\xf4\xff\xf2ABOR\r\n").pass()
	s.server("226 Aborted\r\n").pass()
	// inside a line, with an escaped 255 kept
	s.client("NO\xff\xfd\x03OP \xff\xff\xff\xfa\x1f\x00\x50\xff\xf0x\r\n").replaced("NOOP \xff\xffx\r\n").events(EvTelnetRefused).again()
	s.server("200 ok\r\n").pass()
	s.client("ALGS STATUS64\r\n").replaced("NOOP\r\n")
	s.server("200 NOOP ok\r\n").replaced(answers[ansALGSOn])
}

// TestNAT64ALGS: the three ALGS commands are answered by the gateway, and
// DISABLE64 really stops the translations until ENABLE64.
func TestNAT64ALGS(t *testing.T) {
	s := newSession64(t, &Config{})
	s.client("ALGS STATUS64\r\n").replaced("NOOP\r\n").events(EvALGS).again()
	s.server("200 NOOP ok.\r\n").replaced(answers[ansALGSOn]).again()
	if !strings.HasPrefix(answers[ansALGSOn], "216 EPSVEPRT ") || !strings.HasPrefix(answers[ansALGSOff], "216 NONE ") ||
		!strings.HasPrefix(answers[ansALGSEPSV], "216 EPSV ") || !strings.HasPrefix(answers[ansALGSBad], "504 ") {
		t.Fatal("ALGS replies do not follow RFC 6384 §11")
	}
	// RFC 6384 §5.1: the ALG itself generates 7-bit ASCII only
	for i, a := range answers {
		for _, b := range []byte(a) {
			if b >= 0x80 {
				t.Fatalf("answer %d %q is not 7-bit ASCII", i, a)
			}
		}
	}
	s.client("algs disable64\r\n").replaced("NOOP\r\n").events(EvALGS)
	s.server("200 NOOP ok.\r\n").replaced(answers[ansALGSOff])
	// nothing is translated now
	s.client("EPRT |2|fd00:64::2|50000|\r\n").pass()
	s.server("522 Network protocol not supported\r\n").pass()
	s.client("EPSV\r\n").pass()
	s.server("500 Unknown command\r\n").pass()
	s.client("LPSV\r\n").pass()
	s.server("500 Unknown command\r\n").pass()
	if len(s.nat.asked) != 0 {
		t.Fatalf("asked %v while disabled", s.nat.asked)
	}
	s.client("EPSV ALL\r\n").pass()
	s.server("200 EPSV ALL ok\r\n").pass()
	s.client("ALGS STATUS64\r\n").replaced("NOOP\r\n")
	s.server("200 NOOP ok.\r\n").replaced(answers[ansALGSOff])
	s.client("ALGS ENABLE64\r\n").replaced("NOOP\r\n")
	s.server("200 NOOP ok.\r\n").replaced(answers[ansALGSOn])
	s.client("EPRT |2|fd00:64::2|50000|\r\n").replaced("PORT 198,19,64,1,195,80\r\n")
	if len(s.nat.asked) != 1 {
		t.Fatalf("asked %v after ENABLE64", s.nat.asked)
	}
	s.server("200 PORT ok\r\n").pass()
	// a bare ALGS or another argument: 504 from the gateway (RFC 6384 §11)
	for _, c := range []string{"ALGS STATUS46\r\n", "ALGS\r\n", "algs \r\n"} {
		s.client(c).replaced("NOOP\r\n").events(EvALGS)
		s.server("200 NOOP ok\r\n").replaced(answers[ansALGSBad])
	}
	// ALGSX is another command
	s.client("ALGSX\r\n").pass()
	s.server("500 Unknown command\r\n").pass()
	// with EPRT kept as EPRT, STATUS64 says only EPSV is translated
	k := newSession64(t, &Config{NAT64KeepEPRT: true})
	k.client("ALGS STATUS64\r\n").replaced("NOOP\r\n")
	k.server("200 NOOP ok\r\n").replaced(answers[ansALGSEPSV])
}

// TestNAT64Pipelined: replies are matched to commands in order; a
// multi-line reply to the NOOP is replaced whole.
func TestNAT64Pipelined(t *testing.T) {
	s := newSession64(t, &Config{})
	s.client("USER anonymous\r\nALGS STATUS64\r\nSYST\r\n").replaced("USER anonymous\r\nNOOP\r\nSYST\r\n")
	s.offsets(6-15, 0)
	s.server("331 Password please\r\n200-NOOP\r\n  fine\r\n200 ok\r\n215 UNIX\r\n").
		replaced("331 Password please\r\n" + answers[ansALGSOn] + "215 UNIX\r\n").events(EvReplySubstituted).again()
	s.offsets(6-15, int32(len(answers[ansALGSOn])-len("200-NOOP\r\n  fine\r\n200 ok\r\n")))
	// preliminary replies do not complete a command
	s.client("RETR a\r\nALGS STATUS64\r\n").replaced("RETR a\r\nNOOP\r\n")
	s.server("150 Opening\r\n").pass()
	s.server("226 Done\r\n200 NOOP ok\r\n").replaced("226 Done\r\n" + answers[ansALGSOn])
}

// TestNAT64Split: a command and a reply cut over two segments are held and
// rewritten whole.
func TestNAT64Split(t *testing.T) {
	s := newSession64(t, &Config{NAT64EPSVProbe: true})
	x := s.client("ALG")
	if x.r.Action != Drop || x.r.Events&EvHeld == 0 {
		t.Fatalf("partial ALGS: %+v", x.r)
	}
	y := s.client("S STATUS64\r\nNOOP\r\n")
	if y.r.Action != Replace || y.r.Seq != x.seq || string(y.r.Payload) != "NOOP\r\nNOOP\r\n" {
		t.Fatalf("merged ALGS: %+v %q", y.r, y.r.Payload)
	}
	// the reply to the NOOP standing in for ALGS, cut inside its code
	x = s.server("20")
	if x.r.Action != Drop || x.r.Events&EvHeld == 0 {
		t.Fatalf("partial reply: %+v", x.r)
	}
	y = s.server("0 NOOP ok\r\n200 NOOP ok\r\n")
	if want := answers[ansALGSOn] + "200 NOOP ok\r\n"; y.r.Action != Replace || y.r.Seq != x.seq || string(y.r.Payload) != want {
		t.Fatalf("merged reply: %+v %q", y.r, y.r.Payload)
	}
	// a 227 to remove, cut in two; the EPSV reply follows
	s.client("EPSV\r\n").replaced("PASV\r\nEPSV\r\n")
	if x = s.server("227 Entering Passive Mode (198,18,"); x.r.Action != Drop {
		t.Fatalf("partial 227: %+v", x.r)
	}
	y = s.server("0,2,195,80)\r\n500 no\r\n")
	if want := "229 Entering Extended Passive Mode (|||50000|)\r\n"; y.r.Action != Replace || y.r.Seq != x.seq || string(y.r.Payload) != want {
		t.Fatalf("merged 227 and rejection: %+v %q", y.r, y.r.Payload)
	}
	y.again()
	s.client("EPSV\r\n").replaced("PASV\r\n")
	s.server("227 Entering Passive Mode (198,18,0,2,195,81)\r\n").replaced("229 Entering Extended Passive Mode (|||50001|)\r\n")
}

// TestNAT64AUTHTLS: after AUTH TLS and 234 nothing is touched.
func TestNAT64AUTHTLS(t *testing.T) {
	s := newSession64(t, &Config{})
	s.client("AUTH TLS\r\n").pass()
	s.server("234 Proceed\r\n").events(EvTLS)
	for _, p := range []string{"\x16\x03\x01\x00\x10EPRT |2|fd00:64::2|50000|\r\n", "ALGS STATUS64\r\n", "EPSV\r\n", "LPSV\r\n"} {
		s.client(p).pass()
	}
	s.server("200 NOOP ok\r\n").pass()
	s.server("227 Entering Passive Mode (198,18,0,2,195,80)\r\n").pass()
	if len(s.nat.asked) != 0 {
		t.Fatalf("asked %v", s.nat.asked)
	}
	s.offsets(0, 0)
}

// TestNAT64PickedUpMidStream: without the handshake the replies cannot be
// matched to commands: nothing is answered in band; EPRT is still
// translated.
func TestNAT64PickedUpMidStream(t *testing.T) {
	h := &harness{c: NewControl(&Config{}, nat64Tuples()), nat: &fakeNAT{public: netip.MustParseAddr("198.19.64.1")}}
	if r := h.client(7000, "ALGS STATUS64\r\n"); r.Action != Pass {
		t.Fatalf("ALGS: %+v", r)
	}
	if r := h.client(7015, "ALGS STATUS64\r\n"); r.Action != Pass {
		t.Fatalf("ALGS: %+v", r)
	}
	if r := h.client(7030, "EPRT |2|fd00:64::2|50000|\r\n"); r.Action != Replace {
		t.Fatalf("EPRT: %+v", r)
	}
}

// TestNAT44Unchanged: a NAT44 flow knows nothing of NAT64.
func TestNAT44Unchanged(t *testing.T) {
	h := newHarness(t, &Config{}, 1460)
	if h.c.n64.on {
		t.Fatal("NAT44 flow taken for NAT64")
	}
	for _, p := range []string{"EPSV\r\n", "ALGS STATUS64\r\n", "LPSV\r\n"} {
		if r := h.client(1000, p); r.Action != Pass {
			t.Fatalf("%q: %+v", p, r)
		}
		h.c.dir[0].next = 1000
	}
}

// TestNAT64Allocs: the steady state allocates nothing: EPRT, EPSV as PASV
// and its 227 as 229, ALGS and refusals with their answers (the output
// scratch buffer grows to the largest segment once).
func TestNAT64Allocs(t *testing.T) {
	s := newSession64(t, &Config{})
	s.client("\xff\xfb\x18NOOP\r\n") // grows the scratch buffers once
	s.server("200 ok\r\n")
	s.nat.asked = make([]netip.AddrPort, 0, 1)
	type exchange struct{ cmd, reply []byte }
	steady := []exchange{
		{[]byte("EPRT |2|fd00:64::2|50000|\r\n"), []byte("200 ok\r\n")},
		{[]byte("EPSV\r\n"), []byte("229 Entering Extended Passive Mode (|||50000|)\r\n")},
		{[]byte("ALGS STATUS64\r\n"), []byte("200-NOOP\r\n200 ok\r\n")},
		{[]byte("EPSV ALL\r\n"), []byte("200 NOOP ok\r\n")},
		{[]byte("LPSV\r\n"), []byte("228 Entering Long Passive Mode (4,4,198,18,0,2,2,195,80)\r\n")},
	}
	run := func(x exchange) {
		s.c.Segment(&Segment{Dir: conntrack.Original, Seq: s.cseq, Payload: x.cmd}, &s.led[0], s.nat)
		s.cseq += uint32(len(x.cmd))
		s.c.Segment(&Segment{Dir: conntrack.Reply, Seq: s.sseq, Payload: x.reply}, &s.led[1], s.nat)
		s.sseq += uint32(len(x.reply))
		s.nat.asked = s.nat.asked[:0]
	}
	steady[1].reply = []byte("227 Entering Passive Mode (198,18,0,2,195,81)\r\n")
	for _, x := range steady {
		if n := testing.AllocsPerRun(100, func() { run(x) }); n != 0 {
			t.Fatalf("%q: %v allocations per command and reply", x.cmd, n)
		}
	}
}

// TestNAT64BlankLine: after an empty line the replies cannot be matched to
// commands for sure: no more in-band answers, EPRT still translated.
func TestNAT64BlankLine(t *testing.T) {
	s := newSession64(t, &Config{})
	s.client("\r\n").pass()
	s.server("500 Unknown command\r\n").pass()
	s.client("ALGS STATUS64\r\n").pass()
	s.client("EPSV\r\n").pass()
	s.client("EPRT |2|fd00:64::2|50000|\r\n").replaced("PORT 198,19,64,1,195,80\r\n")
}

// TestNAT64SplitPlainLines: commands and replies the gateway does not touch
// pass as they come, cut anywhere, and are still counted: the reply to the
// NOOP standing in for ALGS is the one replaced.
func TestNAT64SplitPlainLines(t *testing.T) {
	s := newSession64(t, &Config{})
	s.client("USER anon").pass()
	s.client("ymous\r\nALGS STATUS64\r\n").replaced("ymous\r\nNOOP\r\n")
	s.server("331 Pass").pass()
	s.server("word required\r\n").pass()
	s.server("200 NOOP ok\r\n").replaced(answers[ansALGSOn])
	// a reply start shorter than its code is held
	s.client("PWD\r\nALGS STATUS64\r\n").replaced("PWD\r\nNOOP\r\n")
	if x := s.server("25"); x.r.Action != Drop || x.r.Events&EvHeld == 0 {
		t.Fatalf("reply start: %+v", x.r)
	}
	s.server("7 \"/\"\r\n200 NOOP ok\r\n").events(EvReplySubstituted)
	// a multi-line reply cut inside, then a reply line longer than MaxLine
	s.client("FEAT\r\nHELP\r\nALGS STATUS64\r\n").replaced("FEAT\r\nHELP\r\nNOOP\r\n")
	s.server("211-Features:\r\n EPSV\r\n UTF").pass()
	s.server("8\r\n211 End\r\n").pass()
	long := "214 " + strings.Repeat("x", 2*MaxLine) + "\r\n"
	s.server(long).pass()
	s.server("200 NOOP ok\r\n").replaced(answers[ansALGSOn])
}

// TestRev64: an IPv4 client of an IPv6 server published by a static NAT64
// binding: PASV goes as EPSV and its 229 comes back as a 227 with the
// mapped pool endpoint (also when the 229 ends a multi-line reply); a
// rejected EPSV gives the client its error; the client's EPSV passes with
// its 229's port mapped; PORT and EPRT |1| with the client's address become
// EPRT |2| with its RFC 6052 address; another address passes (bounce).
func TestRev64(t *testing.T) {
	h := &harness{c: NewControl(&Config{}, rev64Tuples()), nat: &fakeNAT{public: netip.MustParseAddr("198.19.64.1")}}
	if !h.c.n64.rev || h.c.n64.on {
		t.Fatal("reverse NAT64 flow not detected")
	}
	h.seg(conntrack.Original, 999, "", true, false)
	h.c.Segment(&Segment{Dir: conntrack.Reply, Seq: 4999, SYN: true, MSS: 1440}, &h.led[1], h.nat)
	s := &session64{harness: h, t: t, cseq: 1000, sseq: 5000}
	s.server("220 ready\r\n").pass()
	s.client("PASV\r\n").replaced("EPSV\r\n").events(EvEPSVToPASV).again()
	s.server("229 Entering Extended Passive Mode (|||50000|)\r\n").replaced("227 Entering Passive Mode (198,19,64,1,195,80)\r\n").events(EvRewrite).again()
	if len(s.nat.asked) != 1 || s.nat.asked[0] != netip.MustParseAddrPort("[fd00:64::21]:50000") {
		t.Fatalf("asked %v", s.nat.asked)
	}
	s.client("pasv\r\n").replaced("EPSV\r\n")
	s.server("229-Entering\r\n229 Extended Passive Mode (|||50001|)\r\n").replaced("227 Entering Passive Mode (198,19,64,1,195,81)\r\n")
	s.client("PASV\r\n").replaced("EPSV\r\n")
	s.server("500 EPSV not understood\r\n").pass()
	s.client("EPSV\r\n").pass()
	s.server("229 Entering Extended Passive Mode (|||50003|)\r\n").pass().events(EvRewrite) // the port kept: only the expectation
	if len(s.nat.asked) != 3 {
		t.Fatalf("the 229 to EPSV was not mapped: asked %v", s.nat.asked)
	}
	s.client("PORT 198,18,7,9,195,84\r\n").replaced("EPRT |2|2001:0db8:0064:0000:0000:0000:c612:0709|50004|\r\n").events(EvRewrite).again()
	s.server("200 ok\r\n").pass()
	s.client("EPRT |1|198.18.7.9|50005|\r\n").replaced("EPRT |2|2001:0db8:0064:0000:0000:0000:c612:0709|50005|\r\n")
	s.server("200 ok\r\n").pass()
	s.client("PORT 198,18,7,10,195,84\r\n").pass().events(EvBounce)
	s.server("500 no\r\n").pass()
	s.client("PORT 198,18,7,9,0,21\r\n").pass().events(EvLowPort)
	s.server("500 no\r\n").pass()
	s.client("PASV\r\n").replaced("EPSV\r\n")
}
