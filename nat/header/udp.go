package header

import "github.com/natalg/natalg/nat/checksum"

// UDP is a view of a UDP datagram starting at its header (RFC 768).
//
// A Checksum of 0 means "no checksum" over IPv4 (RFC 768); the setters keep
// such a checksum 0. Over IPv6 a zero checksum is invalid (RFC 8200 §8.1) and
// is likewise left alone. A computed checksum of 0 is stored as 0xffff
// (RFC 768).
type UDP []byte

// UDPHeaderSize is the size of the UDP header.
const UDPHeaderSize = 8

// Field offsets of the UDP header (RFC 768).
const (
	udpSrcPort  = 0
	udpDstPort  = 2
	udpLength   = 4
	udpChecksum = 6
)

// SrcPort returns the Source Port field.
func (b UDP) SrcPort() uint16 { return get16(b, udpSrcPort) }

// DstPort returns the Destination Port field.
func (b UDP) DstPort() uint16 { return get16(b, udpDstPort) }

// Length returns the Length field: header plus data, in bytes.
func (b UDP) Length() uint16 { return get16(b, udpLength) }

// SetLength sets the Length field without touching the checksum: the
// length is counted twice (header and pseudo-header) and a length change
// comes with a payload change, so recompute the checksum afterwards
// (Parsed.ComputeL4Checksum).
func (b UDP) SetLength(v uint16) { put16(b, udpLength, v) }

// Checksum returns the Checksum field.
func (b UDP) Checksum() uint16 { return get16(b, udpChecksum) }

// SetChecksum stores v in the Checksum field as is.
func (b UDP) SetChecksum(v uint16) { put16(b, udpChecksum, v) }

// SetSrcPort sets the Source Port, updating a non-zero checksum
// incrementally.
func (b UDP) SetSrcPort(v uint16) { b.set16(udpSrcPort, v) }

// SetDstPort sets the Destination Port, updating a non-zero checksum
// incrementally.
func (b UDP) SetDstPort(v uint16) { b.set16(udpDstPort, v) }

// Payload returns the data after the header, clipped to the view.
func (b UDP) Payload() []byte { return clip(b, UDPHeaderSize, len(b)) }

func (b UDP) set16(off int, v uint16) {
	if len(b) < UDPHeaderSize {
		return
	}
	old := get16(b, off)
	put16(b, off, v)
	if c := b.Checksum(); c != 0 {
		b.SetChecksum(udpNonZero(checksum.Update16(c, old, v)))
	}
}

// udpNonZero maps a computed UDP checksum of 0 to 0xffff (RFC 768: "If the
// computed checksum is zero, it is transmitted as all ones"). Both are the
// same ones'-complement value; 0 on the wire means "no checksum".
func udpNonZero(c uint16) uint16 {
	if c == 0 {
		return 0xffff
	}
	return c
}
