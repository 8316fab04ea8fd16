package pcapreplay

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// Compare checks a replay's output against a golden capture (for example,
// what the kernel's own NAT sent for the same input). Packets are compared
// at the IP layer, since a router rewrites link headers; the IPv4 TTL, the
// IPv6 hop limit and the IPv4 header checksum are ignored because a router
// decrements the TTL and natalg's replay does not. Packets are matched in
// order within each direction (towards an inside address, or towards the
// outside), because a router forwarding both directions at once may
// interleave them differently from the input order.
//
// It returns one readable line per difference, at most max (0: no limit).
func Compare(out, golden []Packet, inside []netip.Prefix, max int) []string {
	var diffs []string
	add := func(s string) bool {
		diffs = append(diffs, s)
		return max == 0 || len(diffs) < max
	}
	ob, gb := split(out, inside), split(golden, inside)
	for d, name := range []string{"towards the outside", "towards the inside"} {
		o, g := ob[d], gb[d]
		n := min(len(o), len(g))
		for i := 0; i < n; i++ {
			a, b := normalize(o[i].ip), normalize(g[i].ip)
			if bytes.Equal(a, b) {
				continue
			}
			if !add(fmt.Sprintf("%s #%d (output packet %d, golden packet %d):\n  got  %s\n  want %s\n  %s",
				name, i+1, o[i].index, g[i].index, Describe(o[i].ip), Describe(g[i].ip), firstDiff(a, b))) {
				return diffs
			}
		}
		if len(o) != len(g) {
			if !add(fmt.Sprintf("%s: %d packets in the output, %d in the golden capture", name, len(o), len(g))) {
				return diffs
			}
			for i := n; i < len(o) && i < n+3; i++ {
				add(fmt.Sprintf("  extra output packet %d: %s", o[i].index, Describe(o[i].ip)))
			}
			for i := n; i < len(g) && i < n+3; i++ {
				add(fmt.Sprintf("  missing golden packet %d: %s", g[i].index, Describe(g[i].ip)))
			}
		}
	}
	return diffs
}

type indexed struct {
	ip    []byte
	index int // 1-based position in its capture
}

// split sorts IP packets by direction: [0] not to an inside address, [1] to one.
func split(ps []Packet, inside []netip.Prefix) [2][]indexed {
	var r [2][]indexed
	for i := range ps {
		ip := ps[i].IP()
		if ip == nil {
			continue
		}
		d := 0
		if dst, ok := dstAddr(ip); ok {
			for _, p := range inside {
				if p.Contains(dst) {
					d = 1
				}
			}
		}
		r[d] = append(r[d], indexed{ip: ip, index: i + 1})
	}
	return r
}

func dstAddr(ip []byte) (netip.Addr, bool) {
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(ip[16:20])), true
	case len(ip) >= 40 && ip[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(ip[24:40])), true
	}
	return netip.Addr{}, false
}

// normalize returns a copy of ip with the fields a forwarding router changes
// zeroed, cut to the IP length.
func normalize(ip []byte) []byte {
	c := bytes.Clone(ip)
	switch {
	case len(c) >= 20 && c[0]>>4 == 4:
		if n := int(c[2])<<8 | int(c[3]); n <= len(c) && n >= 20 {
			c = c[:n]
		}
		c[8], c[10], c[11] = 0, 0, 0
	case len(c) >= 40 && c[0]>>4 == 6:
		if n := 40 + (int(c[4])<<8 | int(c[5])); n <= len(c) {
			c = c[:n]
		}
		c[7] = 0
	}
	return c
}

func firstDiff(a, b []byte) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at IP offset %d: %#02x vs %#02x (lengths %d and %d)", i, a[i], b[i], len(a), len(b))
		}
	}
	return fmt.Sprintf("lengths differ: %d vs %d", len(a), len(b))
}

