package frag

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const sec = int64(time.Second)

// udp4 builds an IPv4 UDP datagram of n payload bytes from 198.18.0.2 to
// 198.19.0.1 with Identification id.
func udp4(n int, id uint16, src byte) []byte {
	b := make([]byte, 20+8+n)
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], id)
	copy(b[12:], []byte{198, 18, 0, src})
	copy(b[16:], []byte{198, 19, 0, 1})
	binary.BigEndian.PutUint16(b[10:], ipv4Checksum(b[:20]))
	binary.BigEndian.PutUint16(b[20:], 4000)
	binary.BigEndian.PutUint16(b[22:], 7)
	binary.BigEndian.PutUint16(b[24:], uint16(8+n))
	for i := range n {
		b[28+i] = byte(i*7 + int(id))
	}
	return b
}

// udp6 builds an IPv6 UDP datagram of n payload bytes from fd00::src to
// 2001:db8::1, with a Hop-by-Hop header first when hbh.
func udp6(n int, src byte, hbh bool) []byte {
	ext := 0
	if hbh {
		ext = 8
	}
	b := make([]byte, 40+ext+8+n)
	b[0], b[7] = 0x60, 64
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	b[8], b[9], b[23] = 0xfd, 0, src
	b[24], b[25], b[26], b[27], b[39] = 0x20, 0x01, 0x0d, 0xb8, 1
	b[6] = 17
	if hbh {
		b[6] = 0
		b[40] = 17 // Next Header; length 0; PadN of 6
		b[42], b[43] = 1, 4
	}
	u := b[40+ext:]
	binary.BigEndian.PutUint16(u[0:], 4000)
	binary.BigEndian.PutUint16(u[2:], 7)
	binary.BigEndian.PutUint16(u[4:], uint16(8+n))
	for i := range n {
		u[8+i] = byte(i * 13)
	}
	return b
}

func mustAdd(t *testing.T, r *Reassembler, f []byte, now int64, want Reason) Datagram {
	t.Helper()
	out := make([]byte, 0, 70000)
	dg, got := r.Add(f, now, out)
	if got != want {
		t.Fatalf("Add: %v, want %v", got, want)
	}
	return dg
}

// TestReassembleInAndOutOfOrder: RFC 4787 REQ-14 and RFC 6146 §3.4 — a
// datagram cut in fragments comes back whole, byte for byte, whatever the
// order they arrive in, for IPv4 and for IPv6 (with a Hop-by-Hop header in
// the unfragmentable part); the original boundaries are reported.
func TestReassembleInAndOutOfOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dgram []byte
		frags func([]byte) [][]byte
	}{
		{"ipv4", udp4(3000, 77, 2), func(d []byte) [][]byte { return Split4(d, Plan(len(d)-20, nil, 1480), 77, false) }},
		{"ipv6", udp6(3000, 2, false), func(d []byte) [][]byte { return Split6(d, Plan(len(d)-40, nil, 1232), 0xabcdef01) }},
		{"ipv6-hbh", udp6(3000, 2, true), func(d []byte) [][]byte { return Split6(d, Plan(len(d)-48, nil, 1232), 9) }},
	} {
		frags := tc.frags(tc.dgram)
		if len(frags) != 3 {
			t.Fatalf("%s: %d fragments", tc.name, len(frags))
		}
		for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}, {2, 0, 1}} {
			r := New(Config{})
			var dg Datagram
			for i, k := range order {
				want := Held
				if i == len(order)-1 {
					want = Complete
				}
				dg = mustAdd(t, r, frags[k], sec, want)
			}
			if !bytes.Equal(dg.Packet, tc.dgram) {
				t.Fatalf("%s order %v: reassembled datagram differs", tc.name, order)
			}
			if len(dg.Sizes) != 3 || dg.MaxFragment != len(frags[0]) || r.Len() != 0 || r.Bytes() != 0 {
				t.Fatalf("%s order %v: sizes %v max %d, %d left, %d bytes", tc.name, order, dg.Sizes, dg.MaxFragment, r.Len(), r.Bytes())
			}
			again := Split4(dg.Packet, dg.Sizes, 77, false)
			if tc.dgram[0]>>4 == 6 {
				again = Split6(dg.Packet, dg.Sizes, dg.ID)
			}
			for i := range again {
				if !bytes.Equal(again[i], frags[i]) {
					t.Fatalf("%s: fragment %d cut again on the reported boundaries differs", tc.name, i)
				}
			}
		}
	}
}

