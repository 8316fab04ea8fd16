package nat

import (
	"net/netip"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
	"github.com/natalg/natalg/nat/xlat"
)

// flowKind is how a flow was made, and so what it holds: the engine stores
// it in conntrack.Flow.Tag (opaque to the table). The numbers are saved in
// state files: never renumber them. Every kind from kind64 on is a NAT64
// flow (RFC 6146), whose two tuples are of different address families: the
// original tuple as the packet arrived (IPv6 from a client, or IPv4 towards
// the pool), the reply tuple in the other family.
type flowKind uint8

const (
	kindSNAT     flowKind = iota + 1 // outbound; holds a binding of its inside source
	kindForward                      // inbound through a DNAT forward; holds nothing
	kindExpected                     // inbound from an expectation; holds a binding of its target
	kindMapped                       // inbound through a mapping its filtering admitted (RFC 4787 §5); holds a binding of its target
	// Hairpinned flows (RFC 4787 §6 REQ-9, RFC 5382 §7.2 REQ-8): an inside
	// host to a public endpoint that leads back inside. Both addresses are
	// translated: the source through the host's own endpoint-independent
	// mapping, the destination through a forward, an expectation or
	// another inside endpoint's mapping.
	kindHairpin      // to a forwarded port; holds a binding of its inside source
	kindHairpinBound // to an expectation or a mapping; holds a binding of its source and one of its target
)

const (
	kind64         flowKind = iota + 16 // outbound from an IPv6 client; holds a pool binding of its source
	kind64Expected                      // inbound IPv4 from an expectation; holds a pool binding of its target
	kind64Hairpin                       // a hairpinned IPv4 packet (RFC 6146 §3.8) to another IPv6 client's binding; holds a reference to that binding
	kind64Static                        // inbound IPv4 to a static binding (Forward64); holds a reference to it
)

// holding says which bindings a kind of flow holds a reference to.
type holding uint8

const (
	holdsNone holding = iota
	// holdsSource: the binding of the original source (o.Src, o.SrcPort),
	// whose public (or pool) port is the reply's destination port.
	holdsSource
	// holdsTarget: the binding of the reply's source, the endpoint the
	// flow delivers to (p.Src, p.SrcPort), at the original destination
	// port.
	holdsTarget
	// holdsBoth: both of the above (a hairpin to a bound endpoint).
	holdsBoth
)

// replyFamily says how a kind's reply protocol follows from the original's.
type replyFamily uint8

const (
	sameFamily replyFamily = iota // the same protocol
	toIPv4                        // ICMPv6 becomes ICMP (proto4)
	toIPv6                        // ICMP becomes ICMPv6 (proto6)
)

// kindInfo is the one definition of a kind of flow, shared by its creation
// (reply tuple), its removal (bindings released), a restore from a state
// file (config fit and bindings taken again) and inspection (name).
type kindInfo struct {
	// name is what natalg flows shows.
	name string
	// holds names the bindings the flow holds a reference to; release
	// gives them back, a restore takes them again.
	holds holding
	// peers: the flow is an outbound flow whose destination the
	// address-dependent filtering of its source's binding remembers
	// (RFC 4787 §5): added on creation and restore, dropped on removal.
	peers bool
	// active: the flow makes its source's binding an active mapping that
	// a hairpinned packet may reach (RFC 6146 §3.8).
	active bool
	// family is how the reply tuple's protocol follows from the original.
	family replyFamily
	// fits reports whether the engine, as configured now, would have made
	// a flow of this kind with original tuple o and reply tuple p (the
	// check on restore).
	fits func(e *Engine, o, p *conntrack.Tuple) bool
}

// flowKinds is the table of kinds, by number.
var flowKinds = [...]kindInfo{
	kindSNAT:         {name: "snat", holds: holdsSource, peers: true, fits: (*Engine).fitsSNAT},
	kindForward:      {name: "forward", holds: holdsNone, fits: (*Engine).fitsForward},
	kindExpected:     {name: "expected", holds: holdsTarget, fits: (*Engine).fitsExpected},
	kindMapped:       {name: "mapped", holds: holdsTarget, fits: (*Engine).fitsMapped},
	kindHairpin:      {name: "hairpin", holds: holdsSource, fits: (*Engine).fitsHairpin},
	kindHairpinBound: {name: "hairpin-bound", holds: holdsBoth, fits: (*Engine).fitsHairpinBound},
	kind64:           {name: "nat64", holds: holdsSource, active: true, family: toIPv4, fits: (*Engine).fits64},
	kind64Expected:   {name: "nat64-expected", holds: holdsTarget, fits: (*Engine).fits64Expected},
	kind64Hairpin:    {name: "nat64-hairpin", holds: holdsTarget, family: toIPv6, fits: (*Engine).fits64Hairpin},
	kind64Static:     {name: "nat64-static", holds: holdsTarget, fits: (*Engine).fits64Static},
}

