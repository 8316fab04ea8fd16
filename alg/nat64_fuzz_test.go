package alg

import (
	"testing"

	"github.com/natalg/natalg/conntrack"
)

// FuzzNAT64Control runs arbitrary client and server streams, cut at
// arbitrary places and interleaved, through the gateway of a NAT64 flow,
// the way the peers would send them (see wire), now and then retransmitting
// a segment. It checks that nothing panics, that a reset (a stand-in NOOP
// not answered 200, RFC 6384 §12) ends the session, that the translated streams
// have no gap and no overlap, that retransmissions carry the very bytes
// already delivered, that every byte is taken in the end and that the
// gateway's state stays bounded.
func FuzzNAT64Control(f *testing.F) {
	f.Add([]byte("EPRT |2|fd00:64::2|50000|\r\nEPSV\r\nALGS STATUS64\r\nLPRT 1,2\r\nEPSV\r\n"),
		[]byte("220 hi\r\n200 ok\r\n227 Entering Passive Mode (198,18,0,2,195,80)\r\n500 no\r\n200 NOOP\r\n200 NOOP\r\n227 (198,18,0,2,4,1)\r\n"), uint16(7), uint8(0))
	f.Add([]byte("USER a\r\nALGS DISABLE64\r\nEPSV\r\nALGS ENABLE64\r\nepsv 2\r\nPORT 1,2,3,4,5,6\r\nLPSV\r\n"),
		[]byte("220-hi\r\n220 hi\r\n331 pw\r\n200-a\r\n b\r\n200 c\r\n229 (|||5|)\r\n200 ok\r\n227 x (198,18,0,2,195,80)\r\n200 N\r\n200 N\r\n"), uint16(300), uint8(1))
	f.Add([]byte("EPSV\r\nEPSV\r\nEPSV ALL\r\nAUTH TLS\r\nEPRT |2|fd00:64::2|50000|\r\n"),
		[]byte("220 hi\r\n227 (198,18,0,2,195,80)\r\n229 ok (|||50000|)\r\n229 ok (|||50001|)\r\n200 ok\r\n234 go\r\n\x16\x03\x01\x00\x02hi"), uint16(5), uint8(2))
	f.Add([]byte("\xff\xfb\x18USER a\r\n\xff\xfa\x18\x00x\xff\xf0EPSV ALL\r\nEPSV 1\r\n\xff\xf4\xff\xf2ABOR\r\nALGS\r\n"),
		[]byte("220 hi\r\n\xff\xfd\x01331 pw\r\n200 NOOP\r\n500 NOOP?\r\n226 ok\r\n200 N\r\n"), uint16(3), uint8(0))
	f.Add([]byte("USER a\r\nPASV\r\nPORT 198,18,7,9,195,80\r\nEPSV\r\nEPRT |1|198.18.7.9|50000|\r\nPASV\r\n"),
		[]byte("220 hi\r\n331 pw\r\n229 ok (|||50000|)\r\n200 ok\r\n229 ok (|||50001|)\r\n200 ok\r\n500 no\r\n"), uint16(9), uint8(32))
	f.Fuzz(func(t *testing.T, client, server []byte, cut uint16, flags uint8) {
		if len(client) > 4096 || len(server) > 4096 {
			return
		}
		cfg := &Config{NAT64EPSVProbe: flags&1 != 0, NAT64KeepEPRT: flags&2 != 0, AllowLowPorts: flags&4 != 0}
		mss := uint16(1460)
		if flags&16 != 0 {
			mss = 100
		}
		tuples := nat64Tuples()
		if flags&32 != 0 {
			tuples = rev64Tuples() // an IPv4 client, an IPv6 server (rev64.go)
		}
		w := newWireTuples(t, cfg, tuples, mss, client, server, flags&8 != 0)
		step := [2]int{int(cut%251) + 1, int(cut/251%199) + 1}
		for {
			sent := false
			for d := conntrack.Original; d <= conntrack.Reply; d++ {
				if w.send(d, step[d], len(w.streams[d]), (cut>>uint(d))&3 == 0) {
					sent = true
				}
			}
			if !sent {
				break
			}
		}
		for d := range 2 {
			if !w.reset && w.taken(conntrack.Dir(d)) != len(w.streams[d]) {
				t.Fatalf("%v stopped at %d of %d", conntrack.Dir(d), w.taken(conntrack.Dir(d)), len(w.streams[d]))
			}
		}
	})
}