// TestOverlapDiscardsDatagram: RFC 5722 §4 — an overlapping fragment
// discards the whole datagram and the fragments still to come; an exact
// duplicate is dropped alone.
func TestOverlapDiscardsDatagram(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		d := udp4(3000, 5, 2)
		frags := Split4(d, []int{1480, 1480, 48}, 5, false)
		other := Split4(d, []int{1000, 2008}, 5, false) // second fragment starts at 1000: overlaps the first
		if v6 {
			d = udp6(3000, 2, false)
			frags = Split6(d, []int{1232, 1232, 544}, 5)
			other = Split6(d, []int{1000, 2008}, 5)
		}
		r := New(Config{})
		mustAdd(t, r, frags[0], sec, Held)
		mustAdd(t, r, frags[0], sec, Duplicate)
		mustAdd(t, r, other[1], sec, Overlap)
		mustAdd(t, r, frags[1], sec, Discarded)
		mustAdd(t, r, frags[2], sec, Discarded)
		if r.Bytes() != overhead {
			t.Fatalf("v6 %v: %d bytes held after the overlap", v6, r.Bytes())
		}
		// After the timeout, the same ID reassembles again.
		later := 100 * sec
		mustAdd(t, r, frags[2], later, Held)
		mustAdd(t, r, frags[0], later, Held)
		if dg := mustAdd(t, r, frags[1], later, Complete); !bytes.Equal(dg.Packet, d) {
			t.Fatalf("v6 %v: datagram differs after the discard expired", v6)
		}
		if r.Stats.Count[Overlap].Load() != 1 || r.Stats.Count[Discarded].Load() != 2 || r.Stats.Count[Duplicate].Load() != 1 || r.Stats.Count[Timeout].Load() != 1 {
			t.Fatalf("v6 %v: counters %v", v6, counts(r))
		}
	}
}

func counts(r *Reassembler) map[string]uint64 {
	m := map[string]uint64{}
	for _, x := range Reasons() {
		if n := r.Stats.Count[x].Load(); n != 0 {
			m[x.String()] = n
		}
	}
	return m
}

// TestTimeout: RFC 6146 §3.4 (at least FRAGMENT_MIN), RFC 791 §3.2 (15 s)
// and RFC 8200 §4.5 (60 s): fragments wait for the rest for the family's
// timeout from the first one, and not longer.
func TestTimeout(t *testing.T) {
	r := New(Config{})
	c := r.Config()
	if c.Timeout4 != 15*time.Second || c.Timeout6 != 60*time.Second || New(Config{Timeout4: time.Second}).Config().Timeout4 != MinTimeout {
		t.Fatalf("timeouts %v %v", c.Timeout4, c.Timeout6)
	}
	d4, d6 := udp4(3000, 1, 2), udp6(3000, 2, false)
	f4 := Split4(d4, Plan(3008, nil, 1480), 1, false)
	f6 := Split6(d6, Plan(3008, nil, 1232), 1)
	mustAdd(t, r, f4[0], 0, Held)
	mustAdd(t, r, f6[0], 0, Held)
	mustAdd(t, r, f4[1], 14*sec, Held)
	mustAdd(t, r, f6[1], 14*sec, Held)
	if n := r.Expire(15 * sec); n != 1 || r.Len() != 1 {
		t.Fatalf("at 15 s: %d expired, %d left", n, r.Len())
	}
	mustAdd(t, r, f4[2], 15*sec, Held) // a new datagram: the first two are gone
	if dg := mustAdd(t, r, f6[2], 29*sec, Complete); !bytes.Equal(dg.Packet, d6) {
		t.Fatal("IPv6 datagram differs")
	}
	if n := r.Expire(31 * sec); n != 1 || r.Len() != 0 || r.Stats.Count[Timeout].Load() != 2 {
		t.Fatalf("at 31 s: %d expired, %d left, counters %v", n, r.Len(), counts(r))
	}
}

