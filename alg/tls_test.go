package alg

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/natalg/natalg/conntrack"
)

// record is a synthetic TLS record: 5-byte header, then body (RFC 5246
// §6.2, RFC 8446 §5.1).
func record(typ byte, body []byte) []byte {
	return append([]byte{typ, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
}

// body is n bytes of "ciphertext" that carry FTP-looking text, to show it is
// never taken for a command.
func body(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	copy(b[n/3:], "\r\nPORT 198,18,0,2,195,80\r\n227 Entering Passive Mode (198,19,0,2,4,1)\r\n")
	return b
}

const (
	tlsHandshake = 22
	tlsCCS       = 20
	tlsAlert     = 21
	tlsAppData   = 23
)

// tlsSession: AUTH TLS answered by 234, then the handshake both ways. It
// returns the harness and the next client and server sequence numbers.
func tlsSession(t *testing.T) (h *harness, cseq, sseq uint32) {
	h = newHarness(t, &Config{}, 1460)
	cseq, sseq = 1000, 5000
	send := func(d conntrack.Dir, p []byte) Result {
		var r Result
		if d == conntrack.Original {
			r = h.seg(d, cseq, string(p), false, false)
			cseq += uint32(len(p))
		} else {
			r = h.seg(d, sseq, string(p), false, false)
			sseq += uint32(len(p))
		}
		return r
	}
	send(conntrack.Original, []byte("AUTH TLS\r\n"))
	if r := send(conntrack.Reply, []byte("234 Proceed with negotiation.\r\n")); r.Events&EvTLS == 0 {
		t.Fatalf("234: %+v", r)
	}
	// ClientHello with its header cut over two segments
	ch := record(tlsHandshake, body(300, 1))
	for _, p := range [][]byte{ch[:3], ch[3:100], ch[100:]} {
		if r := send(conntrack.Original, p); r.Action != Pass || r.Events != 0 {
			t.Fatalf("ClientHello piece: %+v", r)
		}
	}
	// ServerHello ... Finished, CCS, then application data, in one segment
	sh := append(append(record(tlsHandshake, body(1200, 2)), record(tlsCCS, []byte{1})...), record(tlsAppData, body(80, 3))...)
	if r := send(conntrack.Reply, sh); r.Action != Pass || r.Events != 0 {
		t.Fatalf("ServerHello flight: %+v", r)
	}
	// client Finished and an encrypted command, records cut at odd places
	cf := append(record(tlsCCS, []byte{1}), record(tlsAppData, body(60, 4))...)
	cf = append(cf, record(tlsAppData, body(40, 5))...)
	for _, p := range [][]byte{cf[:1], cf[1:9], cf[9:70], cf[70:]} {
		if r := send(conntrack.Original, p); r.Action != Pass || r.Events != 0 {
			t.Fatalf("client flight piece: %+v", r)
		}
	}
	if !h.c.TLS() {
		t.Fatal("not in TLS")
	}
	return h, cseq, sseq
}

// TestCCCResumesInspection: after CCC (encrypted) and close_notify both
// ways, the peers talk in clear again: the client's PORT is rewritten, the
// server's reply tracked, and EvTLSEnded counted once per direction.
func TestCCCResumesInspection(t *testing.T) {
	h, cseq, sseq := tlsSession(t)
	// the encrypted CCC and its encrypted 200
	if r := h.client(cseq, string(record(tlsAppData, body(30, 6)))); r.Action != Pass || r.Events != 0 {
		t.Fatalf("CCC: %+v", r)
	}
	cseq += 35
	if r := h.seg(conntrack.Reply, sseq, string(record(tlsAppData, body(40, 7))), false, false); r.Action != Pass || r.Events != 0 {
		t.Fatalf("200 to CCC: %+v", r)
	}
	sseq += 45
	// the server's close_notify, then its clear text in a later segment
	alert := record(tlsAlert, body(26, 8))
	if r := h.seg(conntrack.Reply, sseq, string(alert), false, false); r.Action != Pass || r.Events != 0 {
		t.Fatalf("server close_notify: %+v", r)
	}
	sseq += uint32(len(alert))
	if r := h.seg(conntrack.Reply, sseq, "200 Switching to clear.\r\n", false, false); r.Action != Pass || r.Events != EvTLSEnded {
		t.Fatalf("server clear text: %+v", r)
	}
	if !h.c.TLS() {
		t.Fatal("client direction left TLS before its close_notify")
	}
	// the client's close_notify and its first clear command in one segment
	seg := string(record(tlsAlert, body(26, 9))) + "PORT 198,18,0,2,195,80\r\n"
	r := h.client(cseq, seg)
	if r.Action != Replace || r.Seq != cseq || r.Events&EvTLSEnded == 0 || r.Events&EvRewrite == 0 {
		t.Fatalf("client close_notify + PORT: %+v", r)
	}
	if want := seg[:31] + "PORT 198,19,100,100,195,80\r\n"; string(r.Payload) != want {
		t.Fatalf("payload %q, want %q", r.Payload, want)
	}
	if h.c.TLS() {
		t.Fatal("still TLS after both directions left it")
	}
	if len(h.nat.asked) != 1 {
		t.Fatalf("asked %v", h.nat.asked)
	}
	// a retransmission of that segment is rewritten identically
	r2 := h.client(cseq, seg)
	if r2.Action != Replace || !bytes.Equal(r2.Payload, r.Payload) {
		t.Fatalf("retransmission: %+v", r2)
	}
	cseq += uint32(len(seg))
	// and the clear session goes on: a PORT split over two segments is held
	if r := h.client(cseq, "PORT 198,18,0"); r.Action != Drop || r.Events&EvHeld == 0 {
		t.Fatalf("split PORT after CCC: %+v", r)
	}
}

// TestTLSNeverInspected: streams after 234 that must never be inspected,
// whatever the text: nothing is rewritten, nothing mapped.
func TestTLSNeverInspected(t *testing.T) {
	port := "PORT 198,18,0,2,195,80\r\n"
	cases := []struct {
		name string
		segs []string // client segments after the handshake (tlsSession)
		gap  bool     // the first segment arrives one byte late (a gap)
	}{
		{name: "port-inside-app-data", segs: []string{string(record(tlsAppData, []byte("\r\n"+port)))}},
		{name: "port-at-segment-start-inside-record", segs: []string{string(record(tlsAppData, body(60, 10))[:20]), string(record(tlsAppData, body(60, 10))[20:25]) + port}},
		{name: "port-body-after-header-segment", segs: []string{"\x17\x03\x03\x00\x18", port, "\x17\x03\x03\x00\x18" + port}},
		{name: "bad-version", segs: []string{"\x17\x05\x03\x00\x00", port}},
		{name: "bad-type", segs: []string{"\x18\x03\x03\x00\x00", port}},
		{name: "record-too-long", segs: []string{"\x17\x03\x03\x50\x00", port}},
		{name: "bad-type-midheader", segs: []string{"\x17\x03", "\x07" + port}},
		{name: "binary-at-boundary", segs: []string{"\x00\x01" + port, port}},
		{name: "binary-before-lf", segs: []string{"PORT 198,18,0,2,195,80\x00\r\n", port}},
		{name: "digit-from-client", segs: []string{"227 Entering Passive Mode (198,18,0,2,195,80)\r\n", port}},
		{name: "gap", segs: []string{string(record(tlsAlert, body(26, 11))) + port, port}, gap: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, cseq, _ := tlsSession(t)
			for i, p := range tc.segs {
				seq := cseq
				if tc.gap && i == 0 {
					seq++
				}
				r := h.client(seq, p)
				if r.Action != Pass || r.Events&(EvRewrite|EvTLSEnded) != 0 {
					t.Fatalf("segment %d %q: %+v", i, p, r)
				}
				cseq = seq + uint32(len(p))
			}
			if len(h.nat.asked) != 0 {
				t.Fatalf("mapped %v", h.nat.asked)
			}
		})
	}
	// ciphertext right after 234, before any record: the existing rule
	t.Run("text-before-first-record", func(t *testing.T) {
		h := newHarness(t, &Config{}, 1460)
		h.client(1000, "AUTH TLS\r\n")
		h.seg(conntrack.Reply, 5000, "234 ok\r\n", false, false)
		if r := h.client(1010, port); r.Action != Pass || r.Events != 0 {
			t.Fatalf("%+v", r)
		}
		if r := h.client(1010+uint32(len(port)), string(record(tlsHandshake, body(40, 12)))+port); r.Action != Pass || r.Events != 0 {
			t.Fatalf("%+v", r)
		}
		if len(h.nat.asked) != 0 {
			t.Fatalf("mapped %v", h.nat.asked)
		}
	})
}

// TestTLSRecordsAnySegmentation: valid records with bodies full of FTP text,
// cut into random segments, never leave TLS and never get rewritten.
func TestTLSRecordsAnySegmentation(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 42))
	for round := 0; round < 200; round++ {
		h, cseq, _ := tlsSession(t)
		var stream []byte
		for i := 0; i < 20; i++ {
			typ := []byte{tlsHandshake, tlsCCS, tlsAlert, tlsAppData}[r.IntN(4)]
			stream = append(stream, record(typ, body(r.IntN(600), uint64(round*100+i)))...)
		}
		for len(stream) > 0 {
			n := 1 + r.IntN(700)
			if n > len(stream) {
				n = len(stream)
			}
			res := h.client(cseq, string(stream[:n]))
			if res.Action != Pass || res.Events != 0 {
				t.Fatalf("round %d: %+v", round, res)
			}
			// now and then a retransmission of what was just sent
			if r.IntN(5) == 0 {
				if res := h.client(cseq, string(stream[:n])); res.Action != Pass || res.Events != 0 {
					t.Fatalf("round %d retransmission: %+v", round, res)
				}
			}
			cseq += uint32(n)
			stream = stream[n:]
		}
		if !h.c.TLS() || len(h.nat.asked) != 0 {
			t.Fatalf("round %d: TLS=%v asked %v", round, h.c.TLS(), h.nat.asked)
		}
	}
}

