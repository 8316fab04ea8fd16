package header

import (
	"math/bits"
	"net/netip"

	"github.com/natalg/natalg/nat/checksum"
	"github.com/natalg/natalg/nat/ipproto"
)

// This file holds the in-place rewriting methods of Parsed. Each keeps every
// checksum the packet carries correct by RFC 1624 incremental updates: the
// IPv4 header checksum, and the transport checksum including the
// pseudo-header (RFC 793 §3.1, RFC 768, RFC 8200 §8.1, RFC 4443 §2.3).
//
// Common preconditions: p was filled by a successful Decode or DecodeInner
// and p.Buf has not been modified since except through these methods. The
// methods never panic; when they cannot apply they change nothing and
// return false.

// SetSrcAddr rewrites the IP source address to a, updating the IPv4 header
// checksum and the TCP, UDP or ICMPv6 checksum (their pseudo-header contains
// the address; ICMPv4's checksum does not). A zero IPv4 UDP checksum ("no
// checksum", RFC 768) stays zero. p.Src is updated.
//
// The address family cannot change: a must be IPv4 (or IPv4-mapped, which is
// unmapped) for an IPv4 packet and IPv6 for an IPv6 packet, else SetSrcAddr
// returns false and changes nothing. In a later fragment (no transport
// header) only the IP header is rewritten: the transport checksum lives in
// the first fragment.
func (p *Parsed) SetSrcAddr(a netip.Addr) bool { return p.setAddr(a, true) }

// SetDstAddr is SetSrcAddr for the destination address; p.Dst is updated.
func (p *Parsed) SetDstAddr(a netip.Addr) bool { return p.setAddr(a, false) }

func (p *Parsed) setAddr(a netip.Addr, src bool) bool {
	switch p.Version {
	case 4:
		a = a.Unmap()
		if !a.Is4() || len(p.Buf) < IPv4MinimumSize {
			return false
		}
		off := ipv4DstAddr
		if src {
			off = ipv4SrcAddr
		}
		n := a.As4()
		p.updatePseudoHeader(p.Buf[off:off+4], n[:])
		IPv4(p.Buf).setAddr(off, a)
	case 6:
		if !a.Is6() || len(p.Buf) < IPv6FixedHeaderSize {
			return false
		}
		off := ipv6DstAddr
		if src {
			off = ipv6SrcAddr
		}
		n := a.As16()
		f := p.Buf[off : off+16]
		p.updatePseudoHeader(f, n[:])
		copy(f, n[:])
		a = netip.AddrFrom16(n) // drop any zone, as the packet does
	default:
		return false
	}
	if src {
		p.Src = a
	} else {
		p.Dst = a
	}
	return true
}

// updatePseudoHeader updates the transport checksum for a pseudo-header
// address changing from old to new. It must run before old is overwritten.
func (p *Parsed) updatePseudoHeader(old, new []byte) {
	l4 := p.L4()
	if l4 == nil {
		return
	}
	switch {
	case p.Proto == ipproto.TCP:
		if has(l4, tcpChecksum, 2) {
			put16(l4, tcpChecksum, checksum.UpdateBytes(get16(l4, tcpChecksum), old, new))
		}
	case p.Proto == ipproto.UDP:
		if c := get16(l4, udpChecksum); c != 0 {
			put16(l4, udpChecksum, udpNonZero(checksum.UpdateBytes(c, old, new)))
		}
	case p.Proto == ipproto.ICMPv6 && p.Version == 6:
		if has(l4, icmpChecksum, 2) {
			put16(l4, icmpChecksum, checksum.UpdateBytes(get16(l4, icmpChecksum), old, new))
		}
	}
}

// SetSrcPort rewrites the TCP or UDP source port, or the identifier of an
// ICMP(v6) echo request, which Decode reports as SrcPort, updating the
// transport checksum. p.SrcPort is updated. It returns false (and changes
// nothing) if the packet has no such field: other protocols, later fragments,
// ICMP messages other than echo requests.
func (p *Parsed) SetSrcPort(v uint16) bool {
	if !p.setPort(v, true) {
		return false
	}
	p.SrcPort = v
	return true
}

