package alg

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/conntrack"
)

// FuzzNAT64Control runs arbitrary client and server streams, cut at
// arbitrary places and interleaved, through the gateway of a NAT64 flow,
// the way the peers would send them (after a cut or a held line the sender
// goes on from the first byte not taken), now and then retransmitting a
// segment. It checks that nothing panics, that the translated streams have
// no gap and no overlap (every output lands, through the ledger, exactly
// where the previous one ended), that retransmissions carry the very bytes
// already delivered, and that the gateway's state stays bounded.
func FuzzNAT64Control(f *testing.F) {
	f.Add([]byte("EPRT |2|fd00:64::2|50000|\r\nEPSV\r\nALGS STATUS64\r\nLPRT 1,2\r\nEPSV\r\n"),
		[]byte("220 hi\r\n200 ok\r\n227 Entering Passive Mode (198,18,0,2,195,80)\r\n500 no\r\n200 NOOP\r\n200 NOOP\r\n227 (198,18,0,2,4,1)\r\n"), uint16(7), uint8(0))
	f.Add([]byte("USER a\r\nALGS DISABLE64\r\nEPSV\r\nALGS ENABLE64\r\nepsv 2\r\nPORT 1,2,3,4,5,6\r\nLPSV\r\n"),
		[]byte("220-hi\r\n220 hi\r\n331 pw\r\n200-a\r\n b\r\n200 c\r\n229 (|||5|)\r\n200 ok\r\n227 x (198,18,0,2,195,80)\r\n200 N\r\n200 N\r\n"), uint16(300), uint8(1))
	f.Add([]byte("EPSV\r\nEPSV\r\nEPSV ALL\r\nAUTH TLS\r\nEPRT |2|fd00:64::2|50000|\r\n"),
		[]byte("220 hi\r\n227 (198,18,0,2,195,80)\r\n229 ok (|||50000|)\r\n229 ok (|||50001|)\r\n200 ok\r\n234 go\r\n\x16\x03\x01\x00\x02hi"), uint16(5), uint8(2))
	f.Fuzz(func(t *testing.T, client, server []byte, cut uint16, flags uint8) {
		if len(client) > 4096 || len(server) > 4096 {
			return
		}
		cfg := &Config{NAT64EPSVToPASV: flags&1 != 0, NAT64KeepEPRT: flags&2 != 0, AllowLowPorts: flags&4 != 0}
		h := &harness{c: NewControl(cfg, nat64Tuples()), nat: &fakeNAT{public: netip.MustParseAddr("198.19.64.1"), refuse: flags&8 != 0}}
		mss := uint16(1460)
		if flags&16 != 0 {
			mss = 100
		}
		h.seg(conntrack.Original, 999, "", true, false)
		h.c.Segment(&Segment{Dir: conntrack.Reply, Seq: 4999, SYN: true, MSS: mss}, &h.led[1], h.nat)
		streams := [2][]byte{client, server}
		base := [2]uint32{1000, 5000}
		var tx [2][]byte // the translated streams as delivered
		step := [2]int{int(cut%251) + 1, int(cut/251%199) + 1}
		var last [2][]byte
		var lastSeq [2]uint32
		// deliver checks that output lands where the stream ends.
		deliver := func(d conntrack.Dir, seq uint32, p []byte, r Result, fresh bool) {
			t.Helper()
			var out []byte
			var at uint32
			switch r.Action {
			case Drop:
				return
			case Pass:
				out, at = p, h.led[d].Seq(seq)
			case Replace:
				out, at = r.Payload, h.led[d].Seq(r.Seq)
				if len(out) > len(p)+MaxLine+4*maxAnnounceText {
					t.Fatalf("%v: %d bytes out of %d", d, len(out), len(p))
				}
			}
			pos := int(at - h.led[d].Seq(base[d]))
			if fresh {
				if pos != len(tx[d]) {
					t.Fatalf("%v: output at %d, stream ends at %d (%+v)", d, pos, len(tx[d]), r)
				}
				tx[d] = append(tx[d], out...)
				return
			}
			if pos < 0 || pos+len(out) > len(tx[d]) || !bytes.Equal(tx[d][pos:pos+len(out)], out) {
				t.Fatalf("%v: retransmission %q at %d differs from what was delivered", d, out, pos)
			}
		}
		for round := 0; round < 20000; round++ {
			progress := false
			for d := conntrack.Original; d <= conntrack.Reply; d++ {
				s := &h.c.dir[d]
				off := int(s.next - base[d])
				if off < 0 || off > len(streams[d]) {
					t.Fatalf("%v: next expected byte %d outside the stream", d, off)
				}
				if off == len(streams[d]) {
					continue
				}
				progress = true
				n := min(step[d], len(streams[d])-off)
				p := streams[d][off : off+n]
				seq := base[d] + uint32(off)
				r := h.c.Segment(&Segment{Dir: d, Seq: seq, Payload: p}, &h.led[d], h.nat)
				if r.Action == Drop && r.Events&EvMapFailed != 0 {
					// the bytes were taken but not delivered: the sender
					// retransmits from the first byte not acknowledged
					acked := h.led[d].Ack(h.led[d].Seq(base[d]) + uint32(len(tx[d])))
					seq = acked
					p = streams[d][acked-base[d] : s.next-base[d]]
					r = h.c.Segment(&Segment{Dir: d, Seq: seq, Payload: p}, &h.led[d], h.nat)
				}
				deliver(d, seq, p, r, true)
				if int(s.next-base[d]) <= off {
					t.Fatalf("%v: no byte taken at %d: %+v", d, off, r)
				}
				if h.c.n64.qn > pendingCap {
					t.Fatalf("FIFO holds %d", h.c.n64.qn)
				}
				if (r.Action == Pass || r.Action == Replace && r.Seq == seq) && r.Events&EvTruncated == 0 && len(s.held) == 0 {
					last[d], lastSeq[d] = p, seq
				} else {
					last[d] = nil
				}
				if last[d] != nil && (cut>>uint(d))&3 == 0 {
					r := h.c.Segment(&Segment{Dir: d, Seq: lastSeq[d], Payload: last[d]}, &h.led[d], h.nat)
					if r.Action == Drop {
						t.Fatalf("%v: retransmission dropped: %+v", d, r)
					}
					deliver(d, lastSeq[d], last[d], r, false)
				}
			}
			if !progress {
				return
			}
		}
		t.Fatal("no progress")
	})
}
