package nat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/natalg/natalg/nat/checksum"
	"github.com/natalg/natalg/nat/frag"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

var (
	cli6NAT = ap("[fd00:1::2]:40000")
	srv6NAT = ap("[2001:db8:2::2]:7")
	pub6    = netip.MustParseAddr("2001:db8:ff::1")
)

// dualEngine masquerades 198.18.0.0/16 to pubIP and fd00:1::/64 to pub6,
// and runs NAT64 (the network-specific pfx64 to pool64) with the given lowest IPv6 MTU.
func dualEngine(t *testing.T, mtu6 int) *Engine {
	t.Helper()
	e, err := New(Config{
		Inside:      []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16"), netip.MustParsePrefix("fd00:1::/64")},
		Public:      []netip.Addr{pubIP, pub6},
		NAT64Prefix: pfx64, NAT64Pool: pool64, NAT64MTU6: mtu6,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// bigUDP builds a UDP datagram of n payload bytes (a pattern) with every
// checksum right; an IPv4 one has DF as df and Identification 0x1234.
func bigUDP(src, dst netip.AddrPort, n int, df bool) []byte {
	l4 := make([]byte, 8+n)
	binary.BigEndian.PutUint16(l4[0:], src.Port())
	binary.BigEndian.PutUint16(l4[2:], dst.Port())
	binary.BigEndian.PutUint16(l4[4:], uint16(8+n))
	for i := range n {
		l4[8+i] = byte(i*31 + i>>8)
	}
	b := ipWrap(src.Addr(), dst.Addr(), ipproto.UDP, l4)
	if src.Addr().Is4() && !df {
		b[6] = 0
		b[10], b[11] = 0, 0
		binary.BigEndian.PutUint16(b[10:], checksum.Checksum(b[:20], 0))
	}
	return b
}

// run passes each packet through ProcessBatch alone, in order, and
// returns every packet sent (Out, then More) and the verdicts.
func run(e *Engine, pkts [][]byte) (sent [][]byte, verdicts []Verdict) {
	ps := NewBatch(1)
	for _, b := range pkts {
		ps[0].N = copy(ps[0].Buf[:cap(ps[0].Buf)], b)
		ps[0].Time = t0
		e.ProcessBatch(ps)
		verdicts = append(verdicts, ps[0].Verdict)
		if ps[0].Verdict == Accept {
			sent = append(sent, bytes.Clone(ps[0].Out))
			for _, m := range ps[0].More {
				sent = append(sent, bytes.Clone(m))
			}
		}
	}
	return sent, verdicts
}

// whole reassembles fragments the engine sent (or returns a lone whole
// packet) and checks every checksum of the result.
func whole(t *testing.T, frags [][]byte) seen {
	t.Helper()
	if len(frags) == 1 {
		return decodeOut(t, frags[0])
	}
	r := frag.New(frag.Config{})
	for i, f := range frags {
		dg, res := r.Add(f, 0, nil)
		if i < len(frags)-1 && res != frag.Held || i == len(frags)-1 && res != frag.Complete {
			t.Fatalf("output fragment %d of %d: %v", i, len(frags), res)
		}
		if res == frag.Complete {
			return decodeOut(t, dg.Packet)
		}
	}
	return seen{}
}

func reverse(fs [][]byte) [][]byte {
	out := make([][]byte, len(fs))
	for i, f := range fs {
		out[len(fs)-1-i] = f
	}
	return out
}

// TestFragmentsNAT44: RFC 4787 REQ-14 — a 3000-byte UDP datagram in three
// fragments, sent out of order, crosses the NAT both ways, IPv4 and IPv6:
// the fragments are held until the last, which releases the datagram
// translated, cut again on the original boundaries with the original
// Identification; reassembled, it carries the same payload with right
// checksums.
func TestFragmentsNAT44(t *testing.T) {
	e := dualEngine(t, 0)
	for _, tc := range []struct {
		name     string
		cli, srv netip.AddrPort
		pub      netip.Addr
	}{
		{"ipv4", ap("198.18.0.2:40000"), ap("198.19.0.2:7"), pubIP},
		{"ipv6", cli6NAT, srv6NAT, pub6},
	} {
		out := bigUDP(tc.cli, tc.srv, 3000, false)
		var frags [][]byte
		if tc.cli.Addr().Is4() {
			frags = frag.Split4(out, []int{1480, 1480, 48}, 0x1234, false)
		} else {
			frags = frag.Split6(out, []int{1232, 1232, 544}, 0xfeed0001)
		}
		sent, vs := run(e, reverse(frags))
		if vs[0] != Held || vs[1] != Held || vs[2] != Accept || len(sent) != 3 {
			t.Fatalf("%s outbound: verdicts %v, %d sent", tc.name, vs, len(sent))
		}
		for i, f := range sent {
			if len(f) != len(frags[i]) {
				t.Errorf("%s: fragment %d is %d bytes, was %d", tc.name, i, len(f), len(frags[i]))
			}
			if tc.cli.Addr().Is4() && binary.BigEndian.Uint16(f[4:]) != 0x1234 || tc.cli.Addr().Is6() && binary.BigEndian.Uint32(f[44:]) != 0xfeed0001 {
				t.Errorf("%s: fragment %d lost the Identification", tc.name, i)
			}
		}
		got := whole(t, sent)
		if got.Src != tc.pub || got.SrcPort != 40000 || got.Dst != tc.srv.Addr() || got.payload != string(out[len(out)-3000:]) {
			t.Fatalf("%s outbound: %v:%d -> %v, %d payload bytes", tc.name, got.Src, got.SrcPort, got.Dst, len(got.payload))
		}
		// The answer, fragmented too, in order.
		back := bigUDP(tc.srv, netip.AddrPortFrom(tc.pub, 40000), 3000, false)
		if tc.cli.Addr().Is4() {
			frags = frag.Split4(back, []int{1480, 1480, 48}, 0x4321, false)
		} else {
			frags = frag.Split6(back, []int{1232, 1232, 544}, 77)
		}
		sent, vs = run(e, frags)
		if vs[2] != Accept || len(sent) != 3 {
			t.Fatalf("%s inbound: verdicts %v, %d sent", tc.name, vs, len(sent))
		}
		if got := whole(t, sent); got.Dst != tc.cli.Addr() || got.DstPort != 40000 || got.payload != string(back[len(back)-3000:]) {
			t.Fatalf("%s inbound: to %v:%d, %d payload bytes", tc.name, got.Dst, got.DstPort, len(got.payload))
		}
	}
	s := e.Stats.Snapshot()
	if s.Reassembled != 4 || s.FragmentsOut != 12 || s.Fragments["held"] != 8 || s.Fragments["complete"] != 4 {
		t.Fatalf("counters: reassembled %d, sent %d, %v", s.Reassembled, s.FragmentsOut, s.Fragments)
	}
	if d, b := e.FragmentsHeld(); d != 0 || b != 0 {
		t.Fatalf("%d datagrams, %d bytes still held", d, b)
	}
}

// TestFragmentsSingleOutput: through Process (one packet out per packet
// in, as an NFQUEUE verdict), the datagram leaves whole, translated, for
// the kernel to fragment.
func TestFragmentsSingleOutput(t *testing.T) {
	e := dualEngine(t, 0)
	out := bigUDP(ap("198.18.0.2:40000"), ap("198.19.0.2:7"), 3000, false)
	frags := frag.Split4(out, []int{1480, 1480, 48}, 0x1234, false)
	for i, f := range frags {
		v, o := e.processPacket(bytes.Clone(f), t0)
		if i < 2 && v != Held || i == 2 && v != Accept {
			t.Fatalf("fragment %d: %v", i, v)
		}
		if i == 2 {
			got := decodeOut(t, o)
			if got.Src != pubIP || len(o) != len(out) || got.payload != string(out[28:]) || header.IPv4(o).DontFragment() {
				t.Fatalf("whole datagram: %v, %d bytes", got.Src, len(o))
			}
		}
	}
}

// TestFragmentsNAT64: RFC 7915 §5.1.1 — IPv6 fragments leave as IPv4
// fragments of the same data (Identification the low 16 bits, DF clear);
// §4.1 — IPv4 fragments leave as IPv6 fragments no larger than
// lowest-ipv6-mtu, and so does a whole IPv4 packet with DF clear larger
// than it (1280 by default, or configured), while one with DF set is not
// fragmented. Payloads arrive intact both ways.
func TestFragmentsNAT64(t *testing.T) {
	for _, mtu6 := range []int{0, 1500} {
		e := dualEngine(t, mtu6)
		want6 := max(mtu6, 1280)
		cli := ap("[fd00:64::2]:40000")
		srv := ap("[2001:db8:64::c612:4002]:7")
		out := bigUDP(cli, srv, 3000, false)
		frags := frag.Split6(out, []int{1232, 1232, 544}, 0xabcd1234)
		sent, vs := run(e, frags)
		if vs[2] != Accept || len(sent) != 3 {
			t.Fatalf("6to4: verdicts %v, %d sent", vs, len(sent))
		}
		for i, f := range sent {
			ip := header.IPv4(f)
			if ip.ID() != 0x1234 || ip.DontFragment() || ip.MoreFragments() != (i < 2) || int(ip.FragmentOffset()) != 1232*i || len(f) != 20+[]int{1232, 1232, 544}[i] {
				t.Fatalf("6to4 fragment %d: ID %#x DF %v MF %v offset %d, %d bytes", i, ip.ID(), ip.DontFragment(), ip.MoreFragments(), ip.FragmentOffset(), len(f))
			}
		}
		got := whole(t, sent)
		if got.Src.Is6() || got.Dst != srv4Raw || got.payload != string(out[len(out)-3000:]) {
			t.Fatalf("6to4: %v -> %v, %d payload bytes", got.Src, got.Dst, len(got.payload))
		}
		pool, port := got.Src, got.SrcPort
		back := bigUDP(netip.AddrPortFrom(srv4Raw, 7), netip.AddrPortFrom(pool, port), 3000, false)
		// RFC 6146 §3.4: a fragmented IPv4 UDP datagram without checksum
		// is reassembled and gets its checksum computed (whole checks it).
		noSum := bytes.Clone(back)
		noSum[26], noSum[27] = 0, 0
		for _, in := range [][][]byte{
			frag.Split4(back, []int{1480, 1480, 48}, 0x5678, false), // fragments
			{back}, // whole, DF clear
			frag.Split4(noSum, []int{1480, 1480, 48}, 0x5678, false),
		} {
			sent, _ = run(e, reverse(in))
			if len(sent) < 3 {
				t.Fatalf("4to6 (mtu %d): %d sent", want6, len(sent))
			}
			for i, f := range sent {
				if len(f) > want6 || binary.BigEndian.Uint32(f[44:]) != 0x5678 && len(in) > 1 || binary.BigEndian.Uint32(f[44:]) != 0x1234 && len(in) == 1 {
					t.Fatalf("4to6 (mtu %d) fragment %d: %d bytes, ID %#x", want6, i, len(f), binary.BigEndian.Uint32(f[44:]))
				}
			}
			if got := whole(t, sent); got.Dst != cli.Addr() || got.DstPort != 40000 || got.payload != string(back[len(back)-3000:]) {
				t.Fatalf("4to6: to %v:%d, %d payload bytes", got.Dst, got.DstPort, len(got.payload))
			}
		}
		// DF set: one IPv6 packet (the path answers with PTB if it must).
		df := bigUDP(netip.AddrPortFrom(srv4Raw, 7), netip.AddrPortFrom(pool, port), 1400, true)
		if sent, _ = run(e, [][]byte{df}); len(sent) != 1 || len(sent[0]) != 1400+48 {
			t.Fatalf("DF set: %d packets", len(sent))
		}
	}
}

// TestAtomicFragments: RFC 6946 §4 — an IPv6 packet with a Fragment header
// of offset 0 and M clear is processed as a whole packet, on NAT44 and on
// NAT64.
func TestAtomicFragments(t *testing.T) {
	e := dualEngine(t, 0)
	for _, tc := range []struct {
		cli, srv netip.AddrPort
	}{{cli6NAT, srv6NAT}, {ap("[fd00:64::2]:40001"), ap("[2001:db8:64::c612:4002]:7")}} {
		pkt := bigUDP(tc.cli, tc.srv, 100, false)
		atomic := frag.Split6(pkt, []int{108}, 99)[0]
		sent, vs := run(e, [][]byte{atomic})
		if len(sent) != 1 || vs[0] != Accept {
			t.Fatalf("atomic fragment to %v: %v", tc.srv, vs)
		}
		if got := decodeOut(t, sent[0]); got.payload != string(pkt[len(pkt)-100:]) || got.Dst == tc.srv.Addr() && tc.srv.Addr() != srv6NAT.Addr() {
			t.Fatalf("atomic fragment to %v: %v", tc.srv, got.Dst)
		}
	}
}

// TestFragmentTimeoutAndCounters: an incomplete datagram is dropped at its
// timeout (Engine.Expire) and counted; a fragment reassembly refuses is
// dropped as "fragment"; with NoReassembly every fragment is.
func TestFragmentTimeoutAndCounters(t *testing.T) {
	e := dualEngine(t, 0)
	out := bigUDP(ap("198.18.0.2:40000"), ap("198.19.0.2:7"), 3000, false)
	frags := frag.Split4(out, []int{1480, 1480, 48}, 9, false)
	if _, vs := run(e, frags[:2]); vs[1] != Held {
		t.Fatal(vs)
	}
	e.Expire(t0.Add(14 * time.Second))
	if d, _ := e.FragmentsHeld(); d != 1 {
		t.Fatalf("%d datagrams held at 14 s", d)
	}
	e.Expire(t0.Add(15 * time.Second))
	if d, b := e.FragmentsHeld(); d != 0 || b != 0 || e.Stats.Snapshot().Fragments["timeout"] != 1 {
		t.Fatalf("%d datagrams, %d bytes held at 15 s; %v", d, b, e.Stats.Snapshot().Fragments)
	}
	if _, vs := run(e, [][]byte{frags[0], frags[0]}); vs[1] != Drop || e.Stats.Dropped[DropFragment].Load() != 1 {
		t.Fatalf("duplicate: %v", vs)
	}
	off, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}, NoReassembly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, vs := run(off, frags[:1]); vs[0] != Drop {
		t.Fatalf("NoReassembly: %v", vs)
	}
	if _, err := New(Config{NAT64Prefix: pfx64, NAT64Pool: pool64, NAT64MTU6: 1000}); err == nil {
		t.Fatal("lowest IPv6 MTU 1000 accepted")
	}
}

// TestFragmentsConcurrent: two workers sharing one engine reassemble
// their own datagrams, interleaved (run with -race).
func TestFragmentsConcurrent(t *testing.T) {
	e := dualEngine(t, 0)
	done := make(chan int, 2)
	for w := range 2 {
		go func() {
			ps := NewBatch(1)
			ok := 0
			for i := range 100 {
				src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(w)}), uint16(40000+i))
				d := bigUDP(src, ap("198.19.0.2:7"), 2000, false)
				for j, f := range frag.Split4(d, []int{1480, 528}, uint16(i), false) {
					ps[0].N = copy(ps[0].Buf[:cap(ps[0].Buf)], f)
					ps[0].Time = t0
					e.ProcessBatch(ps)
					if j == 1 && ps[0].Verdict == Accept && len(ps[0].More) == 1 {
						ok++
					}
				}
			}
			done <- ok
		}()
	}
	if a, b := <-done, <-done; a != 100 || b != 100 {
		t.Fatalf("%d and %d datagrams of 100 went through", a, b)
	}
}