// SetDstPort rewrites the TCP or UDP destination port, or the identifier of
// an ICMP(v6) echo reply, which Decode reports as DstPort, like SetSrcPort.
// p.DstPort is updated.
func (p *Parsed) SetDstPort(v uint16) bool {
	if !p.setPort(v, false) {
		return false
	}
	p.DstPort = v
	return true
}

func (p *Parsed) setPort(v uint16, src bool) bool {
	l4 := p.L4()
	if l4 == nil {
		return false
	}
	switch p.Proto {
	case ipproto.TCP:
		if src {
			TCP(l4).SetSrcPort(v)
		} else {
			TCP(l4).SetDstPort(v)
		}
		return true
	case ipproto.UDP:
		if src {
			UDP(l4).SetSrcPort(v)
		} else {
			UDP(l4).SetDstPort(v)
		}
		return true
	}
	// ICMP echo: the identifier stands for the port on one side only.
	var req, rep bool
	switch {
	case p.Version == 4 && p.Proto == ipproto.ICMPv4:
		req, rep = p.ICMPType == ICMPv4Echo, p.ICMPType == ICMPv4EchoReply
	case p.Version == 6 && p.Proto == ipproto.ICMPv6:
		req, rep = p.ICMPType == ICMPv6EchoRequest, p.ICMPType == ICMPv6EchoReply
	}
	if (src && req) || (!src && rep) {
		icmpSet16(l4, icmpIdent, v)
		return true
	}
	return false
}

// SetTCPSeq rewrites the TCP sequence number, updating the TCP checksum
// incrementally (when the checksum field is present: a quoted header in an
// ICMP error may stop after 8 bytes). p.Seq is updated. It returns false if
// there is no TCP header.
func (p *Parsed) SetTCPSeq(v uint32) bool {
	t := p.TCP()
	if !has(t, tcpSeq, 4) {
		return false
	}
	t.SetSeq(v)
	p.Seq = v
	return true
}

// SetTCPAck rewrites the TCP acknowledgment number like SetTCPSeq. It returns
// false if there is no TCP header or it stops before the field.
func (p *Parsed) SetTCPAck(v uint32) bool {
	t := p.TCP()
	if !has(t, tcpAck, 4) {
		return false
	}
	t.SetAck(v)
	p.Ack = v
	return true
}

// SACKBlock returns the left and right edges of SACK block i (RFC 2018 §3),
// 0 <= i < SACKBlocks; otherwise it returns 0, 0.
func (p *Parsed) SACKBlock(i int) (left, right uint32) {
	if i < 0 || i >= p.SACKBlocks || p.SACKOff <= 0 {
		return 0, 0
	}
	off := p.SACKOff + 8*i
	return get32(p.Buf, off), get32(p.Buf, off+4)
}

// SetSACKBlock rewrites SACK block i (0 <= i < SACKBlocks), updating the TCP
// checksum incrementally. It returns false if there is no such block.
func (p *Parsed) SetSACKBlock(i int, left, right uint32) bool {
	if i < 0 || i >= p.SACKBlocks || p.SACKOff <= 0 {
		return false
	}
	off := p.SACKOff + 8*i
	t := p.TCP()
	if !has(p.Buf, off, 8) || !has(t, tcpChecksum, 2) {
		return false
	}
	ol, or := get32(p.Buf, off), get32(p.Buf, off+4)
	put32(p.Buf, off, left)
	put32(p.Buf, off+4, right)
	c := checksum.Update32(t.Checksum(), ol, left)
	t.SetChecksum(checksum.Update32(c, or, right))
	return true
}

