package alg

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/natalg/natalg/conntrack"
)

// wire delivers two byte streams through a NAT64 Control the way TCP
// peers would: each direction sends from the first byte the gateway has not
// taken (after a cut, a held line or a drop), and it records the translated
// streams as the receivers get them, checking that every output lands where
// the stream ends (or, for a retransmission, repeats what was delivered).
type wire struct {
	t       testing.TB
	h       *harness
	streams [2][]byte
	base    [2]uint32
	tx      [2][]byte
	reset   bool // the gateway tore the session down (RFC 6384 §12)
}

func newWire(t testing.TB, cfg *Config, mss uint16, client, server []byte, refuse bool) *wire {
	return newWireTuples(t, cfg, nat64Tuples(), mss, client, server, refuse)
}

// rev64Tuples: an IPv4 client 198.18.7.9 reaching the IPv6 server
// fd00:64::21 published on 198.19.64.1:21 by a static NAT64 binding, which
// sees the client at 2001:db8:64::c612:709 (rev64.go).
func rev64Tuples() [2]conntrack.Tuple {
	return [2]conntrack.Tuple{
		{Src: netip.MustParseAddr("198.18.7.9"), Dst: netip.MustParseAddr("198.19.64.1"), SrcPort: 40000, DstPort: 21, Proto: 6},
		{Src: netip.MustParseAddr("fd00:64::21"), Dst: netip.MustParseAddr("2001:db8:64::c612:709"), SrcPort: 21, DstPort: 40000, Proto: 6},
	}
}

func newWireTuples(t testing.TB, cfg *Config, tuples [2]conntrack.Tuple, mss uint16, client, server []byte, refuse bool) *wire {
	h := &harness{c: NewControl(cfg, tuples), nat: &fakeNAT{public: netip.MustParseAddr("198.19.64.1"), refuse: refuse}}
	h.seg(conntrack.Original, 999, "", true, false)
	h.c.Segment(&Segment{Dir: conntrack.Reply, Seq: 4999, SYN: true, MSS: mss}, &h.led[1], h.nat)
	return &wire{t: t, h: h, streams: [2][]byte{client, server}, base: [2]uint32{1000, 5000}}
}

// taken returns how many bytes of direction d the gateway has taken.
func (w *wire) taken(d conntrack.Dir) int { return int(w.h.c.dir[d].next - w.base[d]) }

// deliver records or checks the output of r for the segment p at seq.
func (w *wire) deliver(d conntrack.Dir, seq uint32, p []byte, r Result, fresh bool) {
	t := w.t
	t.Helper()
	var out []byte
	var at uint32
	switch r.Action {
	case Drop:
		return
	case Pass:
		out, at = p, w.h.led[d].Seq(seq)
	case Replace:
		out, at = r.Payload, w.h.led[d].Seq(r.Seq)
		if len(out) > len(p)+MaxLine+4*maxAnnounceText {
			t.Fatalf("%v: %d bytes out of %d", d, len(out), len(p))
		}
	}
	pos := int(at - w.base[d])
	if fresh {
		if pos != len(w.tx[d]) {
			t.Fatalf("%v: output at %d, stream ends at %d (%+v)", d, pos, len(w.tx[d]), r)
		}
		w.tx[d] = append(w.tx[d], out...)
		return
	}
	if pos < 0 || pos+len(out) > len(w.tx[d]) || !bytes.Equal(w.tx[d][pos:pos+len(out)], out) {
		t.Fatalf("%v: retransmission %q at %d differs from what was delivered", d, out, pos)
	}
}

// send sends up to n new bytes of direction d, but not past limit; with
// retransmit it then sends the same segment again when it went through
// whole. It reports whether bytes were sent.
func (w *wire) send(d conntrack.Dir, n, limit int, retransmit bool) bool {
	t := w.t
	t.Helper()
	h := w.h
	s := &h.c.dir[d]
	if w.reset {
		return false
	}
	off := w.taken(d)
	if off < 0 || off > len(w.streams[d]) {
		t.Fatalf("%v: next expected byte %d outside the stream", d, off)
	}
	limit = min(limit, len(w.streams[d]))
	if off >= limit {
		return false
	}
	n = min(n, limit-off)
	// The receiver has acknowledged everything delivered before this
	// segment (so the gateway may forget the rewrites it has whole).
	h.c.Acked(d, h.led[d].Ack(w.base[d]+uint32(len(w.tx[d]))))
	p := w.streams[d][off : off+n]
	seq := w.base[d] + uint32(off)
	r := h.c.Segment(&Segment{Dir: d, Seq: seq, Payload: p}, &h.led[d], h.nat)
	if r.Action == Drop && r.Events&EvMapFailed != 0 {
		// taken but not delivered: the sender retransmits from the
		// first byte not acknowledged
		acked := h.led[d].Ack(w.base[d] + uint32(len(w.tx[d])))
		seq, p = acked, w.streams[d][acked-w.base[d]:s.next-w.base[d]]
		r = h.c.Segment(&Segment{Dir: d, Seq: seq, Payload: p}, &h.led[d], h.nat)
	}
	if r.Action == Reset {
		// the end: a reset at the segment's first byte, nothing of it
		// delivered; the gateway drops everything after
		if r.Seq != seq || r.Events&EvTornDown == 0 {
			t.Fatalf("%v: reset %+v of a segment at %d", d, r, seq)
		}
		if r := h.c.Segment(&Segment{Dir: d.Other(), Seq: w.base[d.Other()] + uint32(w.taken(d.Other())), Payload: []byte("x")}, &h.led[d.Other()], h.nat); r.Action != Drop {
			t.Fatalf("after the reset: %+v", r)
		}
		w.reset = true
		return true
	}
	w.deliver(d, seq, p, r, true)
	if w.taken(d) <= off {
		t.Fatalf("%v: no byte taken at %d: %+v", d, off, r)
	}
	if h.c.n64.queueLen > pendingCap {
		t.Fatalf("FIFO holds %d", h.c.n64.queueLen)
	}
	whole := (r.Action == Pass || r.Action == Replace && r.Seq == seq) && r.Events&EvTruncated == 0 && len(s.held) == 0
	if retransmit && whole {
		r := h.c.Segment(&Segment{Dir: d, Seq: seq, Payload: p}, &h.led[d], h.nat)
		if r.Action == Drop {
			t.Fatalf("%v: retransmission dropped: %+v", d, r)
		}
		w.deliver(d, seq, p, r, false)
	}
	return true
}

