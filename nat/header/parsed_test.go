package header

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/natalg/natalg/nat/ipproto"
)

func decodeCase(p *Parsed, c tcase, b []byte) Reason {
	if c.inner {
		return p.DecodeInner(b)
	}
	return p.Decode(b)
}

func TestDecodeTable(t *testing.T) {
	seen := map[Reason]bool{}
	for _, c := range corpus() {
		t.Run(c.name, func(t *testing.T) {
			var p Parsed
			b := clone(c.pkt)
			r := decodeCase(&p, c, b)
			seen[r] = true
			if r != c.want {
				t.Fatalf("reason %v, want %v", r, c.want)
			}
			if msg := invariants(&p, b, r); msg != "" {
				t.Fatalf("invariant: %s (%+v)", msg, p)
			}
			if c.check != nil {
				if msg := c.check(&p); msg != "" {
					t.Fatalf("check failed: %s (%+v)", msg, p)
				}
			}
			// Decoding never writes to the packet.
			if string(b) != string(c.pkt) {
				t.Fatal("Decode modified the packet")
			}
		})
	}
	for _, r := range Reasons() {
		if !seen[r] {
			t.Errorf("no table case yields %v", r)
		}
	}
}

// invariants checks what must hold after any decode of b, successful or
// not: no offset points outside Buf, Buf aliases b, and a successful decode
// is self-consistent.
func invariants(p *Parsed, b []byte, r Reason) string {
	n := len(p.Buf)
	switch {
	case n > len(b):
		return "Buf longer than input"
	case n > 0 && &p.Buf[0] != &b[0]:
		return "Buf does not alias input"
	case p.L4Off < 0 || p.L4Off > n, p.PayloadOff < 0 || p.PayloadOff > n, p.IPHeaderLen < 0 || p.IPHeaderLen > n:
		return "offset out of range"
	case p.SACKOff < 0 || p.SACKBlocks < 0 || p.SACKBlocks > 4 || (p.SACKBlocks > 0 && p.SACKOff+8*p.SACKBlocks > n):
		return "sack out of range"
	case p.SACKOff == 0 && p.SACKBlocks != 0:
		return "sack blocks without offset"
	}
	if r != Ok {
		return ""
	}
	switch {
	case p.Version != 4 && p.Version != 6:
		return "version"
	case p.Version == 4 && (!p.Src.Is4() || !p.Dst.Is4() || p.IPHeaderLen < 20):
		return "v4 addrs/header"
	case p.Version == 6 && (!p.Src.Is6() || !p.Dst.Is6() || p.IPHeaderLen < 40):
		return "v6 addrs/header"
	case p.L4Off != 0 && p.L4Off != p.IPHeaderLen:
		return "L4Off != IPHeaderLen"
	case p.L4Off != 0 && n-p.L4Off < 8:
		return "transport header shorter than 8"
	case p.PayloadOff != 0 && p.PayloadOff < p.L4Off+8:
		return "PayloadOff before end of transport header"
	case p.Fragment && !p.FirstFragment && p.L4Off != 0:
		return "later fragment with transport header"
	case p.FirstFragment && !p.Fragment:
		return "FirstFragment without Fragment"
	case p.ICMPError && p.PayloadOff == 0:
		return "ICMP error without embedded offset"
	case p.SACKBlocks > 0 && (p.Proto != ipproto.TCP || p.SACKOff < p.L4Off+20 || p.SACKOff+8*p.SACKBlocks > p.PayloadOff):
		return "SACK outside TCP options"
	}
	return ""
}