// TestCaps: RFC 4787 REQ-14a and RFC 6146 §3.4 — one source cannot hold
// more than its share; the global caps evict the oldest datagram, so a
// flood never blocks new datagrams for long; memory is given back.
func TestCaps(t *testing.T) {
	r := New(Config{MaxPerSource: 2, MaxDatagrams: 3, MaxBytes: 1 << 20})
	first := func(id uint16, src byte) []byte {
		return Split4(udp4(3000, id, src), Plan(3008, nil, 1480), id, false)[0]
	}
	mustAdd(t, r, first(1, 2), sec, Held)
	mustAdd(t, r, first(2, 2), sec, Held)
	mustAdd(t, r, first(3, 2), sec, SourceLimit)
	mustAdd(t, r, first(4, 3), sec, Held)
	mustAdd(t, r, first(5, 4), sec, Held) // evicts id 1, the oldest
	if r.Len() != 3 || r.Stats.Count[Evicted].Load() != 1 {
		t.Fatalf("%d datagrams, counters %v", r.Len(), counts(r))
	}
	// Source 2 holds one datagram now: it may start another.
	mustAdd(t, r, first(6, 2), sec, Held)

	b := New(Config{MaxBytes: 4000})
	mustAdd(t, b, first(1, 2), sec, Held)
	mustAdd(t, b, first(2, 3), sec, Held) // 2 x (1480 + 256) fits
	mustAdd(t, b, first(3, 4), sec, Held) // evicts the first
	if b.Len() != 2 || b.Bytes() > 4000 || b.Stats.Count[Evicted].Load() != 1 {
		t.Fatalf("%d datagrams, %d bytes, counters %v", b.Len(), b.Bytes(), counts(b))
	}
	p := New(Config{MaxBytesPerSource: 3000})
	f := Split4(udp4(3000, 9, 2), Plan(3008, nil, 1480), 9, false)
	mustAdd(t, p, f[0], sec, Held)
	mustAdd(t, p, f[1], sec, SourceLimit)
	// 8 bytes at offset 60000 cost the buffer up to there.
	far := bytes.Clone(f[1][:28])
	binary.BigEndian.PutUint16(far[2:], 28)
	binary.BigEndian.PutUint16(far[6:], 0x2000|60000/8)
	far[10], far[11] = 0, 0
	binary.BigEndian.PutUint16(far[10:], ipv4Checksum(far[:20]))
	q := New(Config{MaxBytesPerSource: 50000})
	mustAdd(t, q, far, sec, SourceLimit)
	if q.Bytes() > 50000 {
		t.Fatalf("%d bytes charged", q.Bytes())
	}
	q2 := New(Config{})
	mustAdd(t, q2, far, sec, Held)
	if q2.Bytes() < 60008 {
		t.Fatalf("a fragment at offset 60000 charged %d bytes", q2.Bytes())
	}
}