// session is a scripted NAT64 session: each command of the client and the
// server's reply to what the gateway made of it, and what the client and
// the server receive.
type session struct {
	name  string
	cfg   Config
	ahead int // commands the client may send before the replies to earlier ones

	script [][2]string
	want   [2]string
}

var sessions = []session{
	{
		name:  "epsv-rejected",
		cfg:   Config{NAT64EPSVProbe: true},
		ahead: 2,
		script: [][2]string{
			{"", "220-Welcome\r\n220 ready\r\n"},
			{"USER anonymous\r\n", "331 Password please\r\n"},
			{"PASS guest\r\n", "230-Hello\r\n  there\r\n230 Logged in\r\n"},
			{"EPSV\r\n", "227 Entering Passive Mode (198,18,0,2,195,80).\r\n500 'EPSV': command not understood\r\n"},
			{"LIST\r\n", "150 Here it comes\r\n226 Done\r\n"},
			{"ALGS STATUS64\r\n", "200 NOOP ok\r\n"},
			{"EPRT |2|fd00:64::2|50000|\r\n", "200 PORT ok\r\n"},
			{"EPSV 2\r\n", "227 Entering Passive Mode (198,18,0,2,195,81)\r\n"},
			{"LPSV\r\n", "228 Entering Long Passive Mode (4,4,198,18,0,2,2,195,80)\r\n"},
			{"ALGS DISABLE64\r\n", "200 NOOP ok\r\n"},
			{"EPSV\r\n", "500 no\r\n"},
			{"ALGS ENABLE64\r\n", "200 NOOP ok\r\n"},
			{"PORT 198,18,0,9,4,1\r\n", "500 Illegal PORT\r\n"},
			{"QUIT\r\n", "221 Bye\r\n"},
		},
		want: [2]string{
			"USER anonymous\r\nPASS guest\r\nPASV\r\nEPSV\r\nLIST\r\nNOOP\r\nPORT 198,19,64,1,195,80\r\nPASV\r\nLPSV\r\nNOOP\r\nEPSV\r\nNOOP\r\nPORT 198,18,0,9,4,1\r\nQUIT\r\n",
			"220-Welcome\r\n220 ready\r\n331 Password please\r\n230-Hello\r\n  there\r\n230 Logged in\r\n" +
				"229 Entering Extended Passive Mode (|||50000|)\r\n150 Here it comes\r\n226 Done\r\n" + answers[ansALGSOn] +
				"200 PORT ok\r\n229 Entering Extended Passive Mode (|||50001|)\r\n228 Entering Long Passive Mode (4,4,198,18,0,2,2,195,80)\r\n" + answers[ansALGSOff] +
				"500 no\r\n" + answers[ansALGSOn] + "500 Illegal PORT\r\n221 Bye\r\n",
		},
	},
	{
		name: "epsv-supported",
		cfg:  Config{NAT64EPSVProbe: true},
		script: [][2]string{
			{"", "220 ready\r\n"},
			{"EPSV\r\n", "227 Entering Passive Mode (198,18,0,2,195,80)\r\n229 Entering Extended Passive Mode (|||50001|)\r\n"},
			{"RETR f\r\n", "150 go\r\n226 ok\r\n"},
			{"EPSV\r\n", "229 Entering Extended Passive Mode (|||50002|)\r\n"},
			{"LPRT 6,16,253,0,0,100,0,0,0,0,0,0,0,0,0,0,0,2,2,195,80\r\n", "200 LPRT ok\r\n"},
			{"EPRT |2|fd00:64::9|50000|\r\n", "500 Illegal EPRT\r\n"},
			{"EPRT |2|fd00:64::2|50000|\r\n", "200 PORT ok\r\n"},
		},
		want: [2]string{
			"PASV\r\nEPSV\r\nRETR f\r\nEPSV\r\nLPRT 6,16,253,0,0,100,0,0,0,0,0,0,0,0,0,0,0,2,2,195,80\r\nEPRT |2|fd00:64::9|50000|\r\nPORT 198,19,64,1,195,80\r\n",
			"220 ready\r\n229 Entering Extended Passive Mode (|||50001|)\r\n150 go\r\n226 ok\r\n229 Entering Extended Passive Mode (|||50002|)\r\n" +
				"200 LPRT ok\r\n500 Illegal EPRT\r\n200 PORT ok\r\n",
		},
	},
	{
		name: "epsv-to-pasv",
		cfg:  Config{NAT64KeepEPRT: true},
		script: [][2]string{
			{"", "220 ready\r\n"},
			{"epsv\r\n", "227-Entering Passive Mode\r\n227 (198,18,0,2,195,80)\r\n"},
			{"PASV\r\n", "227 Entering Passive Mode (198,18,0,2,195,81)\r\n"},
			{"EPSV 1\r\n", "200 NOOP ok\r\n"},
			{"\xff\xfd\x01EPRT |2|fd00:64::2|50000|\r\n", "\xff\xfb\x01200 EPRT ok\r\n"},
			{"EPSV ALL\r\n", "200-NOOP\r\n200 ok\r\n"},
			{"EPSV\r\n", "227 Entering Passive Mode (198,18,0,2,195,83)\r\n"},
		},
		want: [2]string{
			"PASV\r\nPASV\r\nNOOP\r\nEPRT |1|198.19.64.1|50000|\r\nNOOP\r\nPASV\r\n",
			"220 ready\r\n229 Entering Extended Passive Mode (|||50000|)\r\n227 Entering Passive Mode (198,18,0,2,195,81)\r\n" + answers[ansEPSVProto] +
				"200 EPRT ok\r\n" + answers[ansEPSVAll] + "229 Entering Extended Passive Mode (|||50003|)\r\n",
		},
	},
}

