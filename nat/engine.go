package nat

import (
	"net/netip"
	"slices"
	"time"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/frag"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// Engine translates packets. It is safe for concurrent use by several
// workers sharing one flow table.
type Engine struct {
	cfg    Config
	table  *conntrack.Table
	ports  *portMap
	public [2]netip.Addr     // by family; invalid if none
	n64    *nat64            // nil unless NAT64 is on
	frags  *frag.Reassembler // nil with Config.NoReassembly
	// ftpPorts are the control ports the FTP gateway inspects (none with
	// DisableFTP); read when a flow is created.
	ftpPorts []uint16
	ct       CTStore // where ProcessCT and Serve ask to store flows' facts in the kernel's conntrack entries

	// Stats come last, with a cache line of padding on either side, so
	// that no field read on every packet shares a cache line with a
	// counter: every worker adds its batch's counts to Stats, and a line a
	// counter shares is fetched back from the other worker's cache after
	// each of its batches (bench/README.md, "Scaling with workers").
	_     [64]byte
	Stats Stats
	_     [64]byte
}

// New returns an engine for cfg.
func New(cfg Config) (*Engine, error) {
	cfg.Inside = slices.Clone(cfg.Inside)
	cfg.Public = slices.Clone(cfg.Public)
	cfg.Forwards = slices.Clone(cfg.Forwards)
	cfg.NAT64Forwards = slices.Clone(cfg.NAT64Forwards)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, ports: newPortMap(cfg.PortMin, cfg.PortMax)}
	e.ports.strict = cfg.StrictPorts
	if !cfg.NoReassembly {
		e.frags = frag.New(cfg.Fragments)
		e.cfg.Fragments = e.frags.Config()
		e.Stats.frag = &e.frags.Stats
	}
	for _, a := range cfg.Public {
		e.public[familyOf(a)] = a
	}
	if cfg.NAT64Prefix.IsValid() {
		n, err := newNAT64(&e.cfg)
		if err != nil {
			return nil, err
		}
		e.n64 = n
	}
	for _, f := range cfg.Forwards {
		e.ports.reserve(f.Proto, uint8(familyOf(f.Target)), f.Port, f.PortEnd)
	}
	if !cfg.DisableFTP {
		e.ftpPorts = slices.Clone(cfg.FTPPorts)
	}
	ct := cfg.Conntrack
	ct.FlowRemoved = e.flowRemoved
	ct.ExpectationRemoved = e.expectationRemoved
	e.table = conntrack.NewTable(ct)
	return e, nil
}

// Table returns the engine's flow table.
func (e *Engine) Table() *conntrack.Table { return e.table }

// Config returns the engine's configuration (defaults filled in).
func (e *Engine) Config() Config { return e.cfg }

// Expire removes flows and expectations that timed out at now. Front ends
// call it periodically (the daemon from a ticker, replay as capture time
// advances).
// Fragments of datagrams whose reassembly timed out are dropped too.
func (e *Engine) Expire(now time.Time) int {
	if e.frags != nil {
		e.frags.Expire(now.UnixNano())
	}
	return e.table.Sweep(now.UnixNano())
}

// FragmentsHeld returns the datagrams in reassembly and the bytes they
// hold.
func (e *Engine) FragmentsHeld() (datagrams, bytes int) {
	if e.frags == nil {
		return 0, 0
	}
	return e.frags.Len(), e.frags.Bytes()
}

// Bindings returns the number of live public-port bindings (NAT64 pool
// bindings included).
func (e *Engine) Bindings() int { return e.ports.bindings() + e.bindings64() }

// isFTP says whether port is one of the FTP control ports.
func (e *Engine) isFTP(port uint16) bool { return slices.Contains(e.ftpPorts, port) }