// TestFragmentsRewritten: a fragmented FTP PORT command is reassembled,
// rewritten by the gateway (4 bytes longer), and leaves cut into pieces no
// larger than the largest fragment received (the original boundaries no
// longer add up): 48 bytes of TCP in two fragments of 24.
func TestFragmentsRewritten(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	seg := cmd(1001, portIn).build() // 20 + 20 + 24 bytes
	seg[6] = 0                       // DF clear, as a fragmenting sender has it
	seg[10], seg[11] = 0, 0
	binary.BigEndian.PutUint16(seg[10:], checksum.Checksum(seg[:20], 0))
	// The first fragment carries the whole TCP header (a shorter one is
	// dropped as malformed: RFC 6146 §3.4 lets a NAT require it).
	frags := frag.Split4(seg, []int{24, 16, 4}, 0x77, false)
	sent, vs := run(e, frags)
	if vs[2] != Accept || len(sent) != 2 {
		t.Fatalf("verdicts %v, %d sent", vs, len(sent))
	}
	for i, f := range sent {
		if len(f) > 44 || binary.BigEndian.Uint16(f[4:]) != 0x77 {
			t.Fatalf("fragment %d: %d bytes (largest received 44), ID %#x", i, len(f), binary.BigEndian.Uint16(f[4:]))
		}
	}
	if got := whole(t, sent); got.payload != portOut || got.Src != pubIP {
		t.Fatalf("reassembled: %q from %v", got.payload, got.Src)
	}
}