// The 234 and the server's first record in one segment: the record is
// followed from there.
func TestTLSStartsInsideThe234Segment(t *testing.T) {
	h := newHarness(t, &Config{}, 1460)
	h.client(1000, "AUTH TLS\r\n")
	rec := record(tlsHandshake, body(100, 13))
	seg := "234 ok\r\n" + string(rec[:50])
	if r := h.seg(conntrack.Reply, 5000, seg, false, false); r.Events&EvTLS == 0 || r.Action == Drop {
		t.Fatalf("234: %+v", r)
	}
	s := uint32(5000 + len(seg))
	if r := h.seg(conntrack.Reply, s, string(rec[50:])+string(record(tlsAlert, body(26, 14))), false, false); r.Action != Pass || r.Events != 0 {
		t.Fatalf("rest of the record: %+v", r)
	}
	s += uint32(len(rec) - 50 + 31)
	if r := h.seg(conntrack.Reply, s, "200 clear\r\n", false, false); r.Events != EvTLSEnded {
		t.Fatalf("clear after the records: %+v", r)
	}
}

// FuzzTLSTracker: after AUTH TLS and 234, (1) arbitrary client bytes cut at
// arbitrary places never panic and are never mapped unless the direction
// left TLS first; (2) the same bytes wrapped as the bodies of valid records
// are never inspected at all. Both on a NAT44 flow and on a NAT64 one (RFC
// 6384 §5: the NAT64 gateway stops at AUTH too).
func FuzzTLSTracker(f *testing.F) {
	f.Add([]byte("\x16\x03\x01\x00\x02hi\x15\x03\x03\x00\x02xxPORT 198,18,0,2,195,80\r\n"), uint16(7))
	f.Add([]byte("PORT 198,18,0,2,195,80\r\n"), uint16(3))
	f.Add([]byte("\x17\x03\x03\x00\x18PORT 198,18,0,2,195,80\r\n"), uint16(5))
	f.Add([]byte("\x16\x03\x01\x00\x02hi\x15\x03\x03\x00\x02xxEPRT |2|fd00:64::2|50000|\r\nALGS STATUS64\r\n"), uint16(0x8007))
	f.Add([]byte("EPSV\r\nEPRT |2|fd00:64::2|50000|\r\n"), uint16(0x8003))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		if len(data) > 4096 {
			return
		}
		step := int(cut%700) + 1
		nat64 := cut&0x8000 != 0
		run := func(stream []byte) (*harness, Event) {
			var h *harness
			if nat64 {
				h = newSession64(t, &Config{}).harness
				h.client(1000, "AUTH TLS\r\n")
				h.seg(conntrack.Reply, 5011, "234 ok\r\n", false, false)
			} else {
				h = newHarness(t, &Config{}, 1460)
				h.client(1000, "AUTH TLS\r\n")
				h.seg(conntrack.Reply, 5000, "234 ok\r\n", false, false)
			}
			if !h.c.TLS() {
				t.Fatal("234 did not start TLS")
			}
			seq := uint32(1010)
			var ev Event
			for len(stream) > 0 {
				n := step
				if n > len(stream) {
					n = len(stream)
				}
				// a held partial line after leaving TLS (Drop, EvHeld):
				// go on with the next bytes as the sender would
				r := h.client(seq, string(stream[:n]))
				ev |= r.Events
				seq += uint32(n)
				stream = stream[n:]
			}
			return h, ev
		}
		h, ev := run(data)
		if len(h.nat.asked) > 0 && ev&EvTLSEnded == 0 {
			t.Fatalf("mapped %v without leaving TLS", h.nat.asked)
		}
		var recs []byte
		recs = append(recs, record(tlsHandshake, data[:len(data)/2])...)
		recs = append(recs, record(tlsAppData, data[len(data)/2:])...)
		h, ev = run(recs)
		if ev != 0 || len(h.nat.asked) != 0 || !h.c.TLS() {
			t.Fatalf("valid records inspected: events %b, asked %v, TLS %v", ev, h.nat.asked, h.c.TLS())
		}
	})
}
