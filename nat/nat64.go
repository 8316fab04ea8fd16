package nat

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/xlat"
)

// Flow tags of NAT64 flows (RFC 6146). Every tag from tag64 on is a NAT64
// flow, whose two tuples are of different address families: the original
// tuple as the packet arrived (IPv6 from a client, or IPv4 for a data
// connection an expectation admitted), the reply tuple in the other family.
const (
	tag64         uint8 = iota + 16 // outbound from an IPv6 client; holds a pool binding of its source
	tag64Expected                   // inbound IPv4 from an expectation; holds a pool binding of its target
)

// nat64 is the stateful NAT64 of RFC 6146: IPv6 clients reach IPv4 hosts at
// the addresses RFC 6052 embeds in Prefix, and are seen by them from an
// address of Pool.
type nat64 struct {
	prefix netip.Prefix
	pool   netip.Prefix
	base   uint32       // first pool address, as a number
	size   uint32       // pool addresses
	ports  []*portMap   // one per pool address
	addrs  []netip.Addr // the pool addresses
	// ids numbers the IPv4 packets this engine makes (RFC 7915 §5.1.1):
	// its own counter, so an engine's output depends only on its input
	// and a replay of a capture is reproducible.
	ids xlat.IDs
}

// maxPool bounds the pool: every pool address has a port map of its own.
const maxPool = 1 << 16

func newNAT64(cfg *Config) (*nat64, error) {
	if !xlat.ValidPrefix(cfg.NAT64Prefix) {
		return nil, fmt.Errorf("nat: NAT64 prefix %v: want an IPv6 prefix of length 32, 40, 48, 56, 64 or 96 (RFC 6052 §2.2)", cfg.NAT64Prefix)
	}
	pool := cfg.NAT64Pool
	if !pool.IsValid() || !pool.Addr().Is4() {
		return nil, fmt.Errorf("nat: NAT64 pool %v: want an IPv4 prefix", pool)
	}
	pool = pool.Masked()
	if pool.Bits() < 32-16 {
		return nil, fmt.Errorf("nat: NAT64 pool %v: at most %d addresses", pool, maxPool)
	}
	for _, a := range cfg.Public {
		if pool.Contains(a) {
			return nil, fmt.Errorf("nat: public address %v is in the NAT64 pool %v", a, pool)
		}
	}
	n := &nat64{prefix: cfg.NAT64Prefix.Masked(), pool: pool, size: 1 << (32 - pool.Bits())}
	b := pool.Addr().As4()
	n.base = binary.BigEndian.Uint32(b[:])
	n.ports = make([]*portMap, n.size)
	n.addrs = make([]netip.Addr, n.size)
	for i := range n.ports {
		n.ports[i] = newPortMap(cfg.PortMin, cfg.PortMax)
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], n.base+uint32(i))
		n.addrs[i] = netip.AddrFrom4(a)
	}
	return n, nil
}

// poolIndex returns the index of pool address a, which must be in the pool.
func (n *nat64) poolIndex(a netip.Addr) uint32 {
	b := a.As4()
	return (binary.BigEndian.Uint32(b[:]) - n.base) & (n.size - 1)
}

// pick returns the pool address of IPv6 client c: always the same one for a
// client (paired pooling, RFC 7857 §4 and RFC 6146 §3.5.1.1), spread over
// the pool by a hash of the address.
func (n *nat64) pick(c netip.Addr) uint32 {
	b := c.As16()
	h := binary.BigEndian.Uint64(b[:8])*0x9e3779b97f4a7c15 ^ binary.BigEndian.Uint64(b[8:])
	// The finaliser of SplitMix64: every input bit reaches every output bit.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return uint32(h) & (n.size - 1)
}

// proto4 and proto6 map the ICMP protocol numbers across families; TCP and
// UDP keep theirs.
func proto4(p uint8) uint8 {
	if p == header.ProtoICMPv6 {
		return header.ProtoICMPv4
	}
	return p
}