// TestRefused: what is not a fragment, or a malformed one, is refused and
// counted, atomic fragments included (RFC 6946 §4: the caller processes
// them whole).
func TestRefused(t *testing.T) {
	r := New(Config{})
	whole := udp4(100, 1, 2)
	mustAdd(t, r, whole, sec, NotFragment)
	atomic6 := Split6(udp6(100, 2, false), []int{108}, 1)[0]
	atomic6[40+3] = 0 // offset 0, M 0
	mustAdd(t, r, atomic6, sec, NotFragment)
	odd := Split4(udp4(3000, 2, 2), []int{1484, 1524}, 2, false)
	if odd != nil {
		t.Fatal("Split4 accepted a plan with an unaligned offset")
	}
	f := Split4(udp4(3000, 3, 2), []int{1480, 1528}, 3, false)
	short := bytes.Clone(f[0][:1000])
	binary.BigEndian.PutUint16(short[2:], 1000-4) // 976 data bytes, with more to follow... 976 % 8 == 0
	short[10], short[11] = 0, 0
	binary.BigEndian.PutUint16(short[10:], ipv4Checksum(short[:20]))
	bad := bytes.Clone(short)
	binary.BigEndian.PutUint16(bad[2:], 1000-3) // 977 bytes with MF: not a multiple of 8
	bad[10], bad[11] = 0, 0
	binary.BigEndian.PutUint16(bad[10:], ipv4Checksum(bad[:20]))
	mustAdd(t, r, bad, sec, BadLength)
	// A last fragment that ends before data already held.
	g := Split4(udp4(3000, 3, 2), []int{1480, 1480, 48}, 3, false)
	mustAdd(t, r, g[1], sec, Held)
	h := Split4(udp4(1472, 3, 2), []int{8, 1472}, 3, false)
	mustAdd(t, r, h[1], sec, Inconsistent)
	mustAdd(t, r, g[0], sec, Held) // the datagram was discarded: this one starts anew
	mustAdd(t, r, []byte{0x45}, sec, Malformed)
}

// TestRandomOrderRoundTrip cuts random datagrams on random boundaries and
// feeds the fragments in a random order, duplicates included.
func TestRandomOrderRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := New(Config{})
	for i := range 300 {
		v6 := i%2 == 1
		n := 16 + rng.IntN(9000)
		d := udp4(n, uint16(i), 2)
		total := len(d) - 20
		if v6 {
			d = udp6(n, 2, i%4 == 1)
			un, _, _ := Unfragmentable(d)
			total = len(d) - un
		}
		var plan []int
		for left := total; left > 0; {
			s := min(left, 8*(1+rng.IntN(200)))
			plan = append(plan, s)
			left -= s
		}
		frags := Split4(d, plan, uint16(i), false)
		if v6 {
			frags = Split6(d, plan, uint32(i))
		}
		if len(frags) < 2 {
			continue
		}
		order := rng.Perm(len(frags))
		order = append(order[:len(order)-1], order[rng.IntN(len(order)-1)], order[len(order)-1])
		var dg Datagram
		for j, k := range order {
			out := make([]byte, 0, 70000)
			var res Reason
			dg, res = r.Add(frags[k], int64(i)*sec, out)
			if j < len(order)-1 && res != Held && res != Duplicate || j == len(order)-1 && res != Complete {
				t.Fatalf("datagram %d fragment %d of %d: %v", i, j, len(order), res)
			}
		}
		if !bytes.Equal(dg.Packet, d) {
			t.Fatalf("datagram %d differs", i)
		}
	}
	if r.Len() != 0 || r.Bytes() != 0 {
		t.Fatalf("%d datagrams, %d bytes left", r.Len(), r.Bytes())
	}
}

// TestPlan: the original boundaries are kept when they still add up (cut
// further at maxChunk); after a length change, pieces of maxChunk
// (rounded down to 8).
func TestPlan(t *testing.T) {
	for _, c := range []struct {
		total    int
		sizes    []int
		maxChunk int
		want     []int
	}{
		{3008, []int{1480, 1480, 48}, 1480, []int{1480, 1480, 48}},
		{3008, []int{1480, 1480, 48}, 1232, []int{1232, 248, 1232, 248, 48}},
		{3020, []int{1480, 1480, 48}, 1483, []int{1480, 1480, 60}},
		{100, []int{50, 50}, 1480, []int{100}},
		{20, nil, 3, []int{8, 8, 4}},
	} {
		if got := Plan(c.total, c.sizes, c.maxChunk); !slices.Equal(got, c.want) {
			t.Errorf("Plan(%d, %v, %d) = %v, want %v", c.total, c.sizes, c.maxChunk, got, c.want)
		}
	}
}
