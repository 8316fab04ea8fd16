package nat

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
)

// fuzzStateEngine is the configuration state files are loaded into: both
// families, a forward, FTP on, NAT64.
func fuzzStateEngine(t testing.TB) *Engine {
	fw, _ := ParseForward("tcp:21=198.18.0.2:21")
	e, err := New(Config{
		Inside:      []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16"), netip.MustParsePrefix("fd00:18::/64")},
		Public:      []netip.Addr{pubIP, netip.MustParseAddr("2001:db8:19::100")},
		Forwards:    []Forward{fw},
		NAT64Prefix: pfx64,
		NAT64Pool:   pool64,
		Conntrack:   conntrack.Config{MaxFlows: 64, MaxExpectations: 16},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// refs returns the sum of the bindings' reference counts.
func (m *portMap) refs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, b := range m.byInside {
		n += int(b.refs)
	}
	return n
}

// FuzzLoadState loads arbitrary bytes as a state file: never a panic; a
// file that loads leaves a consistent engine (one binding reference per
// restored flow that holds one and per expectation, NAT64 pool bindings
// included, all released when everything expires, packets processed
// without a panic). Each input is
// tried as it is and behind a valid header with a valid checksum, so that
// the fuzzer reaches the record decoder.
//
//	go test -run '^$' -fuzz FuzzLoadState -fuzztime 60s ./nat
func FuzzLoadState(f *testing.F) {
	// seeds: a SNAT FTP session with a grown PORT and its expectation, a
	// data connection, plain flows, a forwarded control connection; a
	// NAT64 FTP session with its EPRT become PORT and the expectation, then
	// an EPSV probe with both replies pending, a NAT64 UDP flow and an
	// echo (ICMPv6 to ICMP)
	e := fuzzStateEngine(f)
	for _, s := range []tcpSeg{
		{src: cli, dst: srv, seq: 1000, flags: fSYN, mss: 1460},
		{src: srv, dst: pubCli, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1460},
		{src: cli, dst: srv, seq: 1001, ack: 5001, flags: fACK},
		cmd(1001, portIn),
		cmd(1025, "PORT 198,18,0,2,1"),
		{src: ap("198.19.0.7:50123"), dst: netip.AddrPortFrom(pubIP, 21), seq: 100, flags: fSYN},
		{src: ap("[fd00:18::2]:40001"), dst: ap("[2001:db8:19::2]:80"), seq: 1, flags: fSYN},
		{src: ap("198.18.0.2:40002"), dst: ap("198.19.0.2:80"), seq: 1, flags: fFIN | fACK},
	} {
		e.processPacket(s.build(), t0)
	}
	pool := netip.AddrPortFrom(e.n64.addrs[e.n64.pick(cli6.Addr())], cli6.Port())
	for _, s := range []tcpSeg{
		{src: cli6, dst: srv6, seq: 1000, flags: fSYN, mss: 1440},
		{src: srv4, dst: pool, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1460},
		{src: cli6, dst: srv6, seq: 1001, ack: 5001, flags: fACK},
		{src: srv4, dst: pool, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"},
		{src: cli6, dst: srv6, seq: 1001, ack: 5009, flags: fACK | fPSH, payload: "EPRT |2|fd00:64::2|50000|\r\n"},
		{src: cli6, dst: srv6, seq: 1028, ack: 5009, flags: fACK | fPSH, payload: "EPSV\r\n"},
	} {
		e.processPacket(append(make([]byte, 0, 65535), s.build()...), t0)
	}
	e.processPacket(udpPkt(ap("[fd00:64::2]:5353"), ap("[2001:db8:64::c612:4002]:53"), "query", false), t0)
	e.processPacket(icmpEcho(cli6.Addr(), srv6.Addr(), false, 99), t0)
	var buf bytes.Buffer
	if err := e.SaveState(&buf); err != nil {
		f.Fatal(err)
	}
	if st, err := fuzzStateEngine(f).LoadState(bytes.NewReader(buf.Bytes()), t0); err != nil || st.Flows != 7 || st.FTP != 3 || st.Expectations != 2 {
		f.Fatalf("seed loads %+v, %v", st, err)
	}
	f.Add(buf.Bytes())
	if v1, err := os.ReadFile("testdata/state-v1.bin"); err == nil {
		f.Add(v1) // version 1, with NAT64 flows it skips
	} else {
		f.Fatal(err)
	}
	f.Add(buf.Bytes()[20 : buf.Len()-4])
	f.Add([]byte(stateMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		loadChecked(t, b)
		// the same bytes as the records of a well-formed file
		h := []byte(stateMagic)
		h = binary.BigEndian.AppendUint16(h, StateVersion)
		h = binary.BigEndian.AppendUint16(h, 0)
		h = binary.BigEndian.AppendUint64(h, uint64(t0.UnixNano()))
		h = append(h, b...)
		if len(b) >= 20 && bytes.HasPrefix(b, []byte(stateMagic)) {
			h = append(b[:len(b):len(b)], nil...)
			if len(h) >= 4 {
				h = h[:len(h)-4]
			}
		}
		h = binary.BigEndian.AppendUint32(h, crc32.Checksum(h, crcTable))
		loadChecked(t, h)
	})
}

// loadChecked loads b into a fresh engine and checks the engine after it.
func loadChecked(t *testing.T, b []byte) {
	e := fuzzStateEngine(t)
	st, err := e.LoadState(bytes.NewReader(b), t0)
	if err != nil {
		if st.Flows+st.Expectations != 0 || e.Table().Len() != 0 || e.Bindings() != 0 {
			t.Fatalf("failed load restored something: %v, %+v", err, st)
		}
		return
	}
	holding := 0
	e.Table().Range(func(f *conntrack.Flow) bool {
		if k := kindOf(f); k == kindSNAT || k == kindExpected || k == kind64 || k == kind64Expected {
			holding++
		}
		return true
	})
	if st.Flows != e.Table().Len() || st.Expectations != e.Table().ExpectationCount() || st.Bindings != e.Bindings() {
		t.Fatalf("stats %+v, table %d flows %d expectations %d bindings", st, e.Table().Len(), e.Table().ExpectationCount(), e.Bindings())
	}
	if r := e.ports.refs() + e.poolRefs(); r != holding+st.Expectations {
		t.Fatalf("binding references %d, want %d flows holding one + %d expectations", r, holding, st.Expectations)
	}
	// packets on what was restored
	var some []conntrack.Tuple
	e.Table().Range(func(f *conntrack.Flow) bool {
		some = append(some, f.Tuples[:]...)
		return len(some) < 8
	})
	for _, tu := range some {
		if tu.Proto != ipproto.TCP {
			continue
		}
		for _, p := range []string{"PORT 198,18,0,2,195,80\r\n", "227 Entering Passive Mode (198,18,0,2,234,96).\r\n", "x"} {
			s := tcpSeg{src: netip.AddrPortFrom(tu.Src, tu.SrcPort), dst: netip.AddrPortFrom(tu.Dst, tu.DstPort),
				seq: 1001, ack: 5009, flags: fACK | fPSH, payload: p}
			e.processPacket(append(make([]byte, 0, 2048), s.build()...), t0) // room for NAT64's 20 bytes
		}
	}
	e.Expire(t0.Add(24 * time.Hour))
	if e.Table().Len() != 0 || e.Table().ExpectationCount() != 0 || e.Bindings() != 0 {
		t.Fatalf("after expiry: %d flows, %d expectations, %d bindings", e.Table().Len(), e.Table().ExpectationCount(), e.Bindings())
	}
}
