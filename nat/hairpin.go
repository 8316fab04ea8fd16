package nat

import (
	"net/netip"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// newHairpin creates the flow for a packet from an inside host to a public
// endpoint of the NAT, with no flow: hairpinning (RFC 4787 §6, RFC 5382
// §7.2). REQ-9 of RFC 4787 and REQ-8 of RFC 5382: "A NAT MUST support
// hairpinning", and its behaviour "MUST be of type 'External source IP
// address and port'". The packet is translated twice in one pass: its
// source through the sender's own endpoint-independent mapping (the public
// port the same inside endpoint has towards every destination, as
// newOutbound binds it), its destination as an inbound packet from that
// external endpoint would be: through a DNAT forward, through an
// expectation (an FTP data connection announced on a hairpinned control
// connection), or to the inside endpoint that holds that public port's
// mapping. The reply tuple is then the target's reply towards the sender's
// public endpoint, so that replies, looked up like any packet, are
// translated back the same way.
//
// A mapping is reached whatever the filtering would say of an external
// peer: the sender is an inside host, which can reach the target's inside
// address directly anyway, and RFC 4787 §6 forwards to "an external
// address X2':x2' that has an active mapping".
//
// It returns a nil flow and DropNone when nothing inside answers at the
// public endpoint: the packet is for the router itself. A TCP segment other
// than a SYN to a port an inside endpoint holds (a hairpinned connection
// whose flow expired) is dropped as no_flow, as it would be from outside.
func (e *Engine) newHairpin(p *header.Parsed, tu conntrack.Tuple, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	if tu.Proto.IsICMP() {
		return nil, 0, DropNone // echo to the public address: the router answers
	}
	fam := familyOf(tu.Dst)
	src := endpoint{addr: tu.Src, port: tu.SrcPort, proto: tu.Proto}
	var target netip.AddrPort
	var x *conntrack.Expectation
	kind := kindHairpin
	if fw := e.forwardOf(tu.Proto, fam, tu.DstPort); fw != nil {
		target = fw.target(tu.DstPort)
	} else {
		tcpSYN := tu.Proto == ipproto.TCP && p.TCPFlags&(ipproto.TCPSYN|ipproto.TCPACK) == ipproto.TCPSYN
		if tcpSYN {
			x = e.table.TakeExpectation(tu.Proto, tu.Src, tu.Dst, tu.DstPort, now)
		}
		if x != nil {
			target, kind = x.Target, kindHairpinBound
		} else {
			if tu.Proto == ipproto.TCP && !tcpSYN {
				// Only a SYN opens a connection to a mapping. A segment
				// to a port some inside endpoint holds is not the
				// router's (its stack would answer with a reset): it is
				// dropped, as from outside.
				if e.ports.bound(tu.Proto, uint8(fam), tu.DstPort) {
					return nil, 0, DropNoFlow
				}
				return nil, 0, DropNone
			}
			in, found, ok := e.ports.holdPublic(tu.Proto, uint8(fam), tu.DstPort, src)
			if !ok {
				if found {
					// held, but only by FTP expectations or data
					// connections: not reachable that way (see holdPublic)
					return nil, 0, DropNoFlow
				}
				return nil, 0, DropNone
			}
			target, kind = netip.AddrPortFrom(in.addr, in.port), kindHairpinBound
		}
	}
	// release gives back the target's binding (an expectation's or a held
	// mapping) when no flow takes it over.
	release := func() {
		if kind == kindHairpinBound {
			e.ports.release(endpoint{addr: target.Addr(), port: target.Port(), proto: tu.Proto})
		}
	}
	if dr := e.mayCreate(p); dr != DropNone {
		release()
		return nil, 0, dr
	}
	port, ok := e.ports.acquireHairpin(src)
	if !ok {
		release()
		return nil, 0, DropPortsExhausted
	}
	f := kind.newFlow(tu, target, netip.AddrPortFrom(tu.Dst, port))
	if x != nil {
		f.Master = x.Master
	}
	g, dir, dr := e.insert(f, now)
	if g != f {
		e.ports.release(src)
		release()
		return g, dir, dr
	}
	e.Stats.Hairpinned.Add(1)
	if x != nil {
		e.Stats.DataFlows.Add(1)
	}
	return g, dir, dr
}

// forwardOf returns the forward of public port port of proto and address
// family fam, or nil.
func (e *Engine) forwardOf(proto ipproto.Proto, fam int, port uint16) *Forward {
	for i := range e.cfg.Forwards {
		fw := &e.cfg.Forwards[i]
		if fw.Proto == proto && port >= fw.Port && port <= fw.PortEnd && familyOf(fw.Target) == fam {
			return fw
		}
	}
	return nil
}

// bound reports whether public port pub of proto and family fam is bound
// to an inside endpoint.
func (m *portMap) bound(proto ipproto.Proto, fam uint8, pub uint16) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byPublic[publicKey{port: pub, proto: proto, fam: fam}] != nil
}

// holdPublic takes one reference to the binding of public port pub (of
// proto and family fam) and returns its inside endpoint, when that endpoint
// has sent through the mapping: an "active mapping" of RFC 4787 §6. found
// reports whether the port is bound at all. A binding held only by FTP
// expectations or data connections is not reachable this way (as admit
// has it for packets from outside): another inside host would otherwise
// take a data port announced to someone else, from the public address that
// the server checks the data connection against. Nor is the sender's own
// mapping (a packet to it would have identical tuples in both directions).
func (m *portMap) holdPublic(proto ipproto.Proto, fam uint8, pub uint16, not endpoint) (in endpoint, found, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.byPublic[publicKey{port: pub, proto: proto, fam: fam}]
	if b == nil {
		return endpoint{}, false, false
	}
	if b.inside == not || b.sent <= 0 {
		return endpoint{}, true, false
	}
	b.refs++
	return b.inside, true, true
}

// sentThrough counts delta outbound flows of inside through its mapping
// (NAT64 pool bindings, which keep no peers: what holdPublic needs).
func (m *portMap) sentThrough(inside endpoint, delta int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.byInside[inside]; b != nil {
		b.sent += delta
	}
}
