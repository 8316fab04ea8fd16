package header

import (
	"net/netip"

	"github.com/natalg/natalg/nat/ipproto"
)

// MaxIPv6ExtHeaders is the number of IPv6 extension headers Decode walks
// before it gives up with IPv6ExtChain.
const MaxIPv6ExtHeaders = 8

// Parsed is one IP packet decoded in place by Decode or DecodeInner. It is
// meant to be owned by the caller and reused: decoding does not allocate and
// all slices alias the decoded buffer.
//
// All offsets are relative to Buf and, after any Decode (even a failed one),
// are within Buf. An offset of 0 means "absent" (a transport header can never
// start at 0).
type Parsed struct {
	// Buf is the IP packet, truncated to the IPv4 total length or the IPv6
	// payload length + 40 (trailing link-layer padding is excluded).
	Buf []byte
	// Version is 4 or 6 (0 if the version nibble could not be read).
	Version uint8
	// IPHeaderLen is IHL*4 for IPv4, and 40 plus every extension header walked
	// for IPv6.
	IPHeaderLen int
	// Proto is the transport protocol: IPv4 Protocol, or for IPv6 the Next
	// Header value that ended the extension header walk (ipproto.TCP, ipproto.UDP,
	// ipproto.ICMPv4, ipproto.ICMPv6, ipproto.ESP, ipproto.NoNext, anything else). For
	// a later fragment it is the next header named by the fragment header.
	Proto ipproto.Proto
	// Src and Dst are the IP source and destination addresses.
	Src, Dst netip.Addr
	// Fragment is set for IPv4 with MF set or a non-zero fragment offset, and
	// for IPv6 with a Fragment header other than an atomic fragment (offset 0
	// and M clear, RFC 6946 §4).
	Fragment bool
	// FirstFragment is set for a fragment with offset 0, whose transport
	// header may be present. Fragment && !FirstFragment is a later fragment:
	// its transport header is never parsed and L4Off is 0.
	FirstFragment bool
	// L4Off is the offset of the transport header for TCP, UDP, ICMPv4 (in
	// IPv4) and ICMPv6 (in IPv6); 0 for other protocols and later fragments.
	L4Off int
	// PayloadOff is the offset of the transport payload: after the TCP header
	// and options, after the 8-byte UDP header, after the 8-byte ICMP header
	// (the embedded packet for ICMP errors). 0 if unknown, for instance for a
	// quoted TCP header cut short in DecodeInner.
	PayloadOff int
	// SrcPort and DstPort are the TCP or UDP ports. For ICMP echo the
	// identifier is SrcPort in a request and DstPort in a reply, the other
	// being 0.
	SrcPort, DstPort uint16
	// TCPFlags, Seq and Ack are the TCP control bits and numbers.
	TCPFlags ipproto.TCPFlags
	Seq, Ack uint32
	// MSS is the value of the MSS option of a SYN segment, 0 if absent.
	MSS uint16
	// SACKOff is the offset of the first SACK block's left edge, 0 if there
	// is no SACK option; SACKBlocks is the number of 8-byte blocks (1..4).
	SACKOff    int
	SACKBlocks int
	// ICMPType and ICMPCode are the ICMPv4 or ICMPv6 type and code.
	ICMPType, ICMPCode uint8
	// ICMPError is set for an ICMP (RFC 792) or ICMPv6 (RFC 4443 §3) error,
	// whose invoking packet starts at PayloadOff: decode it with DecodeInner.
	ICMPError bool

	inner bool // decoded by DecodeInner
}

// Decode parses b, one IP packet starting at its IP header, into p without
// allocating. It returns Ok or the Reason the packet is malformed. p.Buf
// aliases b; p is overwritten entirely.
//
// Checks: IPv4 (RFC 791 §3.1): version, IHL >= 5, IHL*4 <= total length <=
// len(b), header checksum. IPv6 (RFC 8200): 40 + payload length <= len(b);
// Hop-by-Hop (first only), Routing, Destination Options, Fragment (at most
// one) and AH (RFC 4302 §2.2 length) headers are walked with bounds checks,
// at most MaxIPv6ExtHeaders of them; ESP, No Next Header and unknown values
// end the walk with no transport parsing. Later fragments are not parsed
// past the IP header. TCP (RFC 9293 §3.1): data offset >= 5 and within the
// packet, options walked strictly (MSS length 4, SACK length 2+8n with n in
// 1..4 per RFC 2018 §3, every other option length >= 2 and within the
// options). UDP (RFC 768): length >= 8 and, unfragmented, equal to the IP
// payload length. ICMP: the 8-byte header must be present. Transport
// checksums are not verified (see L4ChecksumValid).
//
// On failure p describes the packet as far as it was decoded, for logging;
// its offsets are still within p.Buf.
func (p *Parsed) Decode(b []byte) Reason { return p.decode(b, false) }

