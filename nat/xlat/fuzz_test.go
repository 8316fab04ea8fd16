package xlat

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// FuzzXlat translates arbitrary bytes in the direction their version nibble
// calls for (both directions when it is neither 4 nor 6) and checks:
//   - no panic, and a nil result with every Reason but Ok;
//   - the result decodes with header.Parsed.Decode, in the other family,
//     with the requested addresses and a valid IPv4 header checksum;
//   - its transport checksum verifies when the input's did (an ICMP error's
//     always: it is recomputed), and the quote of an ICMP error decodes
//     with DecodeInner carrying the Inner addresses;
//   - translating the result back with the original addresses gives the
//     original TOS/Traffic Class, TTL/Hop Limit, protocol and transport
//     segment (the checksum as a value; a UDP checksum of 0 becomes a real
//     one in IPv6).
func FuzzXlat(f *testing.F) {
	seeds := [][]byte{benchTCP6, benchTCP4, benchErr6, benchErr4}
	for _, q := range quotes6() {
		seeds = append(seeds, q.pkt, err6(1, 4, 0, q.pkt), err6(2, 0, 1400, q.pkt), err6(4, 0, 6, q.pkt))
	}
	for _, q := range quotes4() {
		seeds = append(seeds, q.pkt, err4(3, 3, 0, q.pkt), err4(3, 4, 0, q.pkt), err4(12, 0, 9<<24, q.pkt))
	}
	seeds = append(seeds,
		mk6("2001:db8::1", "64:ff9b::1.2.3.4", ipproto.UDP, udpDgram(1, 2, seq(3)), v6cfg{exts: []ext6{optsExt(ipproto.HopByHop, 1), routingExt(0), optsExt(ipproto.DstOpts, 1)}}),
		mk6("2001:db8::1", "64:ff9b::1.2.3.4", ipproto.ICMPv6, icmpBytes(128, 0, echoRest(1, 1), seq(8)), v6cfg{}),
		mk4("1.2.3.4", "5.6.7.8", ipproto.ICMPv4, icmpBytes(0, 0, echoRest(1, 1), seq(8)), v4cfg{}),
		mk4("1.2.3.4", "5.6.7.8", ipproto.UDP, udpDgram(1, 2, seq(7)), v4cfg{noCk: true, opts: []byte{1, 1, 1, 1}}),
	)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || data[0]>>4 != 4 && data[0]>>4 != 6 {
			for _, v := range []byte{0x40, 0x60} {
				buf := withRoom(data, 48)
				if len(buf) > 0 {
					buf[0] = buf[0]&0x0f | v
				}
				fuzzOne(t, buf)
			}
			return
		}
		fuzzOne(t, withRoom(data, 48))
		// Again with the checksums repaired, so that mutations get past the
		// IPv4 header checksum and the transport checksum property applies.
		fuzzOne(t, repair(withRoom(data, 48)))
	})
}

// repair recomputes the IPv4 header checksums of b (and of the packet an
// ICMPv4 error quotes) and its transport checksum, as far as b decodes.
func repair(b []byte) []byte {
	fix4 := func(h []byte) {
		ip := header.IPv4(h)
		if len(h) >= 20 && ip.Version() == 4 && ip.HeaderLen() >= 20 && ip.HeaderLen() <= len(h) {
			ip.SetChecksum(ip.ComputeChecksum())
		}
	}
	fix4(b)
	if len(b) >= 20 && b[0]>>4 == 4 && ipproto.Proto(b[9]) == ipproto.ICMPv4 {
		if hl := int(b[0]&0xf) * 4; hl+8 < len(b) {
			fix4(b[hl+8:])
		}
	}
	var p header.Parsed
	if p.Decode(b) == header.Ok {
		p.ComputeL4Checksum()
	}
	return b
}

