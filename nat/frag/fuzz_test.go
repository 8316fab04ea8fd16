package frag

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzReassemble feeds arbitrary packets (split from one input at 2-byte
// lengths), under small caps and advancing time, to a Reassembler.
// Properties: it never panics; every outcome is one of the Reasons; the
// bytes and datagrams held stay within the caps; a Complete datagram
// fits its buffer and parses as a whole IPv4 or IPv6 packet of the length
// its header says; after the timeouts nothing is held. Then the input's
// first packet, when it is a whole IPv4 or IPv6 datagram, is cut on
// 8-byte boundaries taken from the input and must come back byte for byte
// from its fragments fed in reverse order.
func FuzzReassemble(f *testing.F) {
	d4 := udp4(3000, 7, 2)
	d6 := udp6(2000, 2, true)
	seed := func(pkts ...[]byte) []byte {
		var b []byte
		for _, p := range pkts {
			b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
			b = append(b, p...)
		}
		return b
	}
	f4 := Split4(d4, []int{1480, 1480, 48}, 7, false)
	f6 := Split6(d6, []int{1000, 1008}, 9)
	f.Add(seed(f4[2], f4[0], f4[1]))
	f.Add(seed(f6[1], f6[0], f6[0]))
	f.Add(seed(d4))
	f.Add(seed(d6))
	f.Add(seed(f4[0], Split4(d4, []int{1000, 2008}, 7, false)[1], f4[1]))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := New(Config{MaxBytes: 8000, MaxDatagrams: 4, MaxPerSource: 3, MaxBytesPerSource: 6000})
		out := make([]byte, 0, 70000)
		var pkts [][]byte
		for b := in; len(b) >= 2; {
			n := int(binary.BigEndian.Uint16(b))
			b = b[2:]
			n = min(n, len(b))
			pkts = append(pkts, b[:n])
			b = b[n:]
		}
		now := int64(0)
		for i, p := range pkts {
			now += int64(i%3) * sec
			dg, res := r.Add(bytes.Clone(p), now, out)
			if res >= numReasons {
				t.Fatalf("outcome %d", res)
			}
			if b := r.Bytes(); b > 8000 || r.Len() > 4 {
				t.Fatalf("holding %d bytes in %d datagrams", b, r.Len())
			}
			if res == Complete {
				checkWhole(t, dg)
			}
		}
		r.Expire(now + 61*sec)
		if r.Len() != 0 || r.Bytes() != 0 {
			t.Fatalf("after the timeouts: %d datagrams, %d bytes", r.Len(), r.Bytes())
		}
		if len(pkts) == 0 {
			return
		}
		d := pkts[0]
		var frags [][]byte
		cut := func(total int) []int {
			var plan []int
			for i := 1; total > 0; i++ {
				s := min(total, 8*(1+int(in[i%len(in)])%64))
				plan = append(plan, s)
				total -= s
			}
			return plan
		}
		switch {
		case len(d) >= 28 && d[0] == 0x45 && int(binary.BigEndian.Uint16(d[2:])) == len(d) && binary.BigEndian.Uint16(d[6:])&0x3fff == 0:
			frags = Split4(d, cut(len(d)-20), 1, false)
		case len(d) >= 48 && d[0]>>4 == 6 && int(binary.BigEndian.Uint16(d[4:]))+40 == len(d):
			un, _, ok := Unfragmentable(d)
			if !ok || un == len(d) {
				return
			}
			frags = Split6(d, cut(len(d)-un), 1)
		}
		if len(frags) < 2 {
			return
		}
		r = New(Config{})
		for i := len(frags) - 1; i >= 0; i-- {
			dg, res := r.Add(frags[i], 0, out)
			if i > 0 && res != Held || i == 0 && res != Complete {
				t.Fatalf("fragment %d of %d: %v", i, len(frags), res)
			}
			if i == 0 && !bytes.Equal(dg.Packet, wantWhole(d)) {
				t.Fatalf("reassembled datagram differs (%d bytes, want %d)", len(dg.Packet), len(d))
			}
		}
	})
}

// wantWhole is d as reassembly gives it back: an IPv4 header with the
// Identification Split4 was given (1) and its checksum recomputed.
func wantWhole(d []byte) []byte {
	if d[0]>>4 != 4 {
		return d
	}
	w := bytes.Clone(d)
	w[4], w[5] = 0, 1
	w[10], w[11] = 0, 0
	binary.BigEndian.PutUint16(w[10:], ipv4Checksum(w[:20]))
	return w
}

func checkWhole(t *testing.T, dg Datagram) {
	t.Helper()
	p := dg.Packet
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		if int(binary.BigEndian.Uint16(p[2:])) != len(p) || binary.BigEndian.Uint16(p[6:])&0x3fff != 0 || ipv4Checksum(p[:int(p[0]&0xf)*4]) != 0 {
			t.Fatalf("reassembled IPv4 header %x", p[:20])
		}
	case len(p) >= 40 && p[0]>>4 == 6:
		if int(binary.BigEndian.Uint16(p[4:]))+40 != len(p) {
			t.Fatalf("reassembled IPv6 payload length %d for %d bytes", binary.BigEndian.Uint16(p[4:]), len(p))
		}
	default:
		t.Fatalf("reassembled datagram %x", p)
	}
}