// match says whether p is for NAT64: outbound (IPv6 to the prefix) or
// inbound (IPv4 to the pool).
func (n *nat64) match(p *header.Parsed) (outbound, ok bool) {
	if p.Version == 6 {
		return true, n.prefix.Contains(p.Dst)
	}
	return false, n.pool.Contains(p.Dst)
}

// process64 translates a packet for NAT64 (RFC 6146 §3.5): p has been
// decoded and is outbound (IPv6 to the prefix) or inbound (IPv4 to the pool).
func (e *Engine) process64(p *header.Parsed, outbound bool, now int64, c *counts) (Verdict, []byte, DropReason) {
	if p.Fragment {
		v, dr := e.Stats.drop(DropFragment)
		return v, nil, dr
	}
	switch p.Proto {
	case header.ProtoTCP, header.ProtoUDP:
	case header.ProtoICMPv4, header.ProtoICMPv6:
		if p.ICMPError {
			return e.icmpError64(p, now)
		}
		if !isEcho(p) {
			v, dr := e.Stats.drop(DropUnsupported)
			return v, nil, dr
		}
	default:
		v, dr := e.Stats.drop(DropUnsupported)
		return v, nil, dr
	}
	tu := conntrack.Tuple{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort, Proto: p.Proto}
	f, dir := e.table.Lookup(tu, now)
	if f == nil {
		var dr DropReason
		if outbound {
			f, dir, dr = e.newOutbound64(p, tu, now)
		} else {
			f, dir, dr = e.newInbound64(p, tu, now)
		}
		if f == nil {
			v, dr := e.Stats.drop(dr)
			return v, nil, dr
		}
	}
	f.Touch(dir, p.TCPFlags, now, e.table.Timeouts())
	if x, ok := f.Ext.(*ftpFlow); ok && p.Proto == header.ProtoTCP {
		return e.processFTP(p, f, dir, x, now)
	}
	if dr := e.translate64(p, f, dir); dr != DropNone {
		v, dr := e.Stats.drop(dr)
		return v, nil, dr
	}
	c.translated++
	return Accept, p.Buf, DropNone
}

// newOutbound64 creates the flow of an IPv6 client's packet to an IPv4 host
// (RFC 6146 §3.5.1.1 for UDP, §3.5.2 for TCP, §3.5.3 for ICMP echo): the
// client's pool address, its source port kept when free (else another one,
// endpoint-independent: RFC 6146 §3.5.1.1 and RFC 4787 REQ-1).
func (e *Engine) newOutbound64(p *header.Parsed, tu conntrack.Tuple, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	if dr := e.mayCreate(p); dr != DropNone {
		return nil, 0, dr
	}
	n := e.n64
	dst, ok := xlat.Extract(n.prefix, tu.Dst)
	if !ok || !usable4(dst) {
		// RFC 6146 §3.5: a destination that cannot be an IPv4 host.
		return nil, 0, DropUnsupported
	}
	if isICMP(tu.Proto) && p.SrcPort == 0 {
		return nil, 0, DropNoFlow // an echo reply that answers nothing
	}
	i := n.pick(tu.Src)
	in := endpoint{addr: tu.Src, port: tu.SrcPort, proto: tu.Proto}
	port, ok := n.ports[i].acquire(in)
	if !ok {
		return nil, 0, DropPortsExhausted
	}
	reply := conntrack.Tuple{Src: dst, Dst: n.addrs[i], SrcPort: tu.DstPort, DstPort: port, Proto: proto4(tu.Proto)}
	f := conntrack.NewFlow(tu, reply)
	f.Tag = tag64
	g, dir, dr := e.insert(f, now)
	if g != f {
		n.ports[i].release(in)
	}
	return g, dir, dr
}

