package nat

import (
	"net/netip"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
)

// newMapped creates the flow of an inbound UDP datagram or TCP SYN that
// belongs to no flow, forward or expectation, when the mapping of its
// public port lets it in (RFC 4787 §5 REQ-8 for UDP, RFC 5382 §4.3 REQ-3
// for TCP):
//   - endpoint-independent filtering: "The NAT forwards any packets
//     destined to X:x", once X:x has sent through the mapping;
//   - address-dependent filtering (the default): "the NAT will filter out
//     packets from Y:y destined for the internal endpoint X:x if X:x has
//     not sent packets to Y:any previously";
//   - address and port-dependent filtering: only packets from a Y:y that
//     X:x has sent to, which match that flow and never come here.
//
// The mapping stays endpoint-independent (RFC 4787 REQ-1): the new flow
// uses the mapping's public port, and replies of X:x to the new peer leave
// from it. The flow holds a reference to the binding, so the mapping lives
// as long as any of its flows (RFC 4787 §4.3). An unmapped port gets
// DropNoFlow, a mapped one whose filtering refuses the source DropFiltered.
func (e *Engine) newMapped(tu conntrack.Tuple, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	if tu.Proto != ipproto.UDP && tu.Proto != ipproto.TCP {
		return nil, 0, DropNoFlow
	}
	k := publicKey{port: tu.DstPort, proto: tu.Proto, fam: uint8(familyOf(tu.Dst))}
	in, found, ok := e.ports.admit(k, tu.Src, e.cfg.Filtering)
	if !ok {
		if found {
			return nil, 0, DropFiltered
		}
		return nil, 0, DropNoFlow
	}
	f := kindMapped.newFlow(tu, netip.AddrPortFrom(in.addr, in.port), netip.AddrPortFrom(tu.Src, tu.SrcPort))
	g, dir, dr := e.insert(f, now)
	if g != f {
		e.ports.release(in)
	}
	return g, dir, dr
}
