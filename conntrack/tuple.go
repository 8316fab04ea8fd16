// Package conntrack tracks flows through the NAT: their tuples in both
// directions, their protocol state and timeouts, and the expectations an
// application-layer gateway installs for related connections. It does no I/O;
// time is passed in by the caller so that a capture replays deterministically.
package conntrack

import (
	"fmt"
	"net/netip"

	"github.com/natalg/natalg/nat/ipproto"
)

// Tuple identifies one direction of a flow as its packets arrive at the NAT.
// For TCP and UDP the ports are the transport ports. For ICMP echo, SrcPort
// holds the identifier of a request and DstPort the identifier of a reply, so
// that a request's Reverse is its reply's tuple. Tuple is comparable and used
// as a map key.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            ipproto.Proto
}

// Reverse returns the tuple of a packet travelling the other way.
func (t Tuple) Reverse() Tuple {
	return Tuple{Src: t.Dst, Dst: t.Src, SrcPort: t.DstPort, DstPort: t.SrcPort, Proto: t.Proto}
}

// String formats the tuple like conntrack -L: "tcp 198.18.0.2:40000 -> 198.19.0.2:21".
func (t Tuple) String() string {
	return fmt.Sprintf("%s %s -> %s", t.Proto,
		netip.AddrPortFrom(t.Src, t.SrcPort), netip.AddrPortFrom(t.Dst, t.DstPort))
}

// Dir is the direction of a packet relative to its flow.
type Dir uint8

// Directions: Original is the direction of the packet that created the flow.
const (
	Original Dir = 0
	Reply    Dir = 1
)

// Other returns the opposite direction.
func (d Dir) Other() Dir { return d ^ 1 }

func (d Dir) String() string {
	if d == Original {
		return "original"
	}
	return "reply"
}
