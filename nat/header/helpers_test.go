package header

import (
	"slices"

	"github.com/natalg/natalg/nat/internal/refpkt"
	"github.com/natalg/natalg/nat/ipproto"
)

// The tests build packets with package refpkt (plain byte manipulation and a
// byte-at-a-time reference checksum, independent of this package); these
// are its builders with this package's defaults.

var (
	refSum          = refpkt.Sum
	udpDgram        = refpkt.UDP
	optMSS          = refpkt.MSS
	optSACK         = refpkt.SACK
	optTS           = refpkt.Timestamps
	fragExt         = refpkt.FragmentExt
	ahExt           = refpkt.AHExt
	fixIPv4Checksum = refpkt.FixIPv4Checksum
)

// tcpSeg builds a TCP header (checksum zero, window 65535) with options
// (EOL-padded to a multiple of 4) and data.
func tcpSeg(sport, dport uint16, seq, ack uint32, flags ipproto.TCPFlags, opts []byte, data []byte) []byte {
	return refpkt.TCP(sport, dport, seq, ack, uint8(flags), 65535, opts, data)
}

// icmpMsg builds an ICMP or ICMPv6 query message (checksum zero) with
// identifier and sequence number.
func icmpMsg(typ, code uint8, ident, seq uint16, data []byte) []byte {
	return refpkt.ICMP(typ, code, uint32(ident)<<16|uint32(seq), data)
}

func cat(bs ...[]byte) []byte { return slices.Concat(bs...) }

// v4opts configures v4.
type v4opts struct {
	opts     []byte // IP options, padded to 4 with EOL
	flagFrag uint16 // flags+fragment offset word
	noL4Ck   bool   // leave the transport checksum 0
	ttl      uint8  // 0: 64
}

// v4 builds an IPv4 packet (identification 0x1234) around transport bytes
// l4 of proto, filling the header checksum and, for TCP, UDP and ICMP
// unless o.noL4Ck or a fragment, the transport checksum with the reference
// implementation.
func v4(src, dst string, proto ipproto.Proto, l4 []byte, o v4opts) []byte {
	ttl := o.ttl
	if ttl == 0 {
		ttl = 64
	}
	fragment := o.flagFrag&0x3fff != 0
	checksummed := proto == ipproto.TCP || proto == ipproto.UDP || proto == ipproto.ICMPv4
	return refpkt.V4(src, dst, uint8(proto), l4, refpkt.V4Opts{Options: o.opts, FlagFrag: o.flagFrag, TTL: ttl, ID: 0x1234,
		NoL4Checksum: o.noL4Ck || fragment || !checksummed})
}

// ext6 is one IPv6 extension header.
type ext6 = refpkt.Ext

// v6 builds an IPv6 packet (hop limit 64) with extension headers exts and
// transport bytes l4 of proto, filling the transport checksum of TCP, UDP
// and ICMPv6 unless noCk or a fragment header is present.
func v6(src, dst string, exts []ext6, proto ipproto.Proto, l4 []byte, noCk bool) []byte {
	fragment := slices.ContainsFunc(exts, ext6.IsFragment)
	checksummed := proto == ipproto.TCP || proto == ipproto.UDP || proto == ipproto.ICMPv6
	return refpkt.V6(src, dst, uint8(proto), l4, refpkt.V6Opts{Exts: exts, HopLimit: 64, NoL4Checksum: noCk || fragment || !checksummed})
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// optsExt builds an 8*n8-byte Hop-by-Hop or Destination Options header
// (typ) holding one PadN option.
func optsExt(typ ipproto.Proto, n8 int) ext6 { return refpkt.OptionsExt(uint8(typ), n8) }

// refPseudo is the reference sum of the pseudo-header for n transport
// bytes of proto.
func refPseudo(src, dst []byte, proto ipproto.Proto, n int) uint32 {
	return refpkt.PseudoSum(src, dst, uint8(proto), n)
}

// refL4Checksum is the reference checksum transport segment l4 of proto
// should carry.
func refL4Checksum(src, dst []byte, proto ipproto.Proto, l4 []byte) uint16 {
	return refpkt.L4Checksum(src, dst, uint8(proto), l4)
}

// l4CkOff is the checksum's offset in the transport header of proto.
func l4CkOff(proto ipproto.Proto) int { return refpkt.ChecksumOffset(uint8(proto)) }