func fuzzOne(t *testing.T, buf []byte) {
	in := append([]byte(nil), buf...)
	var ip header.Parsed
	validIn := ip.Decode(in) == header.Ok && ip.L4ChecksumValid()
	v6in := len(buf) > 0 && buf[0]>>4 == 6
	var out []byte
	var r Reason
	var inner *Inner
	if v6in {
		inner = benchIn4
		out, r = ToIPv4(buf, a4src, a4dst, inner)
	} else {
		inner = benchIn6
		out, r = ToIPv6(buf, a6src, a6dst, inner)
	}
	if r != Ok {
		if out != nil {
			t.Fatalf("reason %v with a result", r)
		}
		return
	}
	var p header.Parsed
	if rr := p.Decode(out); rr != header.Ok {
		t.Fatalf("result does not decode: %v\n in %x\nout %x", rr, in, out)
	}
	if v6in != (p.Version == 4) {
		t.Fatalf("result version %d", p.Version)
	}
	wantSrc, wantDst := a4src, a4dst
	if !v6in {
		wantSrc, wantDst = a6src, a6dst
	}
	if p.Src != wantSrc || p.Dst != wantDst {
		t.Fatalf("result addresses %v %v", p.Src, p.Dst)
	}
	if (validIn || p.ICMPError) && !p.L4ChecksumValid() {
		t.Fatalf("transport checksum does not verify\n in %x\nout %x", in, out)
	}
	if p.ICMPError {
		var q header.Parsed
		if rr := q.DecodeInner(p.Payload()); rr != header.Ok || q.Version != p.Version || q.Src != inner.Src || q.Dst != inner.Dst {
			t.Fatalf("quote: %v version %d %v %v\n in %x\nout %x", rr, q.Version, q.Src, q.Dst, in, out)
		}
		if (p.Version == 4 && len(out) > maxICMPv4Error) || (p.Version == 6 && len(out) > maxICMPv6Error) {
			t.Fatalf("ICMP error of %d bytes", len(out))
		}
		return
	}

	// Back to the original family with the original addresses.
	back := withRoom(out, 48)
	var b []byte
	if v6in {
		b, r = ToIPv6(back, ip.Src, ip.Dst, nil)
	} else {
		b, r = ToIPv4(back, ip.Src, ip.Dst, nil)
	}
	if r != Ok {
		t.Fatalf("back: %v\n in %x\nout %x", r, in, out)
	}
	var bp header.Parsed
	if bp.Decode(b) != header.Ok || bp.Src != ip.Src || bp.Dst != ip.Dst || bp.Proto != ip.Proto {
		t.Fatalf("back: %v %v %d, want %v %v %d", bp.Src, bp.Dst, bp.Proto, ip.Src, ip.Dst, ip.Proto)
	}
	var tos, ttl, btos, bttl uint8
	if v6in {
		tos, ttl = ip.IPv6().TrafficClass(), ip.IPv6().HopLimit()
		btos, bttl = bp.IPv6().TrafficClass(), bp.IPv6().HopLimit()
	} else {
		tos, ttl = ip.IPv4().TOS(), ip.IPv4().TTL()
		btos, bttl = bp.IPv4().TOS(), bp.IPv4().TTL()
	}
	if tos != btos || ttl != bttl {
		t.Fatalf("back: TOS %#x TTL %d, want %#x %d", btos, bttl, tos, ttl)
	}
	ol4, bl4 := ip.L4(), bp.L4()
	off := ckOff(ip.Proto)
	if ip.Proto == ipproto.UDP && binary.BigEndian.Uint16(ol4[off:]) == 0 {
		// Checksum 0 computed on the way to IPv6: compare the rest.
		if len(bl4) != len(ol4) || !bytes.Equal(bl4[:6], ol4[:6]) || !bytes.Equal(bl4[8:], ol4[8:]) {
			t.Fatalf("back: UDP segment changed")
		}
		return
	}
	if len(ol4) != len(bl4) || !bytes.Equal(ol4[:off], bl4[:off]) || !bytes.Equal(ol4[off+2:], bl4[off+2:]) ||
		!sameCk(binary.BigEndian.Uint16(ol4[off:]), binary.BigEndian.Uint16(bl4[off:])) {
		t.Fatalf("back: transport segment changed\n in %x\nback %x", ol4, bl4)
	}
}