// newInbound64 creates the flow of an IPv4 packet to the pool that an FTP
// expectation announced (a data connection of active mode). Anything else
// addressed to the pool without a flow is dropped: RFC 6146 §3.5.2.2 lets an
// IPv4 host open a connection only where filtering allows, and natalg keeps
// no static bindings.
func (e *Engine) newInbound64(p *header.Parsed, tu conntrack.Tuple, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	if tu.Proto != header.ProtoTCP || p.TCPFlags&(conntrack.FlagSYN|conntrack.FlagACK|conntrack.FlagRST) != conntrack.FlagSYN {
		return nil, 0, DropNoFlow
	}
	x := e.table.TakeExpectation(tu.Proto, tu.Src, tu.Dst, tu.DstPort, now)
	if x == nil {
		return nil, 0, DropNoFlow
	}
	t := x.Target
	reply := conntrack.Tuple{Src: t.Addr(), Dst: xlat.Embed(e.n64.prefix, tu.Src), SrcPort: t.Port(), DstPort: tu.SrcPort, Proto: tu.Proto}
	f := conntrack.NewFlow(tu, reply)
	f.Tag = tag64Expected
	f.Master = x.Master
	g, dir, dr := e.insert(f, now)
	if g != f {
		e.n64.ports[e.n64.poolIndex(tu.Dst)].release(endpoint{addr: t.Addr(), port: t.Port(), proto: tu.Proto})
		return g, dir, dr
	}
	e.Stats.DataFlows.Add(1)
	return g, dir, dr
}

