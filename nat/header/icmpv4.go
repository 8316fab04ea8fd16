package header

import "github.com/natalg/natalg/nat/checksum"

// ICMPv4 is a view of an ICMP message starting at its header (RFC 792).
// Its checksum covers the ICMP message only (no pseudo-header).
type ICMPv4 []byte

// ICMPv4MinimumSize is the size of the ICMP header: type, code, checksum and
// the 4-byte rest-of-header (identifier and sequence number for echo).
// Error messages carry the embedded packet right after it.
const ICMPv4MinimumSize = 8

// ICMPv4 message types (RFC 792, RFC 950).
const (
	ICMPv4EchoReply      uint8 = 0
	ICMPv4DstUnreachable uint8 = 3
	ICMPv4SourceQuench   uint8 = 4
	ICMPv4Redirect       uint8 = 5
	ICMPv4Echo           uint8 = 8
	ICMPv4TimeExceeded   uint8 = 11
	ICMPv4ParamProblem   uint8 = 12
	ICMPv4Timestamp      uint8 = 13
	ICMPv4TimestampReply uint8 = 14
)

// Field offsets of the ICMPv4 header (RFC 792).
const (
	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpIdent    = 4
	icmpSeq      = 6
)

// ICMPv4IsError reports whether ICMP type t is an error message that embeds
// the IP header and at least 8 bytes of the offending packet (RFC 792):
// destination unreachable, source quench, redirect, time exceeded and
// parameter problem.
func ICMPv4IsError(t uint8) bool {
	switch t {
	case ICMPv4DstUnreachable, ICMPv4SourceQuench, ICMPv4Redirect,
		ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// Type returns the Type field.
func (b ICMPv4) Type() uint8 { return get8(b, icmpType) }

// Code returns the Code field.
func (b ICMPv4) Code() uint8 { return get8(b, icmpCode) }

// Checksum returns the Checksum field.
func (b ICMPv4) Checksum() uint16 { return get16(b, icmpChecksum) }

// SetChecksum stores v in the Checksum field.
func (b ICMPv4) SetChecksum(v uint16) { put16(b, icmpChecksum, v) }

// Ident returns the echo Identifier field (meaningful for echo and echo
// reply, and timestamp messages).
func (b ICMPv4) Ident() uint16 { return get16(b, icmpIdent) }

// SetIdent sets the Identifier field, updating the checksum incrementally.
func (b ICMPv4) SetIdent(v uint16) { icmpSet16(b, icmpIdent, v) }

// Seq returns the echo Sequence Number field.
func (b ICMPv4) Seq() uint16 { return get16(b, icmpSeq) }

// IsError reports whether the message is an error (ICMPv4IsError).
func (b ICMPv4) IsError() bool { return len(b) >= ICMPv4MinimumSize && ICMPv4IsError(b.Type()) }

// EmbeddedOffset returns the offset in the view of the packet embedded in
// an error message (8), or 0 if the message is not an error.
func (b ICMPv4) EmbeddedOffset() int {
	if b.IsError() {
		return ICMPv4MinimumSize
	}
	return 0
}

// Payload returns the bytes after the 8-byte header, clipped to the view:
// the embedded packet of an error, or the echo data.
func (b ICMPv4) Payload() []byte { return clip(b, ICMPv4MinimumSize, len(b)) }

// ComputeChecksum returns the checksum the message should carry (RFC 792):
// over the whole view with the checksum field taken as zero. The view is not
// modified; it returns 0 if the view is shorter than 4 bytes.
func (b ICMPv4) ComputeChecksum() uint16 {
	if len(b) < icmpChecksum+2 {
		return 0
	}
	return ^checksum.Fold(checksum.Sum(b[icmpChecksum+2:], checksum.Sum(b[:icmpChecksum], 0)))
}

// icmpSet16 writes a 16-bit field of an ICMP (v4 or v6) header and updates
// its checksum: for both, a field inside the message is a plain RFC 1624
// update (the ICMPv6 pseudo-header does not change).
func icmpSet16(b []byte, off int, v uint16) {
	if len(b) < ICMPv4MinimumSize {
		return
	}
	old := get16(b, off)
	put16(b, off, v)
	c := checksum.Update16(get16(b, icmpChecksum), old, v)
	if c == 0 && icmpAllZero(b) {
		// RFC 1624 eqn. 3 yields 0x0000 when the new data sums to zero; if
		// the data is all zero (an ICMPv4 echo reply with identifier,
		// sequence and data all 0) the sum is +0 and only 0xffff verifies.
		// The ICMPv6 pseudo-header is never zero.
		c = 0xffff
	}
	put16(b, icmpChecksum, c)
}

// icmpAllZero reports whether the ICMP message b is all zero bytes apart
// from its checksum field.
func icmpAllZero(b []byte) bool {
	for i, x := range b {
		if x != 0 && (i < icmpChecksum || i >= icmpChecksum+2) {
			return false
		}
	}
	return true
}