// Describe summarises an IP packet in one line: addresses, ports, TCP flags,
// sequence numbers and a printable payload.
func Describe(ip []byte) string {
	var p header.Parsed
	if r := p.Decode(bytes.Clone(ip)); r != header.Ok {
		return "malformed (" + r.String() + ")"
	}
	var b strings.Builder
	switch p.Proto {
	case ipproto.TCP:
		fmt.Fprintf(&b, "tcp %s > %s [%s] seq %d ack %d", netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), p.TCPFlags, p.Seq, p.Ack)
		for i := 0; i < p.SACKBlocks; i++ {
			l, r := p.SACKBlock(i)
			fmt.Fprintf(&b, " sack %d-%d", l, r)
		}
	case ipproto.UDP:
		fmt.Fprintf(&b, "udp %s > %s", netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort))
	default:
		fmt.Fprintf(&b, "proto %d %s > %s", p.Proto, p.Src, p.Dst)
	}
	if pl := p.Payload(); len(pl) > 0 {
		fmt.Fprintf(&b, " len %d", len(pl))
		if printable(pl) {
			b.WriteString(" " + strconv.Quote(string(pl)))
		}
	}
	return b.String()
}

func printable(b []byte) bool {
	if len(b) > 200 {
		return false
	}
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// Endpoints describes how a packet's addresses and ports were translated:
// "tcp 198.18.0.2:40000 > 198.19.0.2:21  =>  198.19.100.100:40000 > 198.19.0.2:21".
func Endpoints(before, after []byte) string {
	var a, b header.Parsed
	if a.Decode(bytes.Clone(before)) != header.Ok || b.Decode(bytes.Clone(after)) != header.Ok {
		return "?"
	}
	return fmt.Sprintf("%s %s > %s  =>  %s > %s", protoName(a.Proto),
		netip.AddrPortFrom(a.Src, a.SrcPort), netip.AddrPortFrom(a.Dst, a.DstPort),
		netip.AddrPortFrom(b.Src, b.SrcPort), netip.AddrPortFrom(b.Dst, b.DstPort))
}

func protoName(p ipproto.Proto) string {
	switch p {
	case ipproto.TCP:
		return "tcp"
	case ipproto.UDP:
		return "udp"
	}
	return strconv.Itoa(int(p))
}

// CompareReordered is Compare for a golden capture taken live, where the
// kernel may have sent a packet a few places later than it received it
// (seen under load: a pure ACK overtaken by the three after it). Within each
// direction, every golden packet is matched to an identical output packet
// (as Compare normalises them) no more than window places away, each output
// packet used once; what matches nowhere is a difference. It also returns
// how many packets matched out of place. The bytes must still be identical:
// only the order may differ, and only by window.
func CompareReordered(out, golden []Packet, inside []netip.Prefix, max, window int) (diffs []string, moved int) {
	add := func(s string) bool {
		diffs = append(diffs, s)
		return max == 0 || len(diffs) < max
	}
	ob, gb := split(out, inside), split(golden, inside)
	for d, name := range []string{"towards the outside", "towards the inside"} {
		o, g := ob[d], gb[d]
		on := make([][]byte, len(o))
		for i := range o {
			on[i] = normalize(o[i].ip)
		}
		used := make([]bool, len(o))
		for i := range g {
			b := normalize(g[i].ip)
			found := -1
			for k := 0; k <= window && found < 0; k++ {
				for _, j := range [2]int{i - k, i + k} {
					if j >= 0 && j < len(o) && !used[j] && bytes.Equal(on[j], b) {
						found = j
						break
					}
				}
			}
			if found < 0 {
				msg := fmt.Sprintf("%s: golden packet %d (#%d) matches no output packet within %d places:\n  want %s", name, g[i].index, i+1, window, Describe(g[i].ip))
				if i < len(o) {
					msg += fmt.Sprintf("\n  got  %s (output packet %d)\n  %s", Describe(o[i].ip), o[i].index, firstDiff(on[i], b))
				}
				if !add(msg) {
					return diffs, moved
				}
				continue
			}
			used[found] = true
			if found != i {
				moved++
			}
		}
		for j := range o {
			if !used[j] {
				if !add(fmt.Sprintf("%s: output packet %d matches no golden packet: %s", name, o[j].index, Describe(o[j].ip))) {
					return diffs, moved
				}
			}
		}
	}
	return diffs, moved
}
