package header

import (
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/ipproto"
)

func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name  string
		pkt   []byte
		inner bool
	}{
		{"v4_tcp_sack", v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, sackOpts, make([]byte, 1400)), v4opts{}), false},
		{"v4_udp", v4(v4a, v4b, ipproto.UDP, udpDgram(1, 2, make([]byte, 100)), v4opts{}), false},
		{"v6_tcp_exts", v6(v6a, v6b, []ext6{optsExt(ipproto.HopByHop, 1), optsExt(ipproto.DstOpts, 1)}, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPSYN, synOpts, nil), false), false},
		{"v6_icmp_error", v6(v6a, v6b, nil, ipproto.ICMPv6, icmpMsg(ICMPv6DstUnreachable, 4, 0, 0, innerV6TCPWhole()), false), false},
		{"inner_v4_tcp8", innerV4TCP8(), true},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var p Parsed
			for b.Loop() {
				if c.inner {
					p.DecodeInner(c.pkt)
				} else {
					p.Decode(c.pkt)
				}
			}
		})
	}
}

func BenchmarkSetters(b *testing.B) {
	pkt4 := v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, sackOpts, make([]byte, 1400)), v4opts{})
	pkt6 := v6(v6a, v6b, nil, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, sackOpts, make([]byte, 1400)), false)
	a4 := []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr(v4a)}
	a6 := []netip.Addr{netip.MustParseAddr("2001:db8:9::1"), netip.MustParseAddr(v6a)}
	var p4, p6 Parsed
	p4.Decode(pkt4)
	p6.Decode(pkt6)
	bench := func(name string, f func(i int)) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				f(i & 1)
				i++
			}
		})
	}
	bench("v4/SetSrcAddr", func(i int) { p4.SetSrcAddr(a4[i]) })
	bench("v6/SetSrcAddr", func(i int) { p6.SetSrcAddr(a6[i]) })
	bench("v4/SetSrcPort", func(i int) { p4.SetSrcPort(uint16(i)) })
	bench("v4/SetTCPSeq", func(i int) { p4.SetTCPSeq(uint32(i)) })
	bench("v4/SetSACKBlock", func(i int) { p4.SetSACKBlock(1, uint32(i), uint32(i)) })
	bench("v4/SNAT(Decode+SetSrcAddr+SetSrcPort)", func(i int) {
		p4.Decode(pkt4)
		p4.SetSrcAddr(a4[i])
		p4.SetSrcPort(uint16(i))
	})
	bench("v4/ComputeL4Checksum_1460B", func(int) { p4.ComputeL4Checksum() })
	bench("v4/TCPChecksumValid_1460B", func(int) { p4.TCPChecksumValid() })
}
