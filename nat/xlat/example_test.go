package xlat_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
	"github.com/natalg/natalg/nat/xlat"
)

// A stateful NAT64 translates an IPv6 client's UDP datagram to IPv4: the
// destination is extracted from the RFC 6052 address, the source is a pool
// address, and the source port is rewritten afterwards with header.Parsed,
// which keeps the checksum right.
func ExampleToIPv4() {
	pfx := netip.MustParsePrefix("64:ff9b::/96")
	client := netip.MustParseAddr("2001:db8::1")
	server := xlat.Embed(pfx, netip.MustParseAddr("192.0.2.33"))

	// An IPv6 UDP datagram, 40000 -> 53, with 4 bytes of data.
	pkt := make([]byte, 40+8+4)
	pkt[0] = 0x60
	binary.BigEndian.PutUint16(pkt[4:], 12)
	pkt[6], pkt[7] = byte(ipproto.UDP), 64
	c, s := client.As16(), server.As16()
	copy(pkt[8:], c[:])
	copy(pkt[24:], s[:])
	binary.BigEndian.PutUint16(pkt[40:], 40000)
	binary.BigEndian.PutUint16(pkt[42:], 53)
	binary.BigEndian.PutUint16(pkt[44:], 12)
	copy(pkt[48:], "ping")
	var p header.Parsed
	p.Decode(pkt)
	p.ComputeL4Checksum()

	dst, _ := xlat.Extract(pfx, server)
	out, r := xlat.ToIPv4(pkt, netip.MustParseAddr("198.51.100.2"), dst, nil)
	if r != xlat.Ok {
		fmt.Println("dropped:", r)
		return
	}
	p.Decode(out)
	p.SetSrcPort(61000)
	fmt.Println(p.Src, p.SrcPort, "->", p.Dst, p.DstPort, "ttl", p.IPv4().TTL(), "checksum ok:", p.L4ChecksumValid())
	// Output: 198.51.100.2 61000 -> 192.0.2.33 53 ttl 64 checksum ok: true
}

// An IPv4 packet grows by 20 bytes: give ToIPv6 the room.
func ExampleToIPv6() {
	pkt := make([]byte, 28, 28+20)
	pkt[0], pkt[8], pkt[9] = 0x45, 50, byte(ipproto.ICMPv4)
	binary.BigEndian.PutUint16(pkt[2:], 28)
	copy(pkt[12:], []byte{192, 0, 2, 33})
	copy(pkt[16:], []byte{198, 51, 100, 2})
	header.IPv4(pkt).SetChecksum(header.IPv4(pkt).ComputeChecksum())
	pkt[20] = header.ICMPv4EchoReply
	binary.BigEndian.PutUint16(pkt[24:], 61000) // identifier
	var p header.Parsed
	p.Decode(pkt)
	p.ComputeL4Checksum()

	pfx := netip.MustParsePrefix("64:ff9b::/96")
	out, r := xlat.ToIPv6(pkt, xlat.Embed(pfx, p.Src), netip.MustParseAddr("2001:db8::1"), nil)
	if r != xlat.Ok {
		fmt.Println("dropped:", r)
		return
	}
	p.Decode(out)
	p.SetDstPort(4242) // the echo reply's identifier, back to the client's
	fmt.Println(p.Src, "->", p.Dst, "type", p.ICMPType, "id", p.DstPort, "len", len(out), "checksum ok:", p.L4ChecksumValid())
	// Output: 64:ff9b::c000:221 -> 2001:db8::1 type 129 id 4242 len 48 checksum ok: true
}
