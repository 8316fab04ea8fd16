package kerneldp

import (
	"net/netip"

	ct "github.com/ti-mo/conntrack"

	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

// dataEndpoints returns, for a conntrack entry of a data connection that
// came through one of natalg's expectation elements (CtMarkData) and was
// DNATed to the inside (an active-mode data connection to an inside
// client, or a passive one to a forwarded inside server), the inside
// endpoint it reaches (the reply's source) and the public endpoint it was
// addressed to (the original destination). ok is false for other entries
// (a passive data connection from an inside client is masqueraded by the
// kernel into --kernel-ports: no port of natalg's).
func dataEndpoints(f *ct.Flow) (inside, public netip.AddrPort, ok bool) {
	if f == nil || f.Mark&CtMarkData == 0 || ipproto.Proto(f.TupleOrig.Proto.Protocol) != ipproto.TCP {
		return inside, public, false
	}
	o, r := f.TupleOrig, f.TupleReply
	public = netip.AddrPortFrom(o.IP.DestinationAddress.Unmap(), o.Proto.DestinationPort)
	inside = netip.AddrPortFrom(r.IP.SourceAddress.Unmap(), r.Proto.SourcePort)
	return inside, public, inside != public
}

// closed reports whether a data connection's entry is in TIME_WAIT or
// CLOSE: the kernel lets a new SYN with the same 5-tuple reopen it (a SYN
// in any other state is ignored), so its public port may be handed out
// again.
func closed(f *ct.Flow) bool {
	return f.ProtoInfo.TCP != nil && (f.ProtoInfo.TCP.State == ctTCPTimeWait || f.ProtoInfo.TCP.State == ctTCPClose)
}

// holdDataConnections has eng hold the public port of every data
// connection of natalg's expectations in the kernel's table (see
// nat.Engine.HoldKernelData): natalg rebuilding its table after a restart,
// or on a router that took over from the other one of a pair, must not hand
// those ports out again while the connections run. It returns how many it
// holds; the holds are dropped when the connections close (Watch).
func holdDataConnections(eng *nat.Engine, dump []ct.Flow) int {
	n := 0
	for i := range dump {
		if inside, public, ok := dataEndpoints(&dump[i]); ok && !closed(&dump[i]) && eng.HoldKernelData(ipproto.TCP, inside, public) {
			n++
		}
	}
	return n
}