// SetIPLength sets the IPv4 Total Length (updating the header checksum) or
// the IPv6 Payload Length (totalIPLen - 40, extension headers included) to
// describe an IP packet of totalIPLen bytes, and reslices p.Buf to
// totalIPLen. It is meant for after the payload has been resized in place:
// the backing array of p.Buf must already hold the new packet.
//
// It does not touch the UDP length or any transport checksum: update those
// afterwards (UDP.SetLength, ComputeL4Checksum). It returns false and changes
// nothing if totalIPLen is smaller than IPHeaderLen, larger than the length
// field allows, or larger than cap(p.Buf).
func (p *Parsed) SetIPLength(totalIPLen int) bool {
	if totalIPLen < p.IPHeaderLen || totalIPLen > cap(p.Buf) {
		return false
	}
	switch p.Version {
	case 4:
		if totalIPLen > 0xffff || len(p.Buf) < IPv4MinimumSize {
			return false
		}
		IPv4(p.Buf).SetTotalLength(uint16(totalIPLen))
	case 6:
		pl := totalIPLen - IPv6FixedHeaderSize
		if pl < 0 || pl > 0xffff || len(p.Buf) < IPv6FixedHeaderSize {
			return false
		}
		IPv6(p.Buf).SetPayloadLength(uint16(pl))
	default:
		return false
	}
	p.Buf = p.Buf[:totalIPLen]
	return true
}

// pseudoHeader returns the checksum accumulator of the transport
// pseudo-header for a transport segment of length n.
func (p *Parsed) pseudoHeader(n int) uint32 {
	if p.Version == 4 {
		return checksum.PseudoHeader(p.Buf[ipv4SrcAddr:ipv4SrcAddr+4],
			p.Buf[ipv4DstAddr:ipv4DstAddr+4], p.Proto, uint32(n))
	}
	return checksum.PseudoHeader(p.Buf[ipv6SrcAddr:ipv6SrcAddr+16],
		p.Buf[ipv6DstAddr:ipv6DstAddr+16], p.Proto, uint32(n))
}

// wholeL4 returns the transport segment if its checksum can be computed
// here: a transport header decoded by Decode (not DecodeInner, whose quote
// is usually cut short) in an unfragmented packet.
func (p *Parsed) wholeL4() []byte {
	if p.inner || p.Fragment {
		return nil
	}
	l4 := p.L4()
	if p.Proto == ipproto.TCP && len(l4) < TCPMinimumSize {
		return nil
	}
	return l4
}

// TCPChecksumValid reports whether p is an unfragmented TCP segment from
// Decode whose checksum, computed over the pseudo-header and the whole
// segment (RFC 9293 §3.1), verifies.
func (p *Parsed) TCPChecksumValid() bool {
	l4 := p.wholeL4()
	if p.Proto != ipproto.TCP || l4 == nil {
		return false
	}
	return checksum.Checksum(l4, p.pseudoHeader(len(l4))) == 0
}

// L4ChecksumValid reports whether the transport checksum verifies: TCP, UDP
// and ICMPv6 over the pseudo-header and the whole segment, ICMPv4 over the
// message (RFC 792). An IPv4 UDP checksum of 0 ("none", RFC 768) is valid;
// an IPv6 one is not (RFC 8200 §8.1).
//
// It returns true when there is nothing it can verify: other protocols,
// fragments (the checksum covers the reassembled datagram) and packets from
// DecodeInner (ICMP quotes are usually cut short).
func (p *Parsed) L4ChecksumValid() bool {
	l4 := p.wholeL4()
	if l4 == nil {
		return true
	}
	switch p.Proto {
	case ipproto.TCP:
		return checksum.Checksum(l4, p.pseudoHeader(len(l4))) == 0
	case ipproto.UDP:
		if get16(l4, udpChecksum) == 0 {
			return p.Version == 4
		}
		return checksum.Checksum(l4, p.pseudoHeader(len(l4))) == 0
	case ipproto.ICMPv4:
		return checksum.Checksum(l4, 0) == 0
	case ipproto.ICMPv6:
		return checksum.Checksum(l4, p.pseudoHeader(len(l4))) == 0
	}
	return true
}

