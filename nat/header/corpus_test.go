package header

import (
	"encoding/binary"
	"net/netip"

	"github.com/natalg/natalg/nat/ipproto"
)

// tcase is one hand-built packet and what Decode (or DecodeInner) must make
// of it.
type tcase struct {
	name  string
	pkt   []byte
	inner bool // decode with DecodeInner
	want  Reason
	check func(p *Parsed) string // extra expectations; "" if fine
}

const (
	v4a, v4b = "192.0.2.1", "198.51.100.7"
	v6a, v6b = "2001:db8::1", "2001:db8:ffff::abcd"
)

var (
	synOpts  = cat(optMSS(1460), []byte{4, 2}, optTS(1, 0), []byte{1, 3, 3, 7})
	sackOpts = cat([]byte{1, 1}, optSACK(1000, 2000, 3000, 4000), []byte{1, 1}, optTS(5, 6))
)

// innerV4UDP is the IPv4+UDP packet quoted in ICMP errors: total length says
// 1000 bytes but only the IP header and 8 UDP bytes are quoted.
func innerV4UDP() []byte {
	p := v4(v4b, v4a, ipproto.UDP, udpDgram(5353, 53, make([]byte, 972)), v4opts{})
	return p[:28]
}

// innerV4TCP8 quotes an IPv4 TCP packet with only 8 TCP bytes.
func innerV4TCP8() []byte {
	p := v4(v4b, v4a, ipproto.TCP, tcpSeg(40000, 21, 0x01020304, 0x0a0b0c0d, ipproto.TCPACK|ipproto.TCPPSH, nil, []byte("PORT 1,2,3,4,5,6\r\n")), v4opts{})
	return p[:28]
}

// innerV6TCPWhole is a complete IPv6 TCP segment quoted whole.
func innerV6TCPWhole() []byte {
	return v6(v6b, v6a, nil, ipproto.TCP, tcpSeg(443, 50000, 7, 8, ipproto.TCPACK, sackOpts, []byte("data")), false)
}