// usable4 says whether a can be an IPv4 host a NAT64 sends to: not
// unspecified, loopback, multicast, broadcast or link-local (RFC 6052 §3.1
// and RFC 6146 §3.5.4 leave such destinations untranslated).
func usable4(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() &&
		!a.IsLinkLocalUnicast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// translate64 turns p, a packet of direction dir of NAT64 flow f, into a
// packet of the other family (RFC 7915 §4 and §5) that leaves looking like
// the reverse of the other direction's tuple. p is decoded again over the
// result, so the caller may go on using it.
func (e *Engine) translate64(p *header.Parsed, f *conntrack.Flow, dir conntrack.Dir) DropReason {
	t := f.Tuples[dir.Other()]
	var out []byte
	var r xlat.Reason
	if p.Version == 6 {
		out, r = e.n64.ids.ToIPv4(p.Buf, t.Dst, t.Src, nil)
	} else {
		out, r = xlat.ToIPv6(p.Buf, t.Dst, t.Src, nil)
	}
	if r != xlat.Ok {
		e.Stats.xlat(r)
		return xlatDropReason(r)
	}
	if hr := p.Decode(out); hr != header.Ok {
		e.Stats.Malformed[hr&31].Add(1)
		return DropMalformed
	}
	if p.SrcPort != t.DstPort && (!isICMP(p.Proto) || p.SrcPort != 0) {
		p.SetSrcPort(t.DstPort)
	}
	if p.DstPort != t.SrcPort && (!isICMP(p.Proto) || p.DstPort != 0) {
		p.SetDstPort(t.SrcPort)
	}
	return DropNone
}

// xlatDropReason maps a translation failure to a drop reason.
func xlatDropReason(r xlat.Reason) DropReason {
	switch r {
	case xlat.Fragment:
		return DropFragment
	case xlat.TooBig:
		return DropTooBig
	case xlat.Malformed:
		return DropMalformed
	}
	return DropNAT64Untranslatable
}

// icmpError64 translates an ICMP or ICMPv6 error about a packet of a NAT64
// flow (RFC 6146 §3.5.1.1 and §3.5.3, RFC 7915 §4.2 and §5.2): the outer
// header into the other family towards the flow's endpoint on that side,
// from the error's sender (its address embedded in the prefix when it is an
// IPv4 router, the flow's pool address when it is the IPv6 side), and the
// quoted packet back to what its sender sent or its receiver got there.
func (e *Engine) icmpError64(p *header.Parsed, now int64) (Verdict, []byte, DropReason) {
	var in header.Parsed
	f, dir, dr := e.quotedFlow(p, &in, now)
	if dr == DropNone && f.Tag < tag64 {
		dr = DropICMPErrorNoFlow
	}
	if dr != DropNone {
		v, dr := e.Stats.drop(dr)
		return v, nil, dr
	}
	t := f.Tuples[dir.Other()] // the error leaves from t.Dst towards t.Src
	src := t.Dst
	if p.Src != f.Tuples[dir].Src {
		// Sent by a router on the way, not by the flow's endpoint.
		if p.Version == 4 {
			src = xlat.Embed(e.n64.prefix, p.Src)
		} else if a, ok := xlat.Extract(e.n64.prefix, p.Src); ok {
			src = a
		}
		// An IPv6 router outside the prefix is hidden behind the flow's
		// pool address (RFC 6146 §3.5.1.1 translates only what it can).
	}
	// The quoted packet becomes the reverse of what leaves: t.Src -> t.Dst.
	inner := xlat.Inner{Src: t.Src, Dst: t.Dst, SrcPort: t.SrcPort, DstPort: t.DstPort}
	var out []byte
	var r xlat.Reason
	if p.Version == 6 {
		out, r = e.n64.ids.ToIPv4(p.Buf, src, t.Src, &inner)
	} else {
		out, r = xlat.ToIPv6(p.Buf, src, t.Src, &inner)
	}
	if r != xlat.Ok {
		e.Stats.xlat(r)
		v, dr := e.Stats.drop(xlatDropReason(r))
		return v, nil, dr
	}
	f.Touch(dir, 0, now, e.table.Timeouts())
	e.Stats.ICMPErrors.Add(1)
	e.Stats.Accepted.Add(1)
	return Accept, out, DropNone
}

// release64 releases what a NAT64 flow held.
func (e *Engine) release64(f *conntrack.Flow) {
	o, r := f.Tuples[conntrack.Original], f.Tuples[conntrack.Reply]
	n := e.n64
	switch f.Tag {
	case tag64:
		n.ports[n.poolIndex(r.Dst)].release(endpoint{addr: o.Src, port: o.SrcPort, proto: o.Proto})
	case tag64Expected:
		n.ports[n.poolIndex(o.Dst)].release(endpoint{addr: r.Src, port: r.SrcPort, proto: r.Proto})
	}
}

// mapData64 implements MapData for a NAT64 control flow: the IPv6 client's
// announced endpoint gets a port on its pool address, and the IPv4 server
// is expected to connect there (RFC 6384 §4, active mode).
func (x *ftpFlow) mapData64(dir conntrack.Dir, announced netip.AddrPort) (netip.AddrPort, bool) {
	n := x.e.n64
	a := announced.Addr()
	if dir != conntrack.Original || !a.Is6() || a != x.f.Tuples[dir].Src {
		return netip.AddrPort{}, false
	}
	pub := x.f.Tuples[conntrack.Reply].Dst
	i := n.poolIndex(pub)
	in := endpoint{addr: a, port: announced.Port(), proto: conntrack.ProtoTCP}
	port, ok := n.ports[i].acquire(in)
	if !ok {
		return netip.AddrPort{}, false
	}
	exp := &conntrack.Expectation{
		Proto:   conntrack.ProtoTCP,
		Src:     x.f.Tuples[conntrack.Reply].Src, // the IPv4 server
		Dst:     pub,
		DstPort: port,
		Target:  announced,
		Master:  x.f,
	}
	if err := x.e.table.Expect(exp, x.now); err != nil {
		n.ports[i].release(in)
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(pub, port), true
}

// Bindings64 returns the number of live NAT64 pool bindings.
func (e *Engine) bindings64() int {
	if e.n64 == nil {
		return 0
	}
	k := 0
	for _, m := range e.n64.ports {
		k += m.bindings()
	}
	return k
}