// TestTruncateEveryLength decodes every prefix of every corpus packet (and
// of every embedded packet) with both Decode and DecodeInner: no panic, the
// invariants hold, and an outer packet cut before its IP length is never Ok.
func TestTruncateEveryLength(t *testing.T) {
	var p, full Parsed
	for _, c := range corpus() {
		full.Decode(c.pkt)
		ipLen := len(full.Buf)
		wholeOk := full.Decode(c.pkt) == Ok
		for n := 0; n <= len(c.pkt); n++ {
			b := clone(c.pkt[:n])
			r := p.Decode(b)
			if msg := invariants(&p, b, r); msg != "" {
				t.Fatalf("%s: Decode(len %d) = %v: %s", c.name, n, r, msg)
			}
			if wholeOk && n < ipLen && r == Ok {
				t.Fatalf("%s: Decode of %d/%d bytes is Ok", c.name, n, ipLen)
			}
			r = p.DecodeInner(b)
			if msg := invariants(&p, b, r); msg != "" {
				t.Fatalf("%s: DecodeInner(len %d) = %v: %s", c.name, n, r, msg)
			}
			if r == Ok {
				// Whatever was parsed agrees with the whole packet.
				var w Parsed
				if w.DecodeInner(c.pkt) == Ok {
					if p.Src != w.Src || p.Dst != w.Dst || p.Proto != w.Proto || p.Version != w.Version {
						t.Fatalf("%s: DecodeInner(len %d) disagrees on IP fields", c.name, n)
					}
					if p.L4Off != 0 && (p.SrcPort != w.SrcPort || p.DstPort != w.DstPort) {
						t.Fatalf("%s: DecodeInner(len %d) disagrees on ports", c.name, n)
					}
				}
			}
			// The setters must not panic on whatever was decoded.
			exerciseSetters(&p)
		}
	}
}

func exerciseSetters(p *Parsed) {
	if p.Version == 4 {
		p.SetSrcAddr(netip.MustParseAddr("203.0.113.9"))
		p.SetDstAddr(netip.MustParseAddr("2001:db8::1")) // wrong family
	} else {
		p.SetSrcAddr(netip.MustParseAddr("2001:db8::99"))
		p.SetDstAddr(netip.MustParseAddr("10.0.0.1")) // wrong family
	}
	p.SetSrcPort(1)
	p.SetDstPort(2)
	p.SetTCPSeq(3)
	p.SetTCPAck(4)
	for i := -1; i <= 4; i++ {
		p.SACKBlock(i)
		p.SetSACKBlock(i, 5, 6)
	}
	p.TCPChecksumValid()
	p.L4ChecksumValid()
	p.ComputeL4Checksum()
	p.SetIPLength(len(p.Buf))
	p.Payload()
	_ = p.IPv4().Options()
	_ = p.IPv6().Payload()
	_ = p.TCP().Options()
	_ = p.UDP().Payload()
	_ = p.ICMPv4().EmbeddedOffset()
	_ = p.ICMPv6().EmbeddedOffset()
}

// verifyChecksums recomputes every checksum of the outer packet b with the
// reference implementation and compares it with the stored value, exactly.
// Transport checksums are checked for unfragmented packets; an IPv4 UDP
// checksum of 0 must still be 0 if wasZeroUDP.
func verifyChecksums(b []byte, inner bool, wasZeroUDP bool) error {
	var p Parsed
	var r Reason
	if inner {
		r = p.DecodeInner(b)
	} else {
		r = p.Decode(b)
	}
	if r != Ok {
		return fmt.Errorf("re-decode: %v", r)
	}
	var src, dst []byte
	if p.Version == 4 {
		hl := p.IPHeaderLen
		h := clone(p.Buf[:hl])
		h[10], h[11] = 0, 0
		if got, want := binary.BigEndian.Uint16(p.Buf[10:]), ^refSum(h, 0); got != want {
			return fmt.Errorf("ip checksum %#04x, want %#04x", got, want)
		}
		src, dst = p.Buf[12:16], p.Buf[16:20]
	} else {
		src, dst = p.Buf[8:24], p.Buf[24:40]
	}
	if p.L4Off == 0 || p.Fragment {
		return nil
	}
	l4 := p.L4()
	off := l4CkOff(p.Proto)
	if len(l4) < off+2 {
		return nil // quoted header cut before the checksum
	}
	if inner {
		// Only a complete quoted segment can be verified.
		if p.Proto == ipproto.TCP && p.PayloadOff == 0 {
			return nil
		}
		if p.Proto == ipproto.UDP && int(binary.BigEndian.Uint16(l4[4:])) != len(l4) {
			return nil
		}
		if p.Version == 4 && int(binary.BigEndian.Uint16(p.Buf[2:])) != len(p.Buf) {
			return nil
		}
	}
	got := binary.BigEndian.Uint16(l4[off:])
	if p.Proto == ipproto.UDP && wasZeroUDP {
		if got != 0 {
			return fmt.Errorf("zero UDP checksum became %#04x", got)
		}
		return nil
	}
	if want := refL4Checksum(src, dst, p.Proto, l4); got != want {
		return fmt.Errorf("proto %d checksum %#04x, want %#04x", p.Proto, got, want)
	}
	return nil
}