func corpus() []tcase {
	p := func(f func(p *Parsed) string) func(p *Parsed) string { return f }
	return []tcase{
		{name: "v4 tcp syn with ip options", want: Ok,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1234, 80, 100, 0, ipproto.TCPSYN, synOpts, nil), v4opts{opts: []byte{0x94, 4, 0, 0, 1, 1, 1, 0}}),
			check: p(func(p *Parsed) string {
				switch {
				case p.IPHeaderLen != 28:
					return "IPHeaderLen"
				case p.MSS != 1460 || p.SACKOff != 0:
					return "options"
				case p.L4Off != 28 || p.PayloadOff != 28+40:
					return "offsets"
				case p.SrcPort != 1234 || p.DstPort != 80 || p.Seq != 100 || p.TCPFlags != ipproto.TCPSYN:
					return "tcp fields"
				case p.Src != netip.MustParseAddr(v4a) || p.Dst != netip.MustParseAddr(v4b):
					return "addresses"
				case p.Payload() != nil:
					return "payload"
				}
				return ""
			})},
		{name: "v4 tcp ack sack timestamps data", want: Ok,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(21, 40000, 5, 6, ipproto.TCPACK|ipproto.TCPPSH, sackOpts, []byte("227 Entering Passive Mode\r\n")), v4opts{}),
			check: p(func(p *Parsed) string {
				l0, r0 := p.SACKBlock(0)
				l1, r1 := p.SACKBlock(1)
				switch {
				case p.SACKBlocks != 2 || p.SACKOff != 20+20+4:
					return "sack"
				case l0 != 1000 || r0 != 2000 || l1 != 3000 || r1 != 4000:
					return "sack blocks"
				case p.MSS != 0 || p.Ack != 6:
					return "fields"
				case string(p.Payload()) != "227 Entering Passive Mode\r\n":
					return "payload"
				}
				return ""
			})},
		{name: "v4 tcp mss on non-syn ignored", want: Ok,
			pkt:   v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, optMSS(536), nil), v4opts{}),
			check: p(func(p *Parsed) string { return cond(p.MSS == 0, "mss") })},
		{name: "v4 udp zero checksum with link padding", want: Ok,
			pkt: append(v4(v4a, v4b, ipproto.UDP, udpDgram(68, 67, []byte("dhcp")), v4opts{noL4Ck: true}), 0, 0, 0, 0, 0, 0),
			check: p(func(p *Parsed) string {
				switch {
				case len(p.Buf) != 32:
					return "Buf not trimmed"
				case p.UDP().Checksum() != 0 || !p.L4ChecksumValid():
					return "zero checksum"
				case string(p.Payload()) != "dhcp":
					return "payload"
				}
				return ""
			})},
		{name: "v4 udp", want: Ok,
			pkt: v4(v4a, v4b, ipproto.UDP, udpDgram(5353, 53, []byte("query")), v4opts{}),
			check: p(func(p *Parsed) string {
				return cond(p.SrcPort == 5353 && p.DstPort == 53 && p.L4ChecksumValid(), "udp")
			})},
		{name: "v4 icmp echo request", want: Ok,
			pkt: v4(v4a, v4b, ipproto.ICMPv4, icmpMsg(ICMPv4Echo, 0, 0x4242, 1, []byte("ping")), v4opts{}),
			check: p(func(p *Parsed) string {
				return cond(p.SrcPort == 0x4242 && p.DstPort == 0 && !p.ICMPError && p.L4ChecksumValid(), "echo")
			})},
		{name: "v4 icmp echo reply", want: Ok,
			pkt: v4(v4b, v4a, ipproto.ICMPv4, icmpMsg(ICMPv4EchoReply, 0, 0x4242, 1, []byte("ping")), v4opts{}),
			check: p(func(p *Parsed) string {
				return cond(p.SrcPort == 0 && p.DstPort == 0x4242, "echo reply")
			})},
		{name: "v4 icmp echo reply all zero", want: Ok,
			pkt: v4(v4b, v4a, ipproto.ICMPv4, icmpMsg(ICMPv4EchoReply, 0, 0x0001, 0, nil), v4opts{})},
		{name: "v4 icmp port unreachable quoting udp", want: Ok,
			pkt: v4(v4a, v4b, ipproto.ICMPv4, icmpMsg(ICMPv4DstUnreachable, 3, 0, 0, innerV4UDP()), v4opts{}),
			check: p(func(p *Parsed) string {
				return cond(p.ICMPError && p.PayloadOff == 28 && p.ICMPType == 3 && p.ICMPCode == 3 && len(p.Payload()) == 28, "icmp error")
			})},
		{name: "v4 icmp time exceeded quoting tcp", want: Ok,
			pkt: v4(v4a, v4b, ipproto.ICMPv4, icmpMsg(ICMPv4TimeExceeded, 0, 0, 0, innerV4TCP8()), v4opts{})},
		{name: "v4 icmp redirect quoting echo", want: Ok,
			pkt: v4(v4a, v4b, ipproto.ICMPv4, icmpMsg(ICMPv4Redirect, 1, 0, 0,
				v4(v4b, v4a, ipproto.ICMPv4, icmpMsg(ICMPv4Echo, 0, 77, 1, nil), v4opts{})), v4opts{})},
		{name: "inner v4 udp quoted", inner: true, want: Ok, pkt: innerV4UDP(),
			check: p(func(p *Parsed) string {
				return cond(p.SrcPort == 5353 && p.DstPort == 53 && p.L4Off == 20 && p.PayloadOff == 28 && p.Payload() == nil && len(p.Buf) == 28, "inner udp")
			})},
		{name: "inner v4 tcp 8 bytes", inner: true, want: Ok, pkt: innerV4TCP8(),
			check: p(func(p *Parsed) string {
				return cond(p.SrcPort == 40000 && p.DstPort == 21 && p.Seq == 0x01020304 && p.Ack == 0 && p.PayloadOff == 0, "inner tcp")
			})},
		{name: "inner v4 tcp options cut", inner: true, want: Ok,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPSYN, synOpts, nil), v4opts{})[:20+24],
			check: p(func(p *Parsed) string {
				return cond(p.Ack == 4 && p.TCPFlags == ipproto.TCPSYN && p.PayloadOff == 0 && p.MSS == 0, "inner tcp cut")
			})},
		{name: "inner v4 icmp echo", inner: true, want: Ok,
			pkt:   v4(v4a, v4b, ipproto.ICMPv4, icmpMsg(ICMPv4Echo, 0, 99, 5, []byte("x")), v4opts{}),
			check: p(func(p *Parsed) string { return cond(p.SrcPort == 99, "inner echo") })},
		{name: "inner v4 nested icmp error", inner: true, want: ICMPNestedError,
			pkt: v4(v4a, v4b, ipproto.ICMPv4, icmpMsg(ICMPv4DstUnreachable, 1, 0, 0, innerV4UDP()), v4opts{})},
		{name: "inner v4 truncated transport", inner: true, want: Truncated, pkt: innerV4UDP()[:27]},
		{name: "v4 first fragment udp", want: Ok,
			pkt: func() []byte {
				b := v4(v4a, v4b, ipproto.UDP, udpDgram(1000, 2000, make([]byte, 100)), v4opts{flagFrag: 0x2000})
				binary.BigEndian.PutUint16(b[24:], 3000) // datagram spans further fragments
				return b
			}(),
			check: p(func(p *Parsed) string {
				return cond(p.Fragment && p.FirstFragment && p.L4Off == 20 && p.SrcPort == 1000 && p.L4ChecksumValid() && !p.ComputeL4Checksum(), "first fragment")
			})},
		{name: "v4 later fragment", want: Ok,
			pkt: v4(v4a, v4b, ipproto.TCP, make([]byte, 64), v4opts{flagFrag: 185}),
			check: p(func(p *Parsed) string {
				return cond(p.Fragment && !p.FirstFragment && p.L4Off == 0 && p.Proto == ipproto.TCP && p.SrcPort == 0 && p.TCP() == nil, "later fragment")
			})},
		{name: "v4 unknown protocol", want: Ok,
			pkt:   v4(v4a, v4b, 47, make([]byte, 12), v4opts{}),
			check: p(func(p *Parsed) string { return cond(p.Proto == 47 && p.L4Off == 0 && p.L4ChecksumValid(), "gre") })},

		{name: "v6 tcp with hbh dstopts routing", want: Ok,
			pkt: v6(v6a, v6b, []ext6{optsExt(ipproto.HopByHop, 1), optsExt(ipproto.DstOpts, 2), optsExt(ipproto.Routing, 3)}, ipproto.TCP,
				tcpSeg(4444, 21, 1<<31, 99, ipproto.TCPSYN|ipproto.TCPACK, synOpts, nil), false),
			check: p(func(p *Parsed) string {
				return cond(p.IPHeaderLen == 40+8+16+24 && p.L4Off == p.IPHeaderLen && p.MSS == 1460 && p.Seq == 1<<31 && p.TCPChecksumValid() && !p.Fragment, "v6 exts")
			})},
		{name: "v6 hbh dstopts first fragment udp", want: Ok,
			pkt: v6(v6a, v6b, []ext6{optsExt(ipproto.HopByHop, 1), optsExt(ipproto.DstOpts, 1), fragExt(0, true)}, ipproto.UDP,
				udpDgram(53, 5353, make([]byte, 40)), false),
			check: p(func(p *Parsed) string {
				return cond(p.Fragment && p.FirstFragment && p.L4Off == 40+8+8+8 && p.DstPort == 5353, "v6 first frag")
			})},
		{name: "v6 later fragment", want: Ok,
			pkt: v6(v6a, v6b, []ext6{optsExt(ipproto.HopByHop, 1), fragExt(1448, false)}, ipproto.UDP, make([]byte, 100), false),
			check: p(func(p *Parsed) string {
				return cond(p.Fragment && !p.FirstFragment && p.L4Off == 0 && p.Proto == ipproto.UDP && p.IPHeaderLen == 56, "v6 later frag")
			})},
		{name: "v6 atomic fragment", want: Ok,
			pkt: v6(v6a, v6b, []ext6{fragExt(0, false)}, ipproto.UDP, udpDgram(1, 2, []byte("abc")), true),
			check: p(func(p *Parsed) string {
				return cond(!p.Fragment && !p.FirstFragment && p.L4Off == 48 && p.SrcPort == 1, "atomic")
			})},
		{name: "v6 ah tcp", want: Ok,
			pkt:   v6(v6a, v6b, []ext6{ahExt()}, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, nil, []byte("x")), false),
			check: p(func(p *Parsed) string { return cond(p.L4Off == 64 && p.TCPChecksumValid(), "ah") })},
		{name: "v6 esp", want: Ok,
			pkt: v6(v6a, v6b, []ext6{optsExt(ipproto.DstOpts, 1)}, ipproto.ESP, make([]byte, 32), false),
			check: p(func(p *Parsed) string {
				return cond(p.Proto == ipproto.ESP && p.L4Off == 0 && p.IPHeaderLen == 48, "esp")
			})},
		{name: "v6 no next header", want: Ok,
			pkt:   v6(v6a, v6b, nil, ipproto.NoNext, nil, false),
			check: p(func(p *Parsed) string { return cond(p.Proto == ipproto.NoNext && p.L4Off == 0, "nonext") })},
		{name: "v6 icmpv4 proto is not parsed", want: Ok,
			pkt:   v6(v6a, v6b, nil, ipproto.ICMPv4, icmpMsg(8, 0, 1, 1, nil), false),
			check: p(func(p *Parsed) string { return cond(p.L4Off == 0 && p.ICMPv4() == nil, "icmp in v6") })},
		{name: "v6 echo request", want: Ok,
			pkt: v6(v6a, v6b, nil, ipproto.ICMPv6, icmpMsg(ICMPv6EchoRequest, 0, 0x1111, 9, []byte("hi")), false),
			check: p(func(p *Parsed) string {
				return cond(p.SrcPort == 0x1111 && p.L4ChecksumValid(), "v6 echo")
			})},
		{name: "v6 echo reply", want: Ok,
			pkt:   v6(v6b, v6a, nil, ipproto.ICMPv6, icmpMsg(ICMPv6EchoReply, 0, 0x1111, 9, []byte("hi")), false),
			check: p(func(p *Parsed) string { return cond(p.DstPort == 0x1111, "v6 reply") })},
		{name: "v6 neighbor solicitation", want: Ok,
			pkt: v6(v6a, v6b, nil, ipproto.ICMPv6, icmpMsg(ICMPv6NeighborSolicit, 0, 0, 0, make([]byte, 16)), false),
			check: p(func(p *Parsed) string {
				return cond(p.SrcPort == 0 && p.DstPort == 0 && !p.ICMPError && p.ICMPType == ICMPv6NeighborSolicit, "ns")
			})},
		{name: "v6 dst unreachable quoting whole tcp", want: Ok,
			pkt: v6(v6a, v6b, nil, ipproto.ICMPv6, icmpMsg(ICMPv6DstUnreachable, 4, 0, 0, innerV6TCPWhole()), false),
			check: p(func(p *Parsed) string {
				return cond(p.ICMPError && p.PayloadOff == 48 && p.L4ChecksumValid(), "v6 error")
			})},
		{name: "v6 packet too big quoting udp", want: Ok,
			pkt: v6(v6a, v6b, nil, ipproto.ICMPv6, icmpMsg(ICMPv6PacketTooBig, 0, 0, 1280,
				v6(v6b, v6a, []ext6{optsExt(ipproto.DstOpts, 1)}, ipproto.UDP, udpDgram(9, 10, make([]byte, 1400)), false)[:40+8+8]), false)},
		{name: "inner v6 whole tcp", inner: true, want: Ok, pkt: innerV6TCPWhole(),
			check: p(func(p *Parsed) string {
				return cond(p.SrcPort == 443 && p.SACKBlocks == 2 && string(p.Payload()) == "data", "inner v6 tcp")
			})},
		{name: "inner v6 udp after dstopts cut", inner: true, want: Ok,
			pkt: v6(v6b, v6a, []ext6{optsExt(ipproto.DstOpts, 1)}, ipproto.UDP, udpDgram(9, 10, make([]byte, 1400)), false)[:40+8+8],
			check: p(func(p *Parsed) string {
				return cond(p.SrcPort == 9 && p.DstPort == 10 && len(p.Buf) == 56, "inner v6 udp")
			})},
		{name: "inner v6 nested error", inner: true, want: ICMPNestedError,
			pkt: v6(v6a, v6b, nil, ipproto.ICMPv6, icmpMsg(ICMPv6TimeExceeded, 0, 0, 0, nil), false)},

		// Malformations.
		{name: "empty", want: Truncated, pkt: []byte{}},
		{name: "one byte", want: Truncated, pkt: []byte{0x45}},
		{name: "version 5", want: BadVersion, pkt: append([]byte{0x55}, make([]byte, 40)...)},
		{name: "version 0", want: BadVersion, pkt: make([]byte, 60)},
		{name: "ihl 4", want: BadIHL, pkt: func() []byte {
			b := v4(v4a, v4b, ipproto.UDP, udpDgram(1, 2, nil), v4opts{})
			b[0] = 0x44
			return fixIPv4Checksum(b)
		}()},
		{name: "ihl beyond packet", want: Truncated, pkt: func() []byte {
			b := v4(v4a, v4b, ipproto.UDP, udpDgram(1, 2, nil), v4opts{})
			b[0] = 0x4f
			return b
		}()},
		{name: "total length below ihl", want: BadTotalLength, pkt: func() []byte {
			b := v4(v4a, v4b, ipproto.UDP, udpDgram(1, 2, nil), v4opts{})
			binary.BigEndian.PutUint16(b[2:], 19)
			return fixIPv4Checksum(b)
		}()},
		{name: "total length beyond packet", want: BadTotalLength, pkt: func() []byte {
			b := v4(v4a, v4b, ipproto.UDP, udpDgram(1, 2, nil), v4opts{})
			binary.BigEndian.PutUint16(b[2:], 29)
			return fixIPv4Checksum(b)
		}()},
		{name: "bad ip checksum", want: BadIPChecksum, pkt: func() []byte {
			b := v4(v4a, v4b, ipproto.UDP, udpDgram(1, 2, nil), v4opts{})
			b[8]--
			return b
		}()},
		{name: "v6 short", want: Truncated, pkt: v6(v6a, v6b, nil, ipproto.UDP, nil, true)[:39]},
		{name: "v6 payload length beyond packet", want: BadTotalLength, pkt: func() []byte {
			b := v6(v6a, v6b, nil, ipproto.UDP, udpDgram(1, 2, nil), false)
			b[5]++
			return b
		}()},
		{name: "v6 too many extension headers", want: IPv6ExtChain, pkt: v6(v6a, v6b, []ext6{
			optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1),
			optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1),
			optsExt(ipproto.DstOpts, 1)}, ipproto.UDP, udpDgram(1, 2, nil), false)},
		{name: "v6 eight extension headers ok", want: Ok, pkt: v6(v6a, v6b, []ext6{
			optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1),
			optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1), optsExt(ipproto.DstOpts, 1)},
			ipproto.UDP, udpDgram(1, 2, nil), false)},
		{name: "v6 hop-by-hop not first", want: IPv6ExtChain,
			pkt: v6(v6a, v6b, []ext6{optsExt(ipproto.DstOpts, 1), optsExt(ipproto.HopByHop, 1)}, ipproto.UDP, udpDgram(1, 2, nil), false)},
		{name: "v6 two fragment headers", want: IPv6ExtChain,
			pkt: v6(v6a, v6b, []ext6{fragExt(0, true), fragExt(0, true)}, ipproto.UDP, udpDgram(1, 2, nil), false)},
		{name: "v6 extension header overruns payload", want: Truncated, pkt: func() []byte {
			b := v6(v6a, v6b, []ext6{optsExt(ipproto.DstOpts, 1)}, ipproto.UDP, udpDgram(1, 2, nil), false)
			b[41] = 3 // 32 bytes, only 16 left
			return b
		}()},
		{name: "v6 extension header cut", want: Truncated,
			pkt: func() []byte {
				b := v6(v6a, v6b, []ext6{optsExt(ipproto.DstOpts, 1)}, ipproto.UDP, nil, false)
				b = b[:44]
				binary.BigEndian.PutUint16(b[4:], 4)
				return b
			}()},
		{name: "tcp data offset 4", want: BadTCPOffset, pkt: func() []byte {
			l4 := tcpSeg(1, 2, 3, 4, ipproto.TCPACK, nil, nil)
			l4[12] = 4 << 4
			return v4(v4a, v4b, ipproto.TCP, l4, v4opts{})
		}()},
		{name: "tcp data offset beyond packet", want: BadTCPOffset, pkt: func() []byte {
			l4 := tcpSeg(1, 2, 3, 4, ipproto.TCPACK, optMSS(1), nil)
			l4[12] = 15 << 4
			return v4(v4a, v4b, ipproto.TCP, l4, v4opts{})
		}()},
		{name: "tcp truncated header", want: Truncated,
			pkt: v4(v4a, v4b, ipproto.TCP, make([]byte, 19), v4opts{noL4Ck: true})},
		{name: "tcp option length 1", want: BadTCPOptions,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, []byte{1, 8, 1, 0}, nil), v4opts{})},
		{name: "tcp option length 0", want: BadTCPOptions,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, []byte{30, 0, 0, 0}, nil), v4opts{})},
		{name: "tcp option past option space", want: BadTCPOptions,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, []byte{1, 8, 10, 1, 2, 3, 4, 5}, []byte("data")), v4opts{})},
		{name: "tcp option kind without length", want: BadTCPOptions,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, []byte{1, 1, 1, 8}, nil), v4opts{})},
		{name: "tcp mss length 3", want: BadTCPOptions,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPSYN, []byte{2, 3, 5, 1}, nil), v4opts{})},
		{name: "tcp eol then garbage", want: Ok,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPSYN, []byte{0, 2, 3, 5}, nil), v4opts{})},
		{name: "sack length not 2+8n", want: BadSACK,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, []byte{5, 9, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1}, nil), v4opts{})},
		{name: "sack without blocks", want: BadSACK,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, []byte{1, 1, 5, 2}, nil), v4opts{})},
		{name: "two sack options", want: BadSACK,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, cat(optSACK(1, 2), optSACK(3, 4)), nil), v4opts{})},
		{name: "sack four blocks ok", want: Ok,
			pkt: v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, cat([]byte{1, 1}, optSACK(1, 2, 3, 4, 5, 6, 7, 8)), nil), v4opts{}),
			check: p(func(p *Parsed) string {
				l, r := p.SACKBlock(3)
				return cond(p.SACKBlocks == 4 && l == 7 && r == 8, "4 sack")
			})},
		{name: "udp length 7", want: UDPBadLength, pkt: func() []byte {
			l4 := udpDgram(1, 2, []byte("x"))
			l4[5] = 7
			return v4(v4a, v4b, ipproto.UDP, l4, v4opts{})
		}()},
		{name: "udp length mismatch", want: UDPBadLength, pkt: func() []byte {
			l4 := udpDgram(1, 2, []byte("xyz"))
			l4[5] = 10
			return v6(v6a, v6b, nil, ipproto.UDP, l4, false)
		}()},
		{name: "udp first fragment shorter than fragment", want: UDPBadLength, pkt: func() []byte {
			l4 := udpDgram(1, 2, make([]byte, 40))
			l4[5] = 20
			return v4(v4a, v4b, ipproto.UDP, l4, v4opts{flagFrag: 0x2000})
		}()},
		{name: "udp truncated header", want: Truncated,
			pkt: v6(v6a, v6b, nil, ipproto.UDP, []byte{0, 1, 0, 2, 0, 8}, true)},
		{name: "icmp truncated header", want: Truncated,
			pkt: v4(v4a, v4b, ipproto.ICMPv4, []byte{8, 0, 0, 0}, v4opts{noL4Ck: true})},
	}
}

func cond(ok bool, what string) string {
	if ok {
		return ""
	}
	return what
}