// DecodeInner parses the packet embedded in an ICMP error (RFC 792, RFC 4443
// §3; for instance Payload() of a packet whose ICMPError is set). It is
// Decode with three differences: a transport header cut short is accepted as
// long as its first 8 bytes are present (ports and TCP sequence number, the
// UDP header, or ICMP type/code/checksum/identifier/sequence), in which case
// fields past the cut are zero and PayloadOff may be 0; the IPv4 total length
// and IPv6 payload length are not checked against len(b) (Buf is cut at
// whichever is shorter); and an embedded ICMP error is rejected with
// ICMPNestedError. The IPv4 header checksum is still verified.
//
// The setters work on the inner packet and keep its own checksums right as
// far as they are present, but the outer ICMP checksum covers those bytes
// too: recompute it afterwards on the outer Parsed with ComputeL4Checksum.
func (p *Parsed) DecodeInner(b []byte) Reason { return p.decode(b, true) }

func (p *Parsed) decode(b []byte, inner bool) Reason {
	*p = Parsed{Buf: b, inner: inner}
	if len(b) == 0 {
		return Truncated
	}
	var r Reason
	switch b[0] >> 4 {
	case 4:
		r = p.decodeIPv4(b)
	case 6:
		r = p.decodeIPv6(b)
	default:
		return BadVersion
	}
	if r != Ok || p.L4Off == 0 {
		return r
	}
	switch p.Proto {
	case ipproto.TCP:
		return p.decodeTCP()
	case ipproto.UDP:
		return p.decodeUDP()
	default:
		return p.decodeICMP()
	}
}

// decodeIPv4 decodes the IPv4 header (RFC 791 §3.1) and sets L4Off to the
// transport header offset if the transport is one this package parses.
func (p *Parsed) decodeIPv4(b []byte) Reason {
	if len(b) < IPv4MinimumSize {
		return Truncated
	}
	hl := int(b[ipv4VersIHL]&0xf) * 4
	if hl < IPv4MinimumSize {
		return BadIHL
	}
	if hl > len(b) {
		return Truncated
	}
	tl := int(get16(b, ipv4TotalLen))
	if tl < hl {
		return BadTotalLength
	}
	if tl > len(b) {
		if !p.inner {
			return BadTotalLength
		}
		tl = len(b)
	}
	p.Version = 4
	p.Buf = b[:tl]
	p.IPHeaderLen = hl
	p.Proto = ipproto.Proto(b[ipv4Protocol])
	p.Src = netip.AddrFrom4([4]byte(b[ipv4SrcAddr : ipv4SrcAddr+4]))
	p.Dst = netip.AddrFrom4([4]byte(b[ipv4DstAddr : ipv4DstAddr+4]))
	ff := get16(b, ipv4FlagsFrag)
	p.Fragment = ff&0x3fff != 0
	p.FirstFragment = p.Fragment && ff&0x1fff == 0
	if !IPv4(b[:hl]).IsChecksumValid() {
		return BadIPChecksum
	}
	if p.Fragment && !p.FirstFragment {
		return Ok
	}
	switch p.Proto {
	case ipproto.TCP, ipproto.UDP, ipproto.ICMPv4:
		p.L4Off = hl
	}
	return Ok
}