var (
	newV4  = []netip.Addr{netip.MustParseAddr("203.0.113.200"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("::ffff:10.1.2.3")}
	newV6  = []netip.Addr{netip.MustParseAddr("2001:db8:1::beef"), netip.MustParseAddr("::"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), netip.MustParseAddr("fe80::1%eth0")}
	newU16 = []uint16{0, 1, 0x7fff, 0x8000, 0xfffe, 0xffff, 21, 40000}
	newU32 = []uint32{0, 1, 0xffffffff, 0x80000000, 0x12345678}
)

// setter is one rewriting operation and how to check its visible effect.
type setter struct {
	name  string
	apply func(p *Parsed, i int) bool
	check func(p *Parsed, i int) bool // on a re-decoded packet
}

func setters(version uint8) []setter {
	addrs := newV4
	if version == 6 {
		addrs = newV6
	}
	want := func(i int) netip.Addr {
		a := addrs[i%len(addrs)]
		if version == 4 {
			return a.Unmap()
		}
		return a.WithZone("")
	}
	return []setter{
		{"SetSrcAddr", func(p *Parsed, i int) bool { return p.SetSrcAddr(addrs[i%len(addrs)]) },
			func(p *Parsed, i int) bool { return p.Src == want(i) }},
		{"SetDstAddr", func(p *Parsed, i int) bool { return p.SetDstAddr(addrs[i%len(addrs)]) },
			func(p *Parsed, i int) bool { return p.Dst == want(i) }},
		{"SetSrcPort", func(p *Parsed, i int) bool { return p.SetSrcPort(newU16[i%len(newU16)]) },
			func(p *Parsed, i int) bool { return p.SrcPort == newU16[i%len(newU16)] }},
		{"SetDstPort", func(p *Parsed, i int) bool { return p.SetDstPort(newU16[i%len(newU16)]) },
			func(p *Parsed, i int) bool { return p.DstPort == newU16[i%len(newU16)] }},
		{"SetTCPSeq", func(p *Parsed, i int) bool { return p.SetTCPSeq(newU32[i%len(newU32)]) },
			func(p *Parsed, i int) bool { return p.Seq == newU32[i%len(newU32)] }},
		{"SetTCPAck", func(p *Parsed, i int) bool { return p.SetTCPAck(newU32[i%len(newU32)]) },
			func(p *Parsed, i int) bool { return p.Ack == newU32[i%len(newU32)] }},
		{"SetSACKBlock", func(p *Parsed, i int) bool {
			return p.SetSACKBlock(p.SACKBlocks-1, newU32[i%len(newU32)], ^newU32[i%len(newU32)])
		}, func(p *Parsed, i int) bool {
			l, r := p.SACKBlock(p.SACKBlocks - 1)
			return l == newU32[i%len(newU32)] && r == ^newU32[i%len(newU32)]
		}},
	}
}

// TestSettersKeepChecksums applies every setter with several values to every
// valid corpus packet (outer and embedded), then recomputes every checksum
// from scratch with the reference implementation and requires exact equality
// with the incrementally maintained value, and re-decodes to check the field.
func TestSettersKeepChecksums(t *testing.T) {
	applied := map[string]int{}
	for _, c := range corpus() {
		if c.want != Ok {
			continue
		}
		var p0 Parsed
		decodeCase(&p0, c, c.pkt)
		zeroUDP := p0.Proto == ipproto.UDP && p0.L4Off != 0 && p0.UDP().Checksum() == 0
		for _, s := range setters(p0.Version) {
			for i := 0; i < 8; i++ {
				b := clone(c.pkt)
				var p Parsed
				decodeCase(&p, c, b)
				if !s.apply(&p, i) {
					continue
				}
				applied[s.name]++
				if err := verifyChecksums(b, c.inner, zeroUDP); err != nil {
					t.Fatalf("%s: %s #%d: %v", c.name, s.name, i, err)
				}
				var q Parsed
				decodeCase(&q, c, b)
				if !s.check(&q, i) || !s.check(&p, i) {
					t.Fatalf("%s: %s #%d: field not rewritten (p %+v)", c.name, s.name, i, q)
				}
			}
		}
	}
	for _, s := range setters(4) {
		if applied[s.name] == 0 {
			t.Errorf("%s never applied", s.name)
		}
	}
}

// TestRewriteEmbedded rewrites the packet embedded in an ICMP error through a
// second Parsed, then fixes the outer ICMP checksum with ComputeL4Checksum.
func TestRewriteEmbedded(t *testing.T) {
	for _, c := range corpus() {
		if c.want != Ok || c.inner || !strings.Contains(c.name, "quoting") {
			continue
		}
		b := clone(c.pkt)
		var outer, in Parsed
		if outer.Decode(b) != Ok || !outer.ICMPError {
			t.Fatalf("%s: not an ICMP error", c.name)
		}
		if r := in.DecodeInner(outer.Payload()); r != Ok {
			t.Fatalf("%s: inner %v", c.name, r)
		}
		a := newV4[0]
		if in.Version == 6 {
			a = newV6[0]
		}
		if !in.SetSrcAddr(a) || !in.SetDstAddr(a) {
			t.Fatalf("%s: address rewrite refused", c.name)
		}
		in.SetSrcPort(7)
		if err := verifyChecksums(outer.Payload(), true, false); err != nil {
			t.Fatalf("%s: inner: %v", c.name, err)
		}
		if !outer.ComputeL4Checksum() || !outer.L4ChecksumValid() {
			t.Fatalf("%s: outer ICMP checksum not fixed", c.name)
		}
		if err := verifyChecksums(b, false, false); err != nil {
			t.Fatalf("%s: outer: %v", c.name, err)
		}
	}
}

func TestUDPZeroChecksumStaysZero(t *testing.T) {
	b := v4(v4a, v4b, ipproto.UDP, udpDgram(1, 2, []byte("abc")), v4opts{noL4Ck: true})
	var p Parsed
	if p.Decode(b) != Ok {
		t.Fatal("decode")
	}
	p.SetSrcAddr(newV4[0])
	p.SetDstPort(9)
	if c := p.UDP().Checksum(); c != 0 {
		t.Fatalf("checksum %#04x, want 0", c)
	}
	// ComputeL4Checksum writes a real one.
	if !p.ComputeL4Checksum() || p.UDP().Checksum() == 0 || !p.L4ChecksumValid() {
		t.Fatal("ComputeL4Checksum")
	}
	if err := verifyChecksums(b, false, false); err != nil {
		t.Fatal(err)
	}
	// IPv6 zero UDP checksum is invalid.
	b6 := v6(v6a, v6b, nil, ipproto.UDP, udpDgram(1, 2, nil), true)
	if p.Decode(b6) != Ok || p.L4ChecksumValid() {
		t.Fatal("v6 zero UDP checksum reported valid")
	}
}

// TestUDPChecksumZeroResult finds a port value for which the updated UDP
// checksum computes to 0 and checks that 0xffff is stored instead.
func TestUDPChecksumZeroResult(t *testing.T) {
	b := v4(v4a, v4b, ipproto.UDP, udpDgram(1, 2, []byte("abc")), v4opts{})
	var p Parsed
	p.Decode(b)
	// The stored checksum is ^S, S the folded sum of pseudo-header and
	// datagram with source port 1. A new port P moves the sum to S - 1 + P
	// (mod 0xffff); P = 0x10000 - S makes it 0xffff, whose complement 0 must
	// be stored as 0xffff (RFC 768).
	s := uint32(^p.UDP().Checksum())
	port := uint16(0x10000 - s)
	if port == 0 || port == 1 {
		t.Skip("packet needs a different layout for this test")
	}
	p.SetSrcPort(port)
	if got := p.UDP().Checksum(); got != 0xffff {
		t.Fatalf("checksum %#04x after zero-result update, want 0xffff", got)
	}
	if !p.L4ChecksumValid() {
		t.Fatal("not valid")
	}
	if err := verifyChecksums(b, false, false); err != nil {
		t.Fatal(err)
	}
}

func TestICMPAllZeroEchoReply(t *testing.T) {
	b := v4(v4b, v4a, ipproto.ICMPv4, icmpMsg(ICMPv4EchoReply, 0, 0x0001, 0, nil), v4opts{})
	var p Parsed
	p.Decode(b)
	if !p.SetDstPort(0) {
		t.Fatal("SetDstPort on echo reply refused")
	}
	if c := p.ICMPv4().Checksum(); c != 0xffff || !p.L4ChecksumValid() {
		t.Fatalf("all-zero echo reply checksum %#04x, want 0xffff", c)
	}
	if p.SetSrcPort(5) {
		t.Fatal("SetSrcPort on echo reply should be refused")
	}
}

func TestSetIPLength(t *testing.T) {
	// Grow a v4 TCP payload in a larger buffer: the engine's resize workflow.
	orig := v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 21, 3, 4, ipproto.TCPACK, sackOpts, []byte("PORT 1,2,3,4,5,6\r\n")), v4opts{})
	buf := make([]byte, len(orig), len(orig)+64)
	copy(buf, orig)
	var p Parsed
	if p.Decode(buf) != Ok {
		t.Fatal("decode")
	}
	newPayload := []byte("PORT 203,0,113,200,156,64\r\n")
	buf = append(buf[:p.PayloadOff], newPayload...)
	if !p.SetIPLength(len(buf)) {
		t.Fatal("SetIPLength refused")
	}
	if len(p.Buf) != len(buf) || !p.IPv4().IsChecksumValid() || p.IPv4().ComputeChecksum() != p.IPv4().Checksum() {
		t.Fatal("IPv4 header not consistent")
	}
	if p.TCPChecksumValid() {
		t.Fatal("TCP checksum cannot be valid before recompute")
	}
	if !p.ComputeL4Checksum() || !p.TCPChecksumValid() {
		t.Fatal("recompute")
	}
	if err := verifyChecksums(buf, false, false); err != nil {
		t.Fatal(err)
	}
	if p.SetIPLength(cap(p.Buf)+1) || p.SetIPLength(p.IPHeaderLen-1) {
		t.Fatal("out of range length accepted")
	}

	// IPv6 with extension headers: payload length counts them.
	b6 := v6(v6a, v6b, []ext6{optsExt(ipproto.HopByHop, 1)}, ipproto.UDP, udpDgram(1, 2, []byte("abcdef")), false)
	if p.Decode(b6) != Ok || !p.SetIPLength(len(b6)-2) {
		t.Fatal("v6")
	}
	if got := p.IPv6().PayloadLength(); int(got) != len(b6)-2-40 {
		t.Fatalf("payload length %d", got)
	}
	p.UDP().SetLength(uint16(len(p.L4())))
	if !p.ComputeL4Checksum() || !p.L4ChecksumValid() {
		t.Fatal("v6 recompute")
	}
	var q Parsed
	if r := q.Decode(p.Buf); r != Ok {
		t.Fatalf("re-decode %v", r)
	}
}

