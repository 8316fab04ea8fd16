package bench

import (
	"encoding/binary"
	"net/netip"

	"github.com/natalg/natalg/nat/checksum"
	"github.com/natalg/natalg/nat/ipproto"
)

// TCP flag bits.
const (
	fFIN = 0x01
	fSYN = 0x02
	fRST = 0x04
	fPSH = 0x08
	fACK = 0x10
)

// Trace is a sequence of IPv4 packets with correct checksums, stored back to
// back. A packet may be stored shorter than its IP length: the rest is zero
// bytes (a data payload), which the device fills in when it hands the packet
// out, so that a million 1500-byte packets need not be kept in memory. Zero
// bytes add nothing to a checksum, so the stored checksums are those of the
// whole packet.
type Trace struct {
	data []byte
	off  []int    // packet i is data[off[i]:off[i+1]]
	size []uint16 // IP length of packet i (>= stored length)
}

// NewTrace returns an empty trace with room for n packets of about avg
// stored bytes.
func NewTrace(n, avg int) *Trace {
	return &Trace{data: make([]byte, 0, n*avg), off: append(make([]int, 0, n+1), 0), size: make([]uint16, 0, n)}
}

// Len returns the number of packets.
func (t *Trace) Len() int { return len(t.size) }

// Packet returns the whole packet i (zero payload filled in), freshly
// allocated; for tests and tools.
func (t *Trace) Packet(i int) []byte {
	b := make([]byte, t.size[i])
	copy(b, t.data[t.off[i]:t.off[i+1]])
	return b
}

// Bytes returns the memory the trace holds.
func (t *Trace) Bytes() int { return cap(t.data) + 8*cap(t.off) + 2*cap(t.size) }

// put copies packet n bytes (with stored = its stored prefix) to dst and
// returns the IP length.
func (t *Trace) put(i int, dst []byte) int {
	n := int(t.size[i])
	s := copy(dst, t.data[t.off[i]:t.off[i+1]])
	if s < n {
		clear(dst[s:n])
	}
	return n
}

// tcp appends a TCP segment src -> dst with the given numbers, flags and
// payload, padded with zero bytes to an IP length of at least size.
func (t *Trace) tcp(src, dst netip.AddrPort, seq, ack uint32, flags uint8, payload []byte, size int) {
	hl := 20
	if flags&fSYN != 0 {
		hl = 24 // MSS option
	}
	l4len := hl + len(payload)
	if size > 20+l4len {
		l4len = size - 20
	}
	b := t.ipv4(src.Addr(), dst.Addr(), 6, l4len, hl+len(payload))
	binary.BigEndian.PutUint16(b[0:], src.Port())
	binary.BigEndian.PutUint16(b[2:], dst.Port())
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = byte(hl/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 64240)
	if hl == 24 {
		copy(b[20:], []byte{2, 4, 0x05, 0xb4}) // MSS 1460
	}
	copy(b[hl:], payload)
	binary.BigEndian.PutUint16(b[16:], checksum.Checksum(b, pseudo(src.Addr(), dst.Addr(), 6, l4len)))
}

// udp appends a UDP datagram of IP length max(28+len(payload), size).
func (t *Trace) udp(src, dst netip.AddrPort, payload []byte, size int) {
	l4len := 8 + len(payload)
	if size > 20+l4len {
		l4len = size - 20
	}
	b := t.ipv4(src.Addr(), dst.Addr(), 17, l4len, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], src.Port())
	binary.BigEndian.PutUint16(b[2:], dst.Port())
	binary.BigEndian.PutUint16(b[4:], uint16(l4len))
	copy(b[8:], payload)
	c := checksum.Checksum(b, pseudo(src.Addr(), dst.Addr(), 17, l4len))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[6:], c)
}

// icmpEcho appends an ICMP echo request (reply false) or reply with
// identifier id, of IP length max(28, size).
func (t *Trace) icmpEcho(src, dst netip.Addr, reply bool, id, seq uint16, size int) {
	l4len := 8
	if size > 28 {
		l4len = size - 20
	}
	b := t.ipv4(src, dst, 1, l4len, 8)
	b[0] = 8
	if reply {
		b[0] = 0
	}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	binary.BigEndian.PutUint16(b[2:], checksum.Checksum(b, 0))
}

// ipv4 appends an IPv4 header for an l4len-byte transport part of which
// stored bytes are kept, and returns the stored transport bytes to fill in
// (checksum fields zero).
func (t *Trace) ipv4(src, dst netip.Addr, proto ipproto.Proto, l4len, stored int) []byte {
	start := len(t.data)
	t.data = append(t.data, make([]byte, 20+stored)...)
	h := t.data[start : start+20]
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+l4len))
	binary.BigEndian.PutUint16(h[4:], uint16(len(t.size)))
	h[6] = 0x40 // DF
	h[8] = 64
	h[9] = byte(proto)
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], checksum.Checksum(h, 0))
	t.off = append(t.off, len(t.data))
	t.size = append(t.size, uint16(20+l4len))
	return t.data[start+20:]
}

func pseudo(src, dst netip.Addr, proto ipproto.Proto, n int) uint32 {
	s, d := src.As4(), dst.As4()
	return checksum.PseudoHeader(s[:], d[:], proto, uint32(n))
}