// decodeIPv6 decodes the IPv6 fixed header (RFC 8200 §3) and walks the
// extension headers (RFC 8200 §4, RFC 4302 §2), setting L4Off as
// decodeIPv4 does.
func (p *Parsed) decodeIPv6(b []byte) Reason {
	if len(b) < IPv6FixedHeaderSize {
		return Truncated
	}
	tl := IPv6FixedHeaderSize + int(get16(b, ipv6PayloadLen))
	if tl > len(b) {
		if !p.inner {
			return BadTotalLength
		}
		tl = len(b)
	}
	b = b[:tl]
	p.Version = 6
	p.Buf = b
	p.Src = netip.AddrFrom16([16]byte(b[ipv6SrcAddr : ipv6SrcAddr+16]))
	p.Dst = netip.AddrFrom16([16]byte(b[ipv6DstAddr : ipv6DstAddr+16]))

	nh := ipproto.Proto(b[ipv6NextHeader])
	off := IPv6FixedHeaderSize
	p.IPHeaderLen = off
	sawFrag := false
	for n := 0; ; n++ {
		switch nh {
		case ipproto.HopByHop, ipproto.Routing, ipproto.DstOpts, ipproto.Fragment, ipproto.AH:
		default:
			p.Proto = nh
			switch nh {
			case ipproto.TCP, ipproto.UDP, ipproto.ICMPv6:
				p.L4Off = off
			}
			return Ok
		}
		if n == MaxIPv6ExtHeaders {
			return IPv6ExtChain
		}
		// RFC 8200 §4.3: Hop-by-Hop only immediately after the IPv6 header.
		if nh == ipproto.HopByHop && off != IPv6FixedHeaderSize {
			return IPv6ExtChain
		}
		if !has(b, off, 8) { // every extension header is at least 8 bytes
			return Truncated
		}
		var l int
		switch nh {
		case ipproto.Fragment: // RFC 8200 §4.5
			if sawFrag {
				return IPv6ExtChain
			}
			sawFrag = true
			l = 8
			offM := get16(b, off+2)
			if offM != 0 { // atomic fragments (offset 0, M 0) are whole packets
				p.Fragment = true
				p.FirstFragment = offM&0xfff8 == 0
			}
		case ipproto.AH: // RFC 4302 §2.2: length in 4-byte units, minus 2
			l = (int(b[off+1]) + 2) * 4
		default: // RFC 8200 §4.3, §4.4, §4.6: length in 8-byte units, minus 1
			l = (int(b[off+1]) + 1) * 8
		}
		if !has(b, off, l) {
			return Truncated
		}
		nh = ipproto.Proto(b[off])
		off += l
		p.IPHeaderLen = off
		if p.Fragment && !p.FirstFragment {
			p.Proto = nh
			return Ok
		}
	}
}

// decodeTCP decodes the TCP header at L4Off (RFC 9293 §3.1) and walks its
// options (RFC 9293 §3.2, RFC 2018 §3).
func (p *Parsed) decodeTCP() Reason {
	b := p.Buf
	off := p.L4Off
	avail := len(b) - off
	if avail < 8 || (!p.inner && avail < TCPMinimumSize) {
		p.L4Off = 0
		return Truncated
	}
	p.SrcPort = get16(b, off+tcpSrcPort)
	p.DstPort = get16(b, off+tcpDstPort)
	p.Seq = get32(b, off+tcpSeq)
	if avail < TCPMinimumSize {
		return Ok // DecodeInner: quoted header cut after 8 bytes or more
	}
	p.Ack = get32(b, off+tcpAck)
	p.TCPFlags = ipproto.TCPFlags(b[off+tcpFlags])
	hl := int(b[off+tcpDataOff]>>4) * 4
	if hl < TCPMinimumSize {
		return BadTCPOffset
	}
	if hl > avail {
		if p.inner {
			return Ok // options cut off by the quote: not walked
		}
		return BadTCPOffset
	}
	if r := p.walkTCPOptions(off+TCPMinimumSize, off+hl); r != Ok {
		return r
	}
	p.PayloadOff = off + hl
	return Ok
}

// walkTCPOptions checks the options in Buf[start:end] and records MSS and
// SACK (RFC 9293 §3.2 option formats; RFC 2018 §3 SACK).
func (p *Parsed) walkTCPOptions(start, end int) Reason {
	b := p.Buf[:end]
	for i := start; i < end; {
		kind := b[i]
		switch kind {
		case TCPOptEOL:
			return Ok // the rest is padding
		case TCPOptNOP:
			i++
			continue
		}
		if i+1 >= end {
			return BadTCPOptions
		}
		l := int(b[i+1])
		if l < 2 || l > end-i {
			return BadTCPOptions
		}
		switch kind {
		case TCPOptMSS:
			if l != 4 {
				return BadTCPOptions
			}
			if p.TCPFlags&ipproto.TCPSYN != 0 {
				p.MSS = get16(b, i+2)
			}
		case TCPOptSACK:
			n := (l - 2) / 8
			if (l-2)%8 != 0 || n < 1 || n > 4 || p.SACKOff != 0 {
				return BadSACK
			}
			p.SACKOff = i + 2
			p.SACKBlocks = n
		}
		i += l
	}
	return Ok
}