// kindOf returns f's kind.
func kindOf(f *conntrack.Flow) flowKind { return flowKind(f.Tag) }

// info returns k's entry of the table, ok false for a number that is no
// kind (a state file of a newer natalg, or a corrupt one).
func (k flowKind) info() (*kindInfo, bool) {
	if int(k) >= len(flowKinds) || flowKinds[k].fits == nil {
		return nil, false
	}
	return &flowKinds[k], true
}

// String returns the kind's name, as natalg flows shows it.
func (k flowKind) String() string {
	if ki, ok := k.info(); ok {
		return ki.name
	}
	return "unknown"
}

// isNAT64 reports whether k is a NAT64 kind.
func (k flowKind) isNAT64() bool { return k >= kind64 }

// newFlow returns a flow of kind k for a packet of tuple orig, delivered to
// target and seen there as coming from seenAs: the reply tuple is target's
// answer to seenAs, in the protocol of the reply's family.
func (k flowKind) newFlow(orig conntrack.Tuple, target, seenAs netip.AddrPort) *conntrack.Flow {
	proto := orig.Proto
	switch flowKinds[k].family {
	case toIPv4:
		proto = proto4(proto)
	case toIPv6:
		proto = proto6(proto)
	}
	reply := conntrack.Tuple{Src: target.Addr(), Dst: seenAs.Addr(), SrcPort: target.Port(), DstPort: seenAs.Port(), Proto: proto}
	f := conntrack.NewFlow(orig, reply)
	f.Tag = uint8(k)
	return f
}

// heldBinding is one binding a flow holds: the inside (or IPv6) endpoint
// in, at public (or pool) port public of map ports.
type heldBinding struct {
	ports  *portMap
	in     endpoint
	public uint16
}

// held returns the bindings a flow of kind k with tuples t holds (n of
// them, at most 2), as holds says. For a NAT64 flow the map is its pool
// address's: the reply's destination for a held source, the original
// destination for a held target.
func (e *Engine) held(k flowKind, t *[2]conntrack.Tuple) (bs [2]heldBinding, n int) {
	o, p := &t[conntrack.Original], &t[conntrack.Reply]
	ki, ok := k.info()
	if !ok {
		return bs, 0
	}
	if ki.holds == holdsSource || ki.holds == holdsBoth {
		m := e.ports
		if k.isNAT64() {
			m = e.n64.ports[e.n64.poolIndex(p.Dst)]
		}
		bs[n] = heldBinding{ports: m, in: endpoint{addr: o.Src, port: o.SrcPort, proto: o.Proto}, public: p.DstPort}
		n++
	}
	if ki.holds == holdsTarget || ki.holds == holdsBoth {
		m := e.ports
		if k.isNAT64() {
			m = e.n64.ports[e.n64.poolIndex(o.Dst)]
		}
		bs[n] = heldBinding{ports: m, in: endpoint{addr: p.Src, port: p.SrcPort, proto: p.Proto}, public: o.DstPort}
		n++
	}
	return bs, n
}

// flowRemoved releases what a flow held.
func (e *Engine) flowRemoved(f *conntrack.Flow) {
	k := kindOf(f)
	ki, ok := k.info()
	if !ok {
		return
	}
	bs, n := e.held(k, &f.Tuples)
	if n > 0 {
		first := &bs[0]
		if ki.peers {
			first.ports.dropPeer(first.in, f.Tuples[conntrack.Original].Dst)
		}
		if ki.active {
			first.ports.sentThrough(first.in, -1)
		}
	}
	for i := range n {
		bs[i].ports.release(bs[i].in)
	}
}

// fitsSNAT: an inside source to anywhere, through the public address of
// its family (newOutbound).
func (e *Engine) fitsSNAT(o, p *conntrack.Tuple) bool {
	pub := e.public[familyOf(o.Src)]
	return e.inside(o.Src) && pub.IsValid() && p.Dst == pub && p.Src == o.Dst && p.SrcPort == o.DstPort && p.DstPort != 0
}

// fitsForward: to a public port a configured forward still sends to the
// same target (newInbound).
func (e *Engine) fitsForward(o, p *conntrack.Tuple) bool {
	if o.Dst != e.public[familyOf(o.Dst)] || p.Dst != o.Src || p.DstPort != o.SrcPort {
		return false
	}
	for i := range e.cfg.Forwards {
		fw := &e.cfg.Forwards[i]
		if fw.Proto == o.Proto && o.DstPort >= fw.Port && o.DstPort <= fw.PortEnd && familyOf(fw.Target) == familyOf(o.Dst) {
			return fw.target(o.DstPort) == netip.AddrPortFrom(p.Src, p.SrcPort)
		}
	}
	return false
}

// fitsInbound is the check shared by expected and mapped flows: to the
// public address, towards an inside target, unchanged source.
func (e *Engine) fitsInbound(o, p *conntrack.Tuple) bool {
	return o.Dst == e.public[familyOf(o.Dst)] && e.inside(p.Src) && p.Dst == o.Src && p.DstPort == o.SrcPort && o.DstPort != 0
}