func TestSettersRefuseWrongFamily(t *testing.T) {
	b := v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, nil, nil), v4opts{})
	orig := clone(b)
	var p Parsed
	p.Decode(b)
	if p.SetSrcAddr(netip.MustParseAddr("2001:db8::1")) || p.SetDstAddr(netip.Addr{}) {
		t.Fatal("v6 address accepted in v4 packet")
	}
	b6 := v6(v6a, v6b, nil, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, nil, nil), false)
	orig6 := clone(b6)
	var p6 Parsed
	p6.Decode(b6)
	if p6.SetSrcAddr(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("v4 address accepted in v6 packet")
	}
	if string(b) != string(orig) || string(b6) != string(orig6) {
		t.Fatal("refused setter modified the packet")
	}
	var zero Parsed
	if zero.SetSrcAddr(newV4[0]) || zero.SetSrcPort(1) || zero.SetTCPSeq(1) || zero.ComputeL4Checksum() || zero.SetIPLength(0) {
		t.Fatal("zero Parsed accepted a setter")
	}
}

func TestAllocs(t *testing.T) {
	pkts := [][]byte{
		v4(v4a, v4b, ipproto.TCP, tcpSeg(1, 2, 3, 4, ipproto.TCPACK, sackOpts, []byte("data")), v4opts{}),
		v6(v6a, v6b, []ext6{optsExt(ipproto.HopByHop, 1), fragExt(0, true)}, ipproto.UDP, udpDgram(1, 2, nil), false),
		v6(v6a, v6b, nil, ipproto.ICMPv6, icmpMsg(ICMPv6DstUnreachable, 4, 0, 0, innerV6TCPWhole()), false),
	}
	var p, in Parsed
	for i, b := range pkts {
		b4, b6 := newV4[0], newV6[0]
		n := testing.AllocsPerRun(200, func() {
			p.Decode(b)
			if p.ICMPError {
				in.DecodeInner(p.Payload())
				in.SetSrcAddr(b6)
				in.SetSrcPort(9)
				p.ComputeL4Checksum()
			}
			if p.Version == 4 {
				p.SetSrcAddr(b4)
				p.SetDstAddr(b4)
			} else {
				p.SetSrcAddr(b6)
				p.SetDstAddr(b6)
			}
			p.SetSrcPort(7)
			p.SetDstPort(8)
			p.SetTCPSeq(9)
			p.SetTCPAck(10)
			p.SetSACKBlock(0, 1, 2)
			p.SACKBlock(0)
			p.L4ChecksumValid()
			p.TCPChecksumValid()
			p.SetIPLength(len(p.Buf))
			_ = p.Src.String
		})
		if n != 0 {
			t.Errorf("packet %d: %v allocs per run, want 0", i, n)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range corpus() {
		f.Add(c.pkt, c.inner)
	}
	f.Fuzz(func(t *testing.T, data []byte, inner bool) {
		b := clone(data)
		var p Parsed
		var r Reason
		if inner {
			r = p.DecodeInner(b)
		} else {
			r = p.Decode(b)
		}
		if r.String() == "unknown" {
			t.Fatalf("undeclared reason %d", r)
		}
		if msg := invariants(&p, b, r); msg != "" {
			t.Fatalf("%v: %s", r, msg)
		}
		if r != Ok {
			exerciseSetters(&p) // must not panic
			return
		}
		if !inner && p.ICMPError {
			var in Parsed
			ir := in.DecodeInner(p.Payload())
			if msg := invariants(&in, p.Payload(), ir); msg != "" {
				t.Fatalf("inner %v: %s", ir, msg)
			}
		}
		// Setters keep valid checksums valid.
		ipValid := p.Version == 4 && p.IPv4().IsChecksumValid()
		l4Valid := !inner && p.L4ChecksumValid()
		zeroUDP := p.Proto == ipproto.UDP && p.L4Off != 0 && p.UDP().Checksum() == 0
		for i, s := range setters(p.Version) {
			s.apply(&p, i)
		}
		if ipValid && !p.IPv4().IsChecksumValid() {
			t.Fatal("IPv4 header checksum broken by setters")
		}
		if l4Valid && !p.L4ChecksumValid() {
			t.Fatal("transport checksum broken by setters")
		}
		if zeroUDP && p.UDP().Checksum() != 0 {
			t.Fatal("zero UDP checksum changed")
		}
		// Still decodes the same way (setters never change lengths).
		var q Parsed
		var r2 Reason
		if inner {
			r2 = q.DecodeInner(b)
		} else {
			r2 = q.Decode(b)
		}
		if r2 != Ok || q.L4Off != p.L4Off || q.PayloadOff != p.PayloadOff || q.Src != p.Src || q.Dst != p.Dst ||
			q.SrcPort != p.SrcPort || q.DstPort != p.DstPort || q.Seq != p.Seq || q.Ack != p.Ack {
			t.Fatalf("re-decode after setters: %v\n%+v\n%+v", r2, p, q)
		}
	})
}
