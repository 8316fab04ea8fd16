package header

import (
	"github.com/natalg/natalg/nat/checksum"
	"github.com/natalg/natalg/nat/ipproto"
)

// TCP is a view of a TCP segment starting at its header (RFC 9293 §3.1).
// The slice may extend past the header (options and data).
//
// The setters of checksummed fields update the Checksum field incrementally
// (RFC 1624 eqn. 3). The pseudo-header is outside the view: address changes
// are handled by Parsed.SetSrcAddr/SetDstAddr.
type TCP []byte

// TCP sizes.
const (
	TCPMinimumSize = 20 // header without options (data offset 5)
	TCPMaximumSize = 60 // data offset 15
)

// Field offsets of the TCP header (RFC 9293 §3.1).
const (
	tcpSrcPort  = 0
	tcpDstPort  = 2
	tcpSeq      = 4
	tcpAck      = 8
	tcpDataOff  = 12
	tcpFlags    = 13
	tcpWindow   = 14
	tcpChecksum = 16
	tcpUrgent   = 18
)

// TCP option kinds (IANA "TCP Option Kind Numbers").
const (
	TCPOptEOL           uint8 = 0 // End of Option List (RFC 9293 §3.2)
	TCPOptNOP           uint8 = 1 // No-Operation (RFC 9293 §3.2)
	TCPOptMSS           uint8 = 2 // Maximum Segment Size, length 4 (RFC 9293 §3.2)
	TCPOptWindowScale   uint8 = 3 // RFC 7323 §2.2
	TCPOptSACKPermitted uint8 = 4 // RFC 2018 §2
	TCPOptSACK          uint8 = 5 // length 2+8n (RFC 2018 §3)
	TCPOptTimestamps    uint8 = 8 // RFC 7323 §3.2
)

// SrcPort returns the Source Port field.
func (b TCP) SrcPort() uint16 { return get16(b, tcpSrcPort) }

// DstPort returns the Destination Port field.
func (b TCP) DstPort() uint16 { return get16(b, tcpDstPort) }

// Seq returns the Sequence Number field.
func (b TCP) Seq() uint32 { return get32(b, tcpSeq) }

// Ack returns the Acknowledgment Number field.
func (b TCP) Ack() uint32 { return get32(b, tcpAck) }

// DataOffset returns the Data Offset field, in 32-bit words.
func (b TCP) DataOffset() uint8 { return get8(b, tcpDataOff) >> 4 }

// HeaderLen returns the header length in bytes (DataOffset*4), options
// included.
func (b TCP) HeaderLen() int { return int(b.DataOffset()) * 4 }

// Flags returns the control bits (ipproto.TCPFIN ... ipproto.TCPCWR).
func (b TCP) Flags() ipproto.TCPFlags { return ipproto.TCPFlags(get8(b, tcpFlags)) }

// Window returns the Window field.
func (b TCP) Window() uint16 { return get16(b, tcpWindow) }

// Checksum returns the Checksum field.
func (b TCP) Checksum() uint16 { return get16(b, tcpChecksum) }

// Urgent returns the Urgent Pointer field.
func (b TCP) Urgent() uint16 { return get16(b, tcpUrgent) }

// SetChecksum stores v in the Checksum field.
func (b TCP) SetChecksum(v uint16) { put16(b, tcpChecksum, v) }

// SetSrcPort sets the Source Port, updating the checksum incrementally.
func (b TCP) SetSrcPort(v uint16) { b.set16(tcpSrcPort, v) }

// SetDstPort sets the Destination Port, updating the checksum incrementally.
func (b TCP) SetDstPort(v uint16) { b.set16(tcpDstPort, v) }

// SetWindow sets the Window field, updating the checksum incrementally.
func (b TCP) SetWindow(v uint16) { b.set16(tcpWindow, v) }

// SetSeq sets the Sequence Number, updating the checksum incrementally.
func (b TCP) SetSeq(v uint32) { b.set32(tcpSeq, v) }

// SetAck sets the Acknowledgment Number, updating the checksum
// incrementally.
func (b TCP) SetAck(v uint32) { b.set32(tcpAck, v) }

// Options returns the options area (bytes 20 to HeaderLen), clipped to the
// view.
func (b TCP) Options() []byte { return clip(b, TCPMinimumSize, b.HeaderLen()) }

// Payload returns the segment data after HeaderLen, clipped to the view.
func (b TCP) Payload() []byte { return clip(b, b.HeaderLen(), len(b)) }

// set16 writes a 16-bit field and, if the checksum field is inside the view,
// updates it. In a view too short for the field, it does nothing. A short
// view (an ICMP-quoted header) may carry the field but not the checksum; the
// field is then written alone.
func (b TCP) set16(off int, v uint16) {
	old := get16(b, off)
	if !put16(b, off, v) {
		return
	}
	if has(b, tcpChecksum, 2) {
		b.SetChecksum(checksum.Update16(b.Checksum(), old, v))
	}
}

// set32 is set16 for a 32-bit field.
func (b TCP) set32(off int, v uint32) {
	old := get32(b, off)
	if !put32(b, off, v) {
		return
	}
	if has(b, tcpChecksum, 2) {
		b.SetChecksum(checksum.Update32(b.Checksum(), old, v))
	}
}