// ComputeL4Checksum recomputes the transport checksum from scratch over the
// whole of Buf[L4Off:] and writes it: TCP, UDP (with pseudo-header; a result
// of 0 is written as 0xffff, and an IPv4 checksum of 0 is replaced by a real
// one), ICMPv4 (message only) or ICMPv6 (with pseudo-header). Use it after
// changing the payload, or on an outer ICMP error after rewriting the
// embedded packet. It returns false, changing nothing, for other protocols,
// fragments, and packets from DecodeInner.
func (p *Parsed) ComputeL4Checksum() bool {
	l4 := p.wholeL4()
	if l4 == nil {
		return false
	}
	switch p.Proto {
	case ipproto.TCP:
		put16(l4, tcpChecksum, 0)
		put16(l4, tcpChecksum, checksum.Checksum(l4, p.pseudoHeader(len(l4))))
	case ipproto.UDP:
		put16(l4, udpChecksum, 0)
		put16(l4, udpChecksum, udpNonZero(checksum.Checksum(l4, p.pseudoHeader(len(l4)))))
	case ipproto.ICMPv4:
		put16(l4, icmpChecksum, 0)
		put16(l4, icmpChecksum, checksum.Checksum(l4, 0))
	case ipproto.ICMPv6:
		put16(l4, icmpChecksum, 0)
		put16(l4, icmpChecksum, checksum.Checksum(l4, p.pseudoHeader(len(l4))))
	default:
		return false
	}
	return true
}

// ClearTCPUrgent clears the URG control bit and the Urgent Pointer, updating
// the TCP checksum incrementally (RFC 9293 §3.1 fields). A gateway that
// changed a segment's payload cannot keep the pointer's meaning; RFC 6384
// §5 allows it to clear the bit instead. It returns false if there is no
// whole TCP header.
func (p *Parsed) ClearTCPUrgent() bool {
	t := p.TCP()
	if !has(t, tcpUrgent, 2) {
		return false
	}
	if w := get16(t, tcpDataOff); w&uint16(ipproto.TCPURG) != 0 {
		t.set16(tcpDataOff, w&^uint16(ipproto.TCPURG))
	}
	t.set16(tcpUrgent, 0)
	p.TCPFlags &^= ipproto.TCPURG
	return true
}

// SetTCPFlags replaces the TCP control bits (byte 13, RFC 9293 §3.1),
// updating the checksum incrementally. It returns false if there is no
// whole TCP header.
func (p *Parsed) SetTCPFlags(f ipproto.TCPFlags) bool {
	t := p.TCP()
	if !has(t, tcpUrgent, 2) {
		return false
	}
	w := get16(t, tcpDataOff)
	t.set16(tcpDataOff, w&0xff00|uint16(f))
	p.TCPFlags = f
	return true
}

// ClampMSS lowers the MSS option of a SYN segment to at most limit (RFC 9293
// §3.7.1), updating the checksum incrementally and p.MSS. It reports
// whether the option was changed; a segment without the option, or with
// one at most limit, is left alone.
func (p *Parsed) ClampMSS(limit uint16) bool {
	if p.TCPFlags&ipproto.TCPSYN == 0 || p.MSS == 0 || p.MSS <= limit || p.L4Off == 0 {
		return false
	}
	t := p.TCP()
	if !has(t, TCPMinimumSize, 0) {
		return false
	}
	opts := t.Options()
	for i := 0; i < len(opts); {
		switch opts[i] {
		case TCPOptEOL:
			return false
		case TCPOptNOP:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 {
			return false
		}
		if opts[i] == TCPOptMSS && opts[i+1] == 4 && i+4 <= len(opts) {
			off := TCPMinimumSize + i + 2
			if off%2 == 0 {
				t.set16(off, limit)
			} else {
				// a value across two checksum words (after one NOP):
				// its bytes count swapped in the one's complement sum
				old := get16(t, off)
				put16(t, off, limit)
				t.SetChecksum(checksum.Update16(t.Checksum(), bits.ReverseBytes16(old), bits.ReverseBytes16(limit)))
			}
			p.MSS = limit
			return true
		}
		i += int(opts[i+1])
	}
	return false
}