// fitsExpected: a connection an expectation announced (newInbound).
func (e *Engine) fitsExpected(o, p *conntrack.Tuple) bool { return e.fitsInbound(o, p) }

// fitsMapped: through a mapping the filtering admitted, TCP or UDP only
// (newMapped).
func (e *Engine) fitsMapped(o, p *conntrack.Tuple) bool {
	return e.fitsInbound(o, p) && (o.Proto == ipproto.UDP || o.Proto == ipproto.TCP)
}

// fitsHairpinShared is the check shared by hairpinned flows (newHairpin):
// an inside host to a public endpoint, back inside.
func (e *Engine) fitsHairpinShared(o, p *conntrack.Tuple) bool {
	pub := e.public[familyOf(o.Src)]
	return e.inside(o.Src) && pub.IsValid() && o.Dst == pub && p.Dst == pub && e.inside(p.Src) &&
		p.DstPort != 0 && o.DstPort != 0 && p.SrcPort != 0 && !o.Proto.IsICMP() && p.Proto == o.Proto
}

// fitsHairpin: through a forward still sending to the same target.
func (e *Engine) fitsHairpin(o, p *conntrack.Tuple) bool {
	fw := e.forwardOf(o.Proto, familyOf(o.Dst), o.DstPort)
	return e.fitsHairpinShared(o, p) && fw != nil && fw.target(o.DstPort) == netip.AddrPortFrom(p.Src, p.SrcPort)
}

// fitsHairpinBound: to an expected or mapped inside endpoint (not
// forwarded), other than the source.
func (e *Engine) fitsHairpinBound(o, p *conntrack.Tuple) bool {
	fw := e.forwardOf(o.Proto, familyOf(o.Dst), o.DstPort)
	return e.fitsHairpinShared(o, p) && fw == nil && netip.AddrPortFrom(p.Src, p.SrcPort) != netip.AddrPortFrom(o.Src, o.SrcPort)
}

// fits64: an IPv6 client to the prefix; the IPv4 server embedded there,
// seen from a pool address (newOutbound64).
func (e *Engine) fits64(o, p *conntrack.Tuple) bool {
	n := e.n64
	if n == nil || !o.Src.Is6() || !p.Dst.Is4() || !n.prefix.Contains(o.Dst) || !n.pool.Contains(p.Dst) {
		return false
	}
	dst, ok := xlat.Extract(n.prefix, o.Dst)
	return ok && usable4(dst) && p.Src == dst && p.SrcPort == o.DstPort && p.DstPort != 0 && p.Proto == proto4(o.Proto) &&
		(o.Proto == ipproto.TCP || o.Proto == ipproto.UDP || o.Proto == ipproto.ICMPv6 && o.SrcPort != 0)
}

// fits64Expected: an IPv4 server's data connection to a pool address,
// towards an IPv6 client from the server's embedded address
// (newInbound64).
func (e *Engine) fits64Expected(o, p *conntrack.Tuple) bool {
	n := e.n64
	if n == nil || !o.Src.Is4() || !p.Src.Is6() || !n.pool.Contains(o.Dst) {
		return false
	}
	return o.Proto == ipproto.TCP && p.Dst == xlat.Embed(n.prefix, o.Src) && p.DstPort == o.SrcPort &&
		o.DstPort != 0 && p.SrcPort != 0
}

// fits64Hairpin: a hairpinned IPv4 packet from a pool transport address to
// another's binding, towards its IPv6 holder (newHairpin64).
func (e *Engine) fits64Hairpin(o, p *conntrack.Tuple) bool {
	n := e.n64
	if n == nil || !o.Src.Is4() || !p.Src.Is6() || !n.pool.Contains(o.Src) || !n.pool.Contains(o.Dst) {
		return false
	}
	return (o.Proto == ipproto.TCP || o.Proto == ipproto.UDP) && p.Proto == o.Proto &&
		p.Dst == xlat.Embed(n.prefix, o.Src) && p.DstPort == o.SrcPort && o.DstPort != 0 && p.SrcPort != 0
}

// fits64Static: an IPv4 client to a static binding's pool endpoint,
// towards its IPv6 server from the client's embedded address
// (newStatic64).
func (e *Engine) fits64Static(o, p *conntrack.Tuple) bool {
	n := e.n64
	if n == nil || !o.Src.Is4() || !p.Src.Is6() || !n.pool.Contains(o.Dst) {
		return false
	}
	t, found := n.fwd[fwdKey64{proto: o.Proto, index: n.poolIndex(o.Dst), port: o.DstPort}]
	return found && t == netip.AddrPortFrom(p.Src, p.SrcPort) && p.Proto == o.Proto &&
		p.Dst == xlat.Embed(n.prefix, o.Src) && p.DstPort == o.SrcPort
}
