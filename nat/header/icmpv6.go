package header

// ICMPv6 is a view of an ICMPv6 message starting at its header (RFC 4443
// §2.1). Its checksum covers an IPv6 pseudo-header (RFC 4443 §2.3), which
// this view cannot see: Parsed.SetSrcAddr/SetDstAddr and
// Parsed.ComputeL4Checksum take care of it. Fields inside the message (such
// as the echo identifier) are plain incremental updates.
type ICMPv6 []byte

// ICMPv6MinimumSize is the size of the ICMPv6 header including the 4-byte
// message body start (identifier and sequence for echo; MTU, pointer or
// unused for errors). Error messages carry the invoking packet after it.
const ICMPv6MinimumSize = 8

// ICMPv6 message types (RFC 4443 §2.1, RFC 4861 §4).
const (
	ICMPv6DstUnreachable  uint8 = 1
	ICMPv6PacketTooBig    uint8 = 2
	ICMPv6TimeExceeded    uint8 = 3
	ICMPv6ParamProblem    uint8 = 4
	ICMPv6EchoRequest     uint8 = 128
	ICMPv6EchoReply       uint8 = 129
	ICMPv6RouterSolicit   uint8 = 133
	ICMPv6RouterAdvert    uint8 = 134
	ICMPv6NeighborSolicit uint8 = 135
	ICMPv6NeighborAdvert  uint8 = 136
	ICMPv6Redirect        uint8 = 137
)

// ICMPv6IsError reports whether ICMPv6 type t is one of the error messages
// defined by RFC 4443 §3 (types 1 to 4), which embed as much of the invoking
// packet as fits.
func ICMPv6IsError(t uint8) bool { return t >= ICMPv6DstUnreachable && t <= ICMPv6ParamProblem }

// Type returns the Type field.
func (b ICMPv6) Type() uint8 { return get8(b, icmpType) }

// Code returns the Code field.
func (b ICMPv6) Code() uint8 { return get8(b, icmpCode) }

// Checksum returns the Checksum field.
func (b ICMPv6) Checksum() uint16 { return get16(b, icmpChecksum) }

// SetChecksum stores v in the Checksum field.
func (b ICMPv6) SetChecksum(v uint16) { put16(b, icmpChecksum, v) }

// Ident returns the echo Identifier field (RFC 4443 §4.1).
func (b ICMPv6) Ident() uint16 { return get16(b, icmpIdent) }

// SetIdent sets the Identifier field, updating the checksum incrementally.
func (b ICMPv6) SetIdent(v uint16) { icmpSet16(b, icmpIdent, v) }

// Seq returns the echo Sequence Number field.
func (b ICMPv6) Seq() uint16 { return get16(b, icmpSeq) }

// IsError reports whether the message is an error (ICMPv6IsError).
func (b ICMPv6) IsError() bool { return len(b) >= ICMPv6MinimumSize && ICMPv6IsError(b.Type()) }

// EmbeddedOffset returns the offset in the view of the invoking packet
// embedded in an error message (8), or 0 if the message is not an error.
func (b ICMPv6) EmbeddedOffset() int {
	if b.IsError() {
		return ICMPv6MinimumSize
	}
	return 0
}

// Payload returns the bytes after the 8-byte header, clipped to the view.
func (b ICMPv6) Payload() []byte { return clip(b, ICMPv6MinimumSize, len(b)) }