func (e *Engine) inside(a netip.Addr) bool {
	for _, p := range e.cfg.Inside {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// process translates one packet (see ProcessBatch). hint, when not nil, is what the prefetch passes
// learned of the tuple peekTuple reads from pkt (its hash, and the flow its
// index slot points to): the lookup starts from it. more, when not nil, is
// where packets to send after the returned one go (Packet.More).
func (e *Engine) process(pkt []byte, now int64, hint *conntrack.Hint, c *counts, more *[][]byte, facts *CTFacts) (Verdict, []byte, DropReason) {
	c.in++
	var p header.Parsed
	if r := p.Decode(pkt); r != header.Ok {
		e.Stats.Malformed[r&31].Add(1)
		v, dr := e.Stats.drop(DropMalformed)
		return v, nil, dr
	}
	if e.n64 != nil {
		if out, ok := e.n64.match(&p); ok {
			return e.process64(&p, out, now, c, more)
		}
	}
	outbound := e.inside(p.Src)
	inbound := !outbound && p.Dst == e.public[familyOf(p.Dst)]
	if !outbound && !inbound {
		c.passed++
		return Accept, p.Buf, DropNone
	}
	if p.Fragment {
		return e.reassemble(&p, now, c, more)
	}
	var tu conntrack.Tuple
	switch p.Proto {
	case ipproto.TCP, ipproto.UDP:
		if p.Proto == ipproto.UDP && p.Version == 6 && p.UDP().Checksum() == 0 {
			v, dr := e.Stats.drop(DropBadUDPZeroChecksum)
			return v, nil, dr
		}
	case ipproto.ICMPv4, ipproto.ICMPv6:
		if p.ICMPError {
			return e.icmpError(&p, outbound, now)
		}
		if !isEcho(&p) {
			if inbound {
				// Neighbour discovery, router advertisements and other
				// informational messages to the public address are for the
				// router itself: nothing to translate, nothing to reveal.
				c.passed++
				return Accept, p.Buf, DropNone
			}
			v, dr := e.Stats.drop(DropUnsupported)
			return v, nil, dr
		}
	default:
		v, dr := e.Stats.drop(DropUnsupported)
		return v, nil, dr
	}
	// Field by field: a composite literal is built in a temporary with 8-
	// and 2-byte stores and copied out with 16-byte loads, which cannot be
	// forwarded from them (6 ns a packet in a profile).
	tu.Src, tu.Dst = p.Src, p.Dst
	tu.SrcPort, tu.DstPort, tu.Proto = p.SrcPort, p.DstPort, p.Proto
	var f *conntrack.Flow
	var dir conntrack.Dir
	if hint != nil {
		f, dir = e.table.LookupHint(&tu, hint, now)
	} else {
		f, dir = e.table.LookupHash(&tu, e.table.Hash(&tu), now)
	}
	if f == nil {
		// A new flow: its conntrack entry is not in the kernel's table
		// yet (unconfirmed, or not made at all before an inbound packet's
		// translation): its facts are stored with a later packet.
		facts = nil
		var dr DropReason
		switch {
		case outbound && p.Dst == e.public[familyOf(p.Dst)]:
			f, dir, dr = e.newHairpin(&p, tu, now)
			if f == nil && dr == DropNone {
				// Nothing inside answers at that public endpoint: the
				// packet is for the router itself (its own services).
				c.passed++
				return Accept, p.Buf, DropNone
			}
		case outbound:
			f, dir, dr = e.newOutbound(&p, tu, now)
		default:
			f, dir, dr = e.newInbound(&p, tu, now)
		}
		if f == nil {
			v, dr := e.Stats.drop(dr)
			return v, nil, dr
		}
	}
	f.Touch(dir, p.TCPFlags, now, e.table.Timeouts())
	if x, ok := f.Ext.(*ftpFlow); ok && p.Proto == ipproto.TCP {
		return e.processFTP(&p, f, dir, x, now, facts)
	}
	if facts != nil {
		e.ctFacts(f, nil, facts)
	}
	e.translate(&p, f, dir)
	c.translated++
	return Accept, p.Buf, DropNone
}

// isEcho reports whether p is an ICMP(v6) echo request or reply.
func isEcho(p *header.Parsed) bool {
	if p.Proto == ipproto.ICMPv4 {
		return p.ICMPType == header.ICMPv4Echo || p.ICMPType == header.ICMPv4EchoReply
	}
	return p.ICMPType == header.ICMPv6EchoRequest || p.ICMPType == header.ICMPv6EchoReply
}

// translate rewrites p's addresses and ports so that a packet of direction
// dir leaves looking like the reverse of the other direction's tuple.
func (e *Engine) translate(p *header.Parsed, f *conntrack.Flow, dir conntrack.Dir) {
	t := f.Tuples[dir.Other()]
	// Leaving: source = t.Dst:t.DstPort, destination = t.Src:t.SrcPort.
	if p.Src != t.Dst {
		p.SetSrcAddr(t.Dst)
	}
	if p.Dst != t.Src {
		p.SetDstAddr(t.Src)
	}
	if p.SrcPort != t.DstPort && (p.Proto != ipproto.ICMPv4 && p.Proto != ipproto.ICMPv6 || p.SrcPort != 0) {
		p.SetSrcPort(t.DstPort)
	}
	if p.DstPort != t.SrcPort && (p.Proto != ipproto.ICMPv4 && p.Proto != ipproto.ICMPv6 || p.DstPort != 0) {
		p.SetDstPort(t.SrcPort)
	}
}

// newOutbound creates the flow for an outbound packet with no flow:
// masquerade to the public address of its family, keeping the source port
// when free.
func (e *Engine) newOutbound(p *header.Parsed, tu conntrack.Tuple, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	if dr := e.mayCreate(p); dr != DropNone {
		return nil, 0, dr
	}
	pub := e.public[familyOf(p.Src)]
	in := endpoint{addr: p.Src, port: tu.SrcPort, proto: tu.Proto}
	if tu.Proto.IsICMP() {
		if p.SrcPort == 0 && p.DstPort != 0 {
			// An echo reply from inside to a request that has no flow.
			return nil, 0, DropNoFlow
		}
	}
	port, ok := e.ports.acquire(in)
	if !ok {
		return nil, 0, DropPortsExhausted
	}
	f := kindSNAT.newFlow(tu, netip.AddrPortFrom(tu.Dst, tu.DstPort), netip.AddrPortFrom(pub, port))
	g, dir, dr := e.insert(f, now)
	if g != f {
		e.ports.release(in)
	} else {
		e.ports.addPeer(in, tu.Dst)
	}
	return g, dir, dr
}

// newInbound creates the flow for an inbound packet with no flow: through a
// DNAT forward, or as the connection an expectation announced.
func (e *Engine) newInbound(p *header.Parsed, tu conntrack.Tuple, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	if tu.Proto.IsICMP() {
		return nil, 0, DropNoFlow
	}
	if dr := e.mayCreate(p); dr != DropNone {
		return nil, 0, dr
	}
	for i := range e.cfg.Forwards {
		fw := &e.cfg.Forwards[i]
		if fw.Proto == tu.Proto && tu.DstPort >= fw.Port && tu.DstPort <= fw.PortEnd && familyOf(fw.Target) == familyOf(tu.Dst) {
			t := fw.target(tu.DstPort)
			f := kindForward.newFlow(tu, t, netip.AddrPortFrom(tu.Src, tu.SrcPort))
			return e.insert(f, now)
		}
	}
	if tu.Proto == ipproto.TCP && p.TCPFlags&(ipproto.TCPSYN|ipproto.TCPACK) != ipproto.TCPSYN {
		// An expectation admits only a connection's opening SYN.
		return nil, 0, DropNoFlow
	}
	x := e.table.TakeExpectation(tu.Proto, tu.Src, tu.Dst, tu.DstPort, now)
	if x == nil {
		return e.newMapped(tu, now)
	}
	t := x.Target
	f := kindExpected.newFlow(tu, t, netip.AddrPortFrom(tu.Src, tu.SrcPort))
	f.Master = x.Master
	g, dir, dr := e.insert(f, now)
	if g != f {
		// The binding the expectation held is not passed on.
		e.ports.release(endpoint{addr: t.Addr(), port: t.Port(), proto: tu.Proto})
		return g, dir, dr
	}
	e.Stats.DataFlows.Add(1)
	return g, dir, dr
}

// mayCreate says whether p may open a new flow.
func (e *Engine) mayCreate(p *header.Parsed) DropReason {
	if p.Proto != ipproto.TCP {
		return DropNone
	}
	fl := p.TCPFlags
	if fl&ipproto.TCPRST != 0 {
		return DropNoFlow
	}
	if fl&ipproto.TCPSYN == 0 && e.cfg.NoPickup {
		return DropNoPickup
	}
	if fl&ipproto.TCPSYN != 0 && fl&ipproto.TCPACK != 0 {
		return DropNoFlow // a SYN+ACK never opens a flow
	}
	return DropNone
}

// insert adds f to the table, attaching the FTP gateway to control flows.
func (e *Engine) insert(f *conntrack.Flow, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	o, r := f.Tuples[conntrack.Original], f.Tuples[conntrack.Reply]
	if o.Proto == ipproto.TCP && f.Master == nil && (e.isFTP(o.DstPort) || e.isFTP(r.SrcPort)) {
		f.Ext = newFTPFlow(e, f)
	}
	g, dir, err := e.table.Insert(f, now)
	switch err {
	case nil:
		if g == f {
			e.Stats.FlowsMade.Add(1)
		}
		return g, dir, DropNone
	case conntrack.ErrFull:
		return nil, 0, DropTableFull
	default:
		return nil, 0, DropClash
	}
}

// expectationRemoved releases the binding an unused expectation held.
func (e *Engine) expectationRemoved(x *conntrack.Expectation) {
	if e.n64 != nil && x.Dst.Is4() && x.Target.Addr().Is6() {
		e.n64.ports[e.n64.poolIndex(x.Dst)].release(endpoint{addr: x.Target.Addr(), port: x.Target.Port(), proto: x.Proto})
		return
	}
	if e.cfg.Expectations != nil {
		e.cfg.Expectations.ExpectationRemoved(x)
	}
	e.ports.release(endpoint{addr: x.Target.Addr(), port: x.Target.Port(), proto: x.Proto})
}

// counts are the per-packet counters of the fast path, kept by the caller
// of process and added to Stats once per batch: shared atomics updated on
// every packet would bounce their cache line between workers.
type counts struct{ in, passed, translated uint64 }

func (c *counts) flush(s *Stats) {
	if c.in != 0 {
		s.In.Add(c.in)
	}
	if c.passed != 0 {
		s.Passed.Add(c.passed)
	}
	if c.translated != 0 {
		s.Accepted.Add(c.translated)
		s.Translated.Add(c.translated)
	}
	*c = counts{}
}
