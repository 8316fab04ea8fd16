package nat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/frag"
	"github.com/natalg/natalg/nat/header"
)

// FuzzFragments drives an engine (NAT44, NAT66 and NAT64) with fragments.
// The input picks, for a UDP datagram through each of the four
// translations (NAT44 out, NAT66 out, NAT64 6to4, NAT64 4to6 back), a
// payload size, the fragment boundaries and their order, with arbitrary
// packets (2-byte length framed, from the rest of the input) mixed in.
// Properties: no panic; every packet sent (Out and More) decodes; each
// datagram's fragments, once all are in, come out as fragments that
// reassemble to the datagram translated, with its payload and right
// checksums; no fragment leaves larger than the largest received, or
// than lowest-ipv6-mtu towards IPv6.
func FuzzFragments(f *testing.F) {
	f.Add([]byte{0x10, 0x20, 0x30, 0x40, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(append([]byte{0xff, 0x01, 0x80, 0x33, 9, 9}, binary.BigEndian.AppendUint16(nil, 20)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 4 {
			return
		}
		e := dualEngine(t, 0)
		at := 0
		next := func() int {
			b := in[at%len(in)]
			at++
			return int(b)
		}
		var noise [][]byte
		for b := in[4:]; len(b) >= 2; {
			n := min(int(binary.BigEndian.Uint16(b)), len(b)-2)
			noise = append(noise, b[2:2+n])
			b = b[2+n:]
		}
		ps := NewBatch(1)
		send := func(pkt []byte) (sent [][]byte) {
			ps[0].N = copy(ps[0].Buf[:cap(ps[0].Buf)], pkt)
			ps[0].Time = t0
			e.ProcessBatch(ps)
			if ps[0].Verdict != Accept {
				return nil
			}
			for _, b := range append([][]byte{ps[0].Out}, ps[0].More...) {
				var p header.Parsed
				if r := p.Decode(bytes.Clone(b)); r != header.Ok {
					t.Fatalf("a packet sent does not decode (%v)", r)
				}
				sent = append(sent, bytes.Clone(b))
			}
			return sent
		}
		pool := netip.Addr{}
		var poolPort uint16
		for round := range 4 {
			var src, dst netip.AddrPort
			switch round {
			case 0:
				src, dst = ap("198.18.0.2:40000"), ap("198.19.0.2:7")
			case 1:
				src, dst = cli6NAT, srv6NAT
			case 2:
				src, dst = ap("[fd00:64::2]:40000"), ap("[2001:db8:64::c612:4002]:7")
			case 3:
				if !pool.IsValid() {
					return
				}
				src, dst = netip.AddrPortFrom(srv4Raw, 7), netip.AddrPortFrom(pool, poolPort)
			}
			n := 16 + next()*next()%9000
			d := bigUDP(src, dst, n, false)
			hdr := 20
			if src.Addr().Is6() {
				hdr = 40
			}
			var plan []int
			for left := n + 8; left > 0; {
				s := min(left, 8*(1+next()%200))
				plan = append(plan, s)
				left -= s
			}
			var frags [][]byte
			if hdr == 20 {
				frags = frag.Split4(d, plan, uint16(round), false)
			} else {
				frags = frag.Split6(d, plan, uint32(round))
			}
			largest := 0
			for _, fr := range frags {
				largest = max(largest, len(fr))
			}
			// a random order: swap pairs the input names
			for range len(frags) {
				i, j := next()%len(frags), next()%len(frags)
				frags[i], frags[j] = frags[j], frags[i]
			}
			var sent [][]byte
			for i, fr := range frags {
				if i < len(noise) {
					send(noise[i])
				}
				if s := send(fr); s != nil {
					sent = s
				}
			}
			if len(sent) == 0 {
				// noise may legitimately have taken the datagram's ID
				// (an overlap) or the per-source caps: nothing to check
				continue
			}
			r := frag.New(frag.Config{})
			var got []byte
			for _, s := range sent {
				limit := largest
				if s[0]>>4 == 6 && src.Addr().Is4() {
					limit = 1280
				} else if s[0]>>4 == 4 && src.Addr().Is6() {
					limit = largest // IPv4 fragments are smaller than the IPv6 ones
				}
				if len(sent) > 1 && len(s) > limit {
					t.Fatalf("round %d: a fragment of %d bytes left, the largest received was %d", round, len(s), largest)
				}
				dg, res := r.Add(s, 0, nil)
				switch res {
				case frag.Complete:
					got = dg.Packet
				case frag.NotFragment:
					got = s
				case frag.Held:
				default:
					t.Fatalf("round %d: output fragment refused: %v", round, res)
				}
			}
			if got == nil {
				t.Fatalf("round %d: the fragments sent do not make a datagram", round)
			}
			var p header.Parsed
			if p.Decode(got) != header.Ok || !p.L4ChecksumValid() || string(p.Payload()) != string(d[len(d)-n:]) {
				t.Fatalf("round %d: the datagram sent differs from the one received", round)
			}
			if round == 2 {
				pool, poolPort = p.Src, p.SrcPort
			}
		}
	})
}
