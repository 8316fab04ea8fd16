package nat

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
	"github.com/natalg/natalg/nat/xlat"
)

// nat64 is the stateful NAT64 of RFC 6146: IPv6 clients reach IPv4 hosts at
// the addresses RFC 6052 embeds in Prefix, and are seen by them from an
// address of Pool.
type nat64 struct {
	prefix netip.Prefix
	// wkp is set when prefix is the Well-Known Prefix 64:ff9b::/96: it
	// may then only represent global IPv4 addresses (RFC 6052 §3.1).
	wkp   bool
	pool  netip.Prefix
	base  uint32       // first pool address, as a number
	size  uint32       // pool addresses
	ports []*portMap   // one per pool address
	addrs []netip.Addr // the pool addresses
	// static maps an IPv6 host with static bindings to its pool address
	// index, fwd a published pool endpoint to its binding (nil without
	// Config.NAT64Forwards).
	static map[netip.Addr]uint32
	fwd    map[fwdKey64]netip.AddrPort
	// ids numbers the IPv4 packets this engine makes (RFC 7915 §5.1.1):
	// its own counter, so an engine's output depends only on its input
	// and a replay of a capture is reproducible.
	ids xlat.IDs
}

// fwdKey64 names a published pool endpoint of a static binding.
type fwdKey64 struct {
	proto ipproto.Proto
	index uint32 // pool address index
	port  uint16
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
	n.wkp = n.prefix == WellKnownPrefix
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
	for _, fw := range cfg.NAT64Forwards {
		if err := n.addStatic(fw); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// addStatic installs a static binding (RFC 6146 §3.1): its pool port is
// pinned to the IPv6 endpoint, and every session of the IPv6 host leaves
// from the same pool address (RFC 6146 §3.5.1.1).
func (n *nat64) addStatic(fw Forward64) error {
	t := fw.Target
	if !t.Addr().Is6() || t.Addr().Is4In6() || n.prefix.Contains(t.Addr()) || t.Port() == 0 ||
		fw.Proto != ipproto.TCP && fw.Proto != ipproto.UDP {
		return fmt.Errorf("nat: NAT64 forward %v: want a TCP or UDP IPv6 endpoint outside the prefix %v", fw, n.prefix)
	}
	i, ok := n.static[t.Addr()]
	if !ok {
		i = n.pick(t.Addr())
	}
	if a := fw.Pool.Addr(); a.IsValid() {
		if !n.pool.Contains(a) {
			return fmt.Errorf("nat: NAT64 forward %v: %v is not in the pool %v", fw, a, n.pool)
		}
		if ok && n.poolIndex(a) != i {
			return fmt.Errorf("nat: NAT64 forward %v: %v is published on %v already (one pool address per IPv6 host)", fw, t.Addr(), n.addrs[i])
		}
		i = n.poolIndex(a)
	}
	if !n.ports[i].pin(endpoint{addr: t.Addr(), port: t.Port(), proto: fw.Proto}, fw.Pool.Port()) {
		return fmt.Errorf("nat: NAT64 forward %v: port %d of %v is taken, or %v is bound already", fw, fw.Pool.Port(), n.addrs[i], t)
	}
	if n.static == nil {
		n.static, n.fwd = map[netip.Addr]uint32{}, map[fwdKey64]netip.AddrPort{}
	}
	n.static[t.Addr()] = i
	n.fwd[fwdKey64{proto: fw.Proto, index: i, port: fw.Pool.Port()}] = t
	return nil
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
	if i, ok := n.static[c]; ok {
		return i // the pool address of its static bindings
	}
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
func proto4(p ipproto.Proto) ipproto.Proto {
	if p == ipproto.ICMPv6 {
		return ipproto.ICMPv4
	}
	return p
}

// proto6 is the IPv6 side's protocol number of an IPv4 protocol: ICMPv6
// for ICMP (RFC 7915 §4.2), the same number otherwise.
func proto6(p ipproto.Proto) ipproto.Proto {
	if p == ipproto.ICMPv4 {
		return ipproto.ICMPv6
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

// WellKnownPrefix is the RFC 6052 §2.1 Well-Known Prefix, 64:ff9b::/96.
var WellKnownPrefix = netip.MustParsePrefix("64:ff9b::/96")

// nonGlobal4 are the IPv4 special-purpose blocks of RFC 6890 §2.2.2 whose
// Global attribute is False (Tables 1-9, 11-16; 192.88.99.0/24, Table 10,
// is global). Multicast (224.0.0.0/4) is no unicast host either.
var nonGlobal4 = [...]netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "This host on this network"
	netip.MustParsePrefix("10.0.0.0/8"),         // Private-Use (RFC 1918)
	netip.MustParsePrefix("100.64.0.0/10"),      // Shared Address Space (RFC 6598)
	netip.MustParsePrefix("127.0.0.0/8"),        // Loopback
	netip.MustParsePrefix("169.254.0.0/16"),     // Link Local
	netip.MustParsePrefix("172.16.0.0/12"),      // Private-Use
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF Protocol Assignments (DS-Lite's 192.0.0.0/29 within)
	netip.MustParsePrefix("192.0.2.0/24"),       // TEST-NET-1
	netip.MustParsePrefix("192.168.0.0/16"),     // Private-Use
	netip.MustParsePrefix("198.18.0.0/15"),      // Benchmarking (RFC 2544)
	netip.MustParsePrefix("198.51.100.0/24"),    // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),     // TEST-NET-3
	netip.MustParsePrefix("224.0.0.0/4"),        // multicast
	netip.MustParsePrefix("240.0.0.0/4"),        // Reserved for Future Use
	netip.MustParsePrefix("255.255.255.255/32"), // Limited Broadcast
}

// Global4 reports whether a is a global IPv4 address: in none of the
// RFC 6890 blocks whose Global attribute is False. Only such addresses may
// be embedded in the Well-Known Prefix (RFC 6052 §3.1).
func Global4(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	for _, p := range nonGlobal4 {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// refuse64 applies the address rules that hold before any state is looked
// at: an IPv6 packet whose source lies in the prefix is discarded (RFC 6146
// §3.5: it would loop through the translator, §5), and with the
// Well-Known Prefix no packet is translated in which an address would be
// the prefix with a non-global IPv4 address (RFC 6052 §3.1): the IPv6
// destination's embedded address outbound, the IPv4 source inbound (it
// becomes the IPv6 source), for ICMP errors from routers too.
func (n *nat64) refuse64(p *header.Parsed, outbound bool) DropReason {
	if !outbound {
		if n.wkp && !Global4(p.Src) {
			return DropNAT64NonGlobal
		}
		return DropNone
	}
	if n.prefix.Contains(p.Src) {
		return DropNAT64SrcInPrefix
	}
	if n.wkp {
		if dst, ok := xlat.Extract(n.prefix, p.Dst); !ok || !Global4(dst) {
			return DropNAT64NonGlobal
		}
	}
	return DropNone
}

// process64 translates a packet for NAT64 (RFC 6146 §3.5): p has been
// decoded and is outbound (IPv6 to the prefix) or inbound (IPv4 to the pool).
//
// An IPv6 packet whose translation is addressed to a pool address is a
// hairpin packet (RFC 6146 §3.8: "If the destination IP address of the
// translated packet is an IPv4 address assigned to the NAT64 itself, then
// the packet is a hairpin packet"): "the outgoing 5-tuple becomes the
// incoming 5-tuple", "the packet is treated as if it was received on the
// outgoing interface" and processing continues at "Filtering and Updating
// Binding and Session Information" (§3.5). So it is processed again, as
// an inbound IPv4 packet from the sender's pool address and port: it goes
// to the IPv6 host behind the destination's binding, from the sender's
// IPv4 transport address embedded in the prefix, and the answers take the
// same two steps back.
func (e *Engine) process64(p *header.Parsed, outbound bool, now int64, c *counts, more *[][]byte) (Verdict, []byte, DropReason) {
	if dr := e.n64.refuse64(p, outbound); dr != DropNone {
		v, dr := e.Stats.drop(dr)
		return v, nil, dr
	}
	counted := c.translated
	v, out, dr := e.process64Once(p, outbound, false, now, c, more)
	if v != Accept || !outbound || len(out) < header.IPv4MinimumSize || out[0]>>4 != 4 ||
		!e.n64.pool.Contains(netip.AddrFrom4([4]byte(out[16:20]))) {
		return v, out, dr
	}
	counted = c.translated - counted
	var q header.Parsed
	if r := q.Decode(out); r != header.Ok {
		c.translated -= counted
		e.Stats.Malformed[r&31].Add(1)
		v, dr := e.Stats.drop(DropMalformed)
		return v, nil, dr
	}
	// The packet is counted once: as translated by the first pass, or as
	// dropped by the second.
	var again counts
	v, out, dr = e.process64Once(&q, false, true, now, &again, more)
	if v != Accept {
		c.translated -= counted
	}
	return v, out, dr
}

// process64Once is one pass of process64. hairpin is set for an IPv4
// packet that the first pass made (RFC 6146 §3.8). The address rules of
// refuse64 were applied to the packet as it arrived, before the first pass.
func (e *Engine) process64Once(p *header.Parsed, outbound, hairpin bool, now int64, c *counts, more *[][]byte) (Verdict, []byte, DropReason) {
	if p.Fragment {
		return e.reassemble(p, now, c, more)
	}
	switch p.Proto {
	case ipproto.TCP, ipproto.UDP:
	case ipproto.ICMPv4, ipproto.ICMPv6:
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
		switch {
		case outbound:
			f, dir, dr = e.newOutbound64(p, tu, now)
		case hairpin:
			f, dir, dr = e.newHairpin64(p, tu, now)
		default:
			f, dir, dr = e.newInbound64(p, tu, now)
		}
		if f == nil {
			v, dr := e.Stats.drop(dr)
			return v, nil, dr
		}
	}
	f.Touch(dir, p.TCPFlags, now, e.table.Timeouts())
	if x, ok := f.Ext.(*ftpFlow); ok && p.Proto == ipproto.TCP {
		return e.processFTP(p, f, dir, x, now, nil)
	}
	// RFC 7915 §4.1: an IPv4 packet with DF clear may be fragmented on
	// its way to a lowest-ipv6-mtu its translation exceeds.
	var id4 uint16
	split := false
	if p.Version == 4 && more != nil {
		ip := header.IPv4(p.Buf)
		split = !ip.DontFragment() && len(p.Buf)-p.IPHeaderLen+header.IPv6FixedHeaderSize > e.cfg.NAT64MTU6
		id4 = ip.ID()
	}
	if dr := e.translate64(p, f, dir); dr != DropNone {
		v, dr := e.Stats.drop(dr)
		return v, nil, dr
	}
	c.translated++
	if split {
		return Accept, e.split64(p.Buf, id4, more), DropNone
	}
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
	if tu.Proto.IsICMP() && p.SrcPort == 0 {
		return nil, 0, DropNoFlow // an echo reply that answers nothing
	}
	i := n.pick(tu.Src)
	in := endpoint{addr: tu.Src, port: tu.SrcPort, proto: tu.Proto}
	port, ok := n.ports[i].acquire(in)
	if !ok {
		return nil, 0, DropPortsExhausted
	}
	f := kind64.newFlow(tu, netip.AddrPortFrom(dst, tu.DstPort), netip.AddrPortFrom(n.addrs[i], port))
	g, dir, dr := e.insert(f, now)
	if g != f {
		n.ports[i].release(in)
	} else {
		n.ports[i].sentThrough(in, 1) // an active mapping, for hairpinning
	}
	return g, dir, dr
}

// newInbound64 creates the flow of an IPv4 packet to the pool that an FTP
// expectation announced (a data connection of active mode). Anything else
// addressed to the pool without a flow is dropped: RFC 6146 §3.5.2.2 lets an
// IPv4 host open a connection only where filtering allows, and natalg keeps
// no static bindings.
func (e *Engine) newInbound64(p *header.Parsed, tu conntrack.Tuple, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	if t, ok := e.n64.fwd[fwdKey64{proto: tu.Proto, index: e.n64.poolIndex(tu.Dst), port: tu.DstPort}]; ok {
		return e.newStatic64(p, tu, t, now)
	}
	if tu.Proto != ipproto.TCP || p.TCPFlags&(ipproto.TCPSYN|ipproto.TCPACK|ipproto.TCPRST) != ipproto.TCPSYN {
		return nil, 0, DropNoFlow
	}
	x := e.table.TakeExpectation(tu.Proto, tu.Src, tu.Dst, tu.DstPort, now)
	if x == nil {
		return nil, 0, DropNoFlow
	}
	t := x.Target
	f := kind64Expected.newFlow(tu, t, netip.AddrPortFrom(xlat.Embed(e.n64.prefix, tu.Src), tu.SrcPort))
	f.Master = x.Master
	g, dir, dr := e.insert(f, now)
	if g != f {
		e.n64.ports[e.n64.poolIndex(tu.Dst)].release(endpoint{addr: t.Addr(), port: t.Port(), proto: tu.Proto})
		return g, dir, dr
	}
	e.Stats.DataFlows.Add(1)
	return g, dir, dr
}

// newHairpin64 creates the flow of a hairpinned IPv4 packet (RFC 6146
// §3.8), from an IPv6 client's pool transport address to a pool address:
// like any inbound packet through an expectation, else to the IPv6
// endpoint that holds the destination's binding. The binding is reached
// whatever the filtering would say of an external IPv4 peer: the sender is
// one of the NAT64's own IPv6 clients, which can reach the target directly
// over IPv6 anyway (as for NAT44 hairpinning, RFC 4787 §6: forwarded to "an
// external address X2':x2' that has an active mapping"). Only TCP (its
// opening SYN) and UDP open such a flow. The flow's reply tuple is the
// target's answer towards the sender's pool transport address embedded in
// the prefix, so that answers hairpin back through the sender's own flow.
func (e *Engine) newHairpin64(p *header.Parsed, tu conntrack.Tuple, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	if f, dir, dr := e.newInbound64(p, tu, now); f != nil || dr != DropNoFlow {
		return f, dir, dr
	}
	switch tu.Proto {
	case ipproto.UDP:
	case ipproto.TCP:
		if p.TCPFlags&(ipproto.TCPSYN|ipproto.TCPACK|ipproto.TCPRST) != ipproto.TCPSYN {
			return nil, 0, DropNoFlow
		}
	default:
		return nil, 0, DropNoFlow
	}
	n := e.n64
	m := n.ports[n.poolIndex(tu.Dst)]
	in, _, ok := m.holdPublic(tu.Proto, 1, tu.DstPort, endpoint{})
	if !ok {
		return nil, 0, DropNoFlow
	}
	f := kind64Hairpin.newFlow(tu, netip.AddrPortFrom(in.addr, in.port), netip.AddrPortFrom(xlat.Embed(n.prefix, tu.Src), tu.SrcPort))
	g, dir, dr := e.insert(f, now)
	if g != f {
		m.release(in)
		return g, dir, dr
	}
	e.Stats.Hairpinned.Add(1)
	return g, dir, dr
}

// newStatic64 creates the flow of an IPv4 client's packet to the published
// endpoint of a static binding (RFC 6146 §3.5.1 for UDP, §3.5.2.2 for TCP:
// the BIB entry exists, the session is made): towards the IPv6 server
// target, from the client's RFC 6052 address.
func (e *Engine) newStatic64(p *header.Parsed, tu conntrack.Tuple, target netip.AddrPort, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	if dr := e.mayCreate(p); dr != DropNone {
		return nil, 0, dr
	}
	n := e.n64
	i := n.poolIndex(tu.Dst)
	in := endpoint{addr: target.Addr(), port: target.Port(), proto: tu.Proto}
	if _, ok := n.ports[i].acquire(in); !ok {
		return nil, 0, DropPortsExhausted // unreachable: the binding is pinned
	}
	f := kind64Static.newFlow(tu, target, netip.AddrPortFrom(xlat.Embed(n.prefix, tu.Src), tu.SrcPort))
	g, dir, dr := e.insert(f, now)
	if g != f {
		n.ports[i].release(in)
	}
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
	if p.SrcPort != t.DstPort && (!p.Proto.IsICMP() || p.SrcPort != 0) {
		p.SetSrcPort(t.DstPort)
	}
	if p.DstPort != t.SrcPort && (!p.Proto.IsICMP() || p.DstPort != 0) {
		p.SetDstPort(t.SrcPort)
	}
	if p.TCPFlags&ipproto.TCPSYN != 0 && p.Version == 6 && p.MSS > nat64MSSDelta && !e.cfg.NAT64KeepMSS {
		// A SYN from the IPv4 side, now IPv6: its MSS was computed for
		// 40 bytes of IPv4 and TCP headers (RFC 9293 §3.7.1); segments
		// of that size from the IPv6 side carry 60 (RFC 8200 §3) and
		// would exceed the IPv4 side's MTU by 20 once translated back
		// (RFC 7915 §5.1: the IPv4 header replaces the IPv6 one).
		if p.ClampMSS(p.MSS - nat64MSSDelta) {
			e.Stats.MSSClamped.Add(1)
		}
	}
	return DropNone
}

// nat64MSSDelta is the size difference of the IPv6 (40 bytes, RFC 8200 §3)
// and IPv4 (20 bytes without options, RFC 791 §3.1) headers.
const nat64MSSDelta = 20

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
	if dr == DropNone && !kindOf(f).isNAT64() {
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
	if x, ok := f.Ext.(*ftpFlow); ok && in.Proto == ipproto.TCP {
		// the quote's SEQ/ACK as the sender numbered them (ftp glue)
		x.unmapQuoted(&in, dir.Other())
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
	// Not refreshed (RFC 5508 §4.3 REQ-6), as in icmpError.
	e.Stats.ICMPErrors.Add(1)
	e.Stats.Accepted.Add(1)
	return Accept, out, DropNone
}

// mapData64 implements MapData for a NAT64 control flow: the IPv6 client's
// announced endpoint gets a port on its pool address, and the IPv4 server
// is expected to connect there (RFC 6384 §7.2, stateful EPRT translation).
func (ftp *ftpFlow) mapData64(dir conntrack.Dir, announced netip.AddrPort, now int64) (netip.AddrPort, bool) {
	if kindOf(ftp.flow) == kind64Static {
		return ftp.mapStatic64(dir, announced, now)
	}
	announcer := announced.Addr()
	if dir != conntrack.Original || !announcer.Is6() || announcer != ftp.flow.Tuples[dir].Src {
		return netip.AddrPort{}, false
	}
	// the IPv4 server connects to the client's pool address
	reply := &ftp.flow.Tuples[conntrack.Reply]
	return ftp.expectOnPool(reply.Src, reply.Dst, announced, now)
}

// mapStatic64 implements MapData for an FTP control flow of an IPv4 client
// to an IPv6 server published by a static binding (alg/rev64.go): the
// server's passive endpoint gets a port on the binding's pool address, and
// the IPv4 client is expected to connect there (RFC 6384 §6 in the other
// direction).
func (ftp *ftpFlow) mapStatic64(dir conntrack.Dir, announced netip.AddrPort, now int64) (netip.AddrPort, bool) {
	announcer := announced.Addr()
	if dir != conntrack.Reply || announcer != ftp.flow.Tuples[conntrack.Reply].Src {
		return netip.AddrPort{}, false
	}
	// the IPv4 client connects to the binding's pool address
	orig := &ftp.flow.Tuples[conntrack.Original]
	return ftp.expectOnPool(orig.Src, orig.Dst, announced, now)
}

// expectOnPool binds a port of pool address pub to the IPv6 endpoint
// announced and expects the IPv4 host peer to connect there for the data
// connection of this control flow; it returns the pool endpoint.
func (ftp *ftpFlow) expectOnPool(peer, pub netip.Addr, announced netip.AddrPort, now int64) (netip.AddrPort, bool) {
	ports := ftp.engine.n64.ports[ftp.engine.n64.poolIndex(pub)]
	in := endpoint{addr: announced.Addr(), port: announced.Port(), proto: ipproto.TCP}
	port, ok := ports.acquire(in)
	if !ok {
		return netip.AddrPort{}, false
	}
	exp := &conntrack.Expectation{Proto: ipproto.TCP, Src: peer, Dst: pub, DstPort: port, Target: announced, Master: ftp.flow}
	if err := ftp.engine.table.Expect(exp, now); err != nil {
		ports.release(in)
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
