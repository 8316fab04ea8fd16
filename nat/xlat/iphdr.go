package xlat

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// This file writes the translated IP headers (RFC 7915 §4.1 and §5.1) and
// checks the IPv6 extension headers that §5.1 lets a translator skip.

// dfThreshold is the IPv4 size above which the translated packet gets DF
// set (RFC 7915 §5.1: DF is 0 when the translated IPv4 packet is at most
// 1260 bytes, so that IPv4 routers may fragment it down to what fits a
// 1280-byte IPv6 path once translated back; 1 otherwise).
const dfThreshold = 1260

// Size limits of translated ICMP errors.
const (
	// maxICMPv6Error: an ICMPv6 error must not exceed the IPv6 minimum MTU
	// (RFC 4443 §2.4 (c); RFC 7915 §4.2 translates into it).
	maxICMPv6Error = 1280
	// maxICMPv4Error: ICMPv4 errors are kept within the 576 bytes every IPv4
	// host accepts (RFC 1812 §4.3.2.3, RFC 791 §3.1).
	maxICMPv4Error = 576
)

// IDs is a source of IPv4 Identification values for translated packets
// with DF clear (RFC 7915 §5.1.1: the translator sets one, since IPv4
// routers may fragment the packet; RFC 6864 §4.1 asks that it not repeat
// within the datagram's lifetime for a source, destination and protocol).
// It is a counter, unique over 65536 consecutive packets, safe for
// concurrent use. A translator that owns one (the NAT engine does) gives
// output that depends only on its own input, so a replay of a capture is
// reproducible; the package-level ToIPv4 shares one for the process. The
// zero value is ready to use.
type IDs struct{ n atomic.Uint32 }

func (g *IDs) next() uint16 { return uint16(g.n.Add(1)) }

// Counter returns the state of g, for saving it across a restart (natalg
// run --state): the values it gave follow from it.
func (g *IDs) Counter() uint32 { return g.n.Load() }

// SetCounter sets the state of g to one Counter returned: g goes on from
// there, so a restarted translator repeats no recent value.
func (g *IDs) SetCounter(n uint32) { g.n.Store(n) }

// shared is the source of the package-level ToIPv4.
var shared IDs

// putIPv4 writes a 20-byte IPv4 header (RFC 791 §3.1, no options) with the
// given fields into b[:20] and computes its header checksum. Identification
// and DF follow RFC 7915 §5.1 and §5.1.1: for a total length up to 1260,
// DF clear and a fresh Identification from fresh (unless fresh is nil, then
// 0: used for quoted headers); above, DF set and Identification 0 (RFC 6864 §4.1
// allows any value for atomic datagrams). MF and the offset are 0.
//
// Precondition: len(b) >= 20; otherwise putIPv4 does nothing.
func putIPv4(b []byte, tos uint8, total uint16, ttl uint8, proto ipproto.Proto, src, dst [4]byte, fresh *IDs) {
	if len(b) < header.IPv4MinimumSize {
		return
	}
	b = b[:header.IPv4MinimumSize]
	b[0] = 0x45
	b[1] = tos
	binary.BigEndian.PutUint16(b[2:], total)
	var id, ff uint16
	if total > dfThreshold {
		ff = header.IPv4FlagDontFragment << 13
	} else if fresh != nil {
		id = fresh.next()
	}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], ff)
	b[8] = ttl
	b[9] = byte(proto)
	b[10], b[11] = 0, 0
	copy(b[12:16], src[:])
	copy(b[16:20], dst[:])
	header.IPv4(b).SetChecksum(header.IPv4(b).ComputeChecksum())
}

// putIPv6 writes a 40-byte IPv6 fixed header (RFC 8200 §3) into b[:40]:
// Traffic Class tc, Flow Label 0 (RFC 7915 §4.1), the given Payload Length,
// Next Header and Hop Limit, and the addresses.
//
// Precondition: len(b) >= 40; otherwise putIPv6 does nothing.
func putIPv6(b []byte, tc uint8, payloadLen uint16, nh ipproto.Proto, hop uint8, src, dst [16]byte) {
	if len(b) < header.IPv6FixedHeaderSize {
		return
	}
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(tc)<<20)
	binary.BigEndian.PutUint16(b[4:], payloadLen)
	b[6] = byte(nh)
	b[7] = hop
	copy(b[8:24], src[:])
	copy(b[24:40], dst[:])
}

// checkExt6 walks the extension headers of the IPv6 packet b, from the fixed
// header up to offset end (the transport header, as header.Parsed found it),
// and reports whether RFC 7915 §5.1 lets them be dropped in translation:
// Hop-by-Hop Options, Destination Options and Routing headers with Segments
// Left 0 are skipped, and so is the Fragment header of an atomic fragment
// (RFC 6946 §4); a Routing header with Segments Left non-zero yields
// SourceRoute; the Fragment header of a true fragment Fragment; an
// Authentication Header Unsupported. Anything inconsistent is Malformed.
func checkExt6(b []byte, end int) Reason {
	if len(b) < header.IPv6FixedHeaderSize || end > len(b) {
		return Malformed
	}
	nh := ipproto.Proto(b[6])
	off := header.IPv6FixedHeaderSize
	for off < end {
		if off+8 > end {
			return Malformed
		}
		switch nh {
		case ipproto.HopByHop, ipproto.DstOpts:
		case ipproto.Routing:
			if b[off+3] != 0 { // RFC 8200 §4.4: Segments Left
				return SourceRoute
			}
		case ipproto.Fragment:
			// An atomic fragment (offset 0, M clear) is a whole packet
			// (RFC 6946 §4): its Fragment header is skipped like the
			// others. A true fragment is reassembled before translation.
			if binary.BigEndian.Uint16(b[off+2:])&0xfff9 != 0 {
				return Fragment
			}
			nh = ipproto.Proto(b[off])
			off += 8
			continue
		case ipproto.AH:
			return Unsupported
		default:
			return Malformed
		}
		nh = ipproto.Proto(b[off])
		off += (int(b[off+1]) + 1) * 8
	}
	if off != end {
		return Malformed
	}
	return Ok
}