// decodeUDP decodes the UDP header at L4Off (RFC 768).
func (p *Parsed) decodeUDP() Reason {
	b := p.Buf
	off := p.L4Off
	avail := len(b) - off
	if avail < UDPHeaderSize {
		p.L4Off = 0
		return Truncated
	}
	p.SrcPort = get16(b, off+udpSrcPort)
	p.DstPort = get16(b, off+udpDstPort)
	ul := int(get16(b, off+udpLength))
	switch {
	case ul < UDPHeaderSize:
		return UDPBadLength
	case p.inner:
		// The quote may be cut anywhere: nothing more to compare.
	case p.Fragment:
		// First fragment: the datagram extends past this fragment.
		if ul < avail {
			return UDPBadLength
		}
	case ul != avail:
		return UDPBadLength
	}
	p.PayloadOff = off + UDPHeaderSize
	return Ok
}

// decodeICMP decodes the ICMPv4 (RFC 792) or ICMPv6 (RFC 4443) header at
// L4Off.
func (p *Parsed) decodeICMP() Reason {
	b := p.Buf
	off := p.L4Off
	if len(b)-off < ICMPv4MinimumSize {
		p.L4Off = 0
		return Truncated
	}
	t := b[off+icmpType]
	p.ICMPType = t
	p.ICMPCode = b[off+icmpCode]
	var isErr, req, rep bool
	if p.Version == 4 {
		isErr, req, rep = ICMPv4IsError(t), t == ICMPv4Echo, t == ICMPv4EchoReply
	} else {
		isErr, req, rep = ICMPv6IsError(t), t == ICMPv6EchoRequest, t == ICMPv6EchoReply
	}
	if isErr {
		if p.inner {
			return ICMPNestedError
		}
		p.ICMPError = true
	}
	switch {
	case req:
		p.SrcPort = get16(b, off+icmpIdent)
	case rep:
		p.DstPort = get16(b, off+icmpIdent)
	}
	p.PayloadOff = off + ICMPv4MinimumSize
	return Ok
}

// Payload returns the transport payload, Buf[PayloadOff:]: TCP or UDP data,
// ICMP echo data, or the packet embedded in an ICMP error. It returns nil if
// there is none or it is empty.
func (p *Parsed) Payload() []byte {
	if p.PayloadOff <= 0 || p.PayloadOff >= len(p.Buf) {
		return nil
	}
	return p.Buf[p.PayloadOff:]
}

// L4 returns the transport header and payload, Buf[L4Off:], or nil if there
// is no transport header (L4Off 0).
func (p *Parsed) L4() []byte {
	if p.L4Off <= 0 || p.L4Off > len(p.Buf) {
		return nil
	}
	return p.Buf[p.L4Off:]
}

// IPv4 returns the IPv4 view of Buf, or nil if the packet is not IPv4.
func (p *Parsed) IPv4() IPv4 {
	if p.Version != 4 {
		return nil
	}
	return IPv4(p.Buf)
}

// IPv6 returns the IPv6 view of Buf, or nil if the packet is not IPv6.
func (p *Parsed) IPv6() IPv6 {
	if p.Version != 6 {
		return nil
	}
	return IPv6(p.Buf)
}

// TCP returns the TCP view at L4Off, or nil if there is no TCP header.
func (p *Parsed) TCP() TCP {
	if p.Proto != ipproto.TCP {
		return nil
	}
	return TCP(p.L4())
}

// UDP returns the UDP view at L4Off, or nil if there is no UDP header.
func (p *Parsed) UDP() UDP {
	if p.Proto != ipproto.UDP {
		return nil
	}
	return UDP(p.L4())
}

// ICMPv4 returns the ICMPv4 view at L4Off, or nil if the packet is not ICMP
// over IPv4.
func (p *Parsed) ICMPv4() ICMPv4 {
	if p.Version != 4 || p.Proto != ipproto.ICMPv4 {
		return nil
	}
	return ICMPv4(p.L4())
}

// ICMPv6 returns the ICMPv6 view at L4Off, or nil if the packet is not
// ICMPv6 over IPv6.
func (p *Parsed) ICMPv6() ICMPv6 {
	if p.Version != 6 || p.Proto != ipproto.ICMPv6 {
		return nil
	}
	return ICMPv6(p.L4())
}
