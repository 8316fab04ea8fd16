package nat

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/natalg/natalg/nat/checksum"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// tcpSeg describes a TCP segment to build.
type tcpSeg struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    ipproto.TCPFlags
	payload  string
	sack     [][2]uint32
	mss      uint16
}

const (
	fFIN = ipproto.TCPFIN
	fSYN = ipproto.TCPSYN
	fRST = ipproto.TCPRST
	fPSH = ipproto.TCPPSH
	fACK = ipproto.TCPACK
)

// build returns an IPv4 or IPv6 packet with correct checksums, in a buffer
// with room to grow.
func (s tcpSeg) build() []byte {
	var opts []byte
	if s.mss != 0 {
		opts = append(opts, 2, 4, byte(s.mss>>8), byte(s.mss))
	}
	if len(s.sack) > 0 {
		opts = append(opts, 1, 1, 5, byte(2+8*len(s.sack)))
		for _, b := range s.sack {
			opts = binary.BigEndian.AppendUint32(opts, b[0])
			opts = binary.BigEndian.AppendUint32(opts, b[1])
		}
	}
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	tcp := make([]byte, 20+len(opts)+len(s.payload))
	binary.BigEndian.PutUint16(tcp[0:], s.src.Port())
	binary.BigEndian.PutUint16(tcp[2:], s.dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], s.ack)
	tcp[12] = byte((20 + len(opts)) / 4 << 4)
	tcp[13] = byte(s.flags)
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	copy(tcp[20:], opts)
	copy(tcp[20+len(opts):], s.payload)
	return ipWrap(s.src.Addr(), s.dst.Addr(), 6, tcp)
}

// ipWrap puts an L4 segment (checksum field zero) in an IP header and fills
// in every checksum.
func ipWrap(src, dst netip.Addr, proto ipproto.Proto, l4 []byte) []byte {
	buf := make([]byte, 0, 65535)
	var hl int
	if src.Is4() {
		hl = 20
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(h[4:], 0x1234)
		h[6] = 0x40 // DF
		h[8] = 64
		h[9] = byte(proto)
		s, d := src.As4(), dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		binary.BigEndian.PutUint16(h[10:], checksum.Checksum(h, 0))
		buf = append(buf, h...)
	} else {
		hl = 40
		h := make([]byte, 40)
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
		h[6] = byte(proto)
		h[7] = 64
		s, d := src.As16(), dst.As16()
		copy(h[8:], s[:])
		copy(h[24:], d[:])
		buf = append(buf, h...)
	}
	buf = append(buf, l4...)
	seg := buf[hl:]
	switch proto {
	case 6:
		binary.BigEndian.PutUint16(seg[16:], 0)
		binary.BigEndian.PutUint16(seg[16:], checksum.Checksum(seg, pseudo(src, dst, proto, len(seg))))
	case 17:
		binary.BigEndian.PutUint16(seg[6:], 0)
		binary.BigEndian.PutUint16(seg[6:], checksum.Checksum(seg, pseudo(src, dst, proto, len(seg))))
	case 1:
		binary.BigEndian.PutUint16(seg[2:], 0)
		binary.BigEndian.PutUint16(seg[2:], checksum.Checksum(seg, 0))
	case 58:
		binary.BigEndian.PutUint16(seg[2:], 0)
		binary.BigEndian.PutUint16(seg[2:], checksum.Checksum(seg, pseudo(src, dst, proto, len(seg))))
	}
	return buf
}

func pseudo(src, dst netip.Addr, proto ipproto.Proto, n int) uint32 {
	s, d := src.AsSlice(), dst.AsSlice()
	return checksum.PseudoHeader(s, d, proto, uint32(n))
}

// seen is a decoded output packet.
type seen struct {
	header.Parsed
	payload string
}

// decodeOut parses an engine output and checks every checksum in it.
func decodeOut(t *testing.T, b []byte) seen {
	t.Helper()
	var p header.Parsed
	if r := p.Decode(b); r != header.Ok {
		t.Fatalf("output does not decode: %v", r)
	}
	if !p.L4ChecksumValid() {
		t.Fatalf("output transport checksum wrong: %x", b)
	}
	if p.Version == 4 && !p.IPv4().IsChecksumValid() {
		t.Fatal("output IPv4 header checksum wrong")
	}
	return seen{Parsed: p, payload: string(p.Payload())}
}

var t0 = time.Unix(1_800_000_000, 0)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