// TestNAT64AnySegmentation: scripted sessions, cut into random segments in
// both directions, possibly pipelined, with random
// retransmissions, give the translated streams expected line by line.
func TestNAT64AnySegmentation(t *testing.T) {
	for _, ss := range sessions {
		t.Run(ss.name, func(t *testing.T) { ss.run(t) })
	}
}

func (ss *session) run(t *testing.T) {
	var client, server strings.Builder
	var cEnd, sEnd []int
	for _, cr := range ss.script {
		client.WriteString(cr[0])
		server.WriteString(cr[1])
		cEnd = append(cEnd, client.Len())
		sEnd = append(sEnd, server.Len())
	}
	rng := rand.New(rand.NewPCG(6384, 64))
	for round := 0; round < 500; round++ {
		mss := uint16(1460)
		if round%3 == 1 {
			mss = 100
		}
		cfg := ss.cfg
		w := newWire(t, &cfg, mss, []byte(client.String()), []byte(server.String()), false)
		maxSeg := 1 + rng.IntN(60)
		if round == 0 {
			maxSeg = 1 << 20
		}
		for {
			// the server answers only commands it has whole
			got := 0
			for got < len(cEnd) && cEnd[got] <= w.taken(conntrack.Original) {
				got++
			}
			slimit := 0
			if got > 0 {
				slimit = sEnd[got-1]
			}
			// the client runs at most ss.ahead commands ahead of the
			// replies (what the gateway knows of the server's EPSV when
			// a command passes depends on it)
			answered := 0
			for answered < len(sEnd) && sEnd[answered] <= w.taken(conntrack.Reply) {
				answered++
			}
			climit := cEnd[min(answered+ss.ahead, len(cEnd)-1)]
			if round == 0 {
				climit = cEnd[min(answered, len(cEnd)-1)]
			}
			var sent bool
			if rng.IntN(2) == 0 {
				sent = w.send(conntrack.Original, 1+rng.IntN(maxSeg), climit, rng.IntN(4) == 0) || w.send(conntrack.Reply, 1+rng.IntN(maxSeg), slimit, rng.IntN(4) == 0)
			} else {
				sent = w.send(conntrack.Reply, 1+rng.IntN(maxSeg), slimit, rng.IntN(4) == 0) || w.send(conntrack.Original, 1+rng.IntN(maxSeg), climit, rng.IntN(4) == 0)
			}
			if !sent {
				break
			}
		}
		for d := range 2 {
			if w.taken(conntrack.Dir(d)) != len(w.streams[d]) {
				t.Fatalf("round %d: %v stopped at %d of %d", round, conntrack.Dir(d), w.taken(conntrack.Dir(d)), len(w.streams[d]))
			}
			if string(w.tx[d]) != ss.want[d] {
				t.Fatalf("round %d (segments up to %d, MSS %d): %v received\n%q\nwant\n%q", round, maxSeg, mss, conntrack.Dir(d), w.tx[d], ss.want[d])
			}
		}
	}
}
