package nat

import (
	"net/netip"
	"slices"
	"time"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/frag"
	"github.com/natalg/natalg/nat/header"
)

// Flow tags: how a flow was made, and so what it holds.
const (
	tagSNAT     uint8 = iota + 1 // outbound; holds a binding of its inside source
	tagForward                   // inbound through a DNAT forward; holds nothing
	tagExpected                  // inbound from an expectation; holds a binding of its target
	tagMapped                    // inbound through a mapping its filtering admitted (RFC 4787 §5); holds a binding of its target
	// Hairpinned flows (RFC 4787 §6 REQ-9, RFC 5382 §7.2 REQ-8): an inside
	// host to a public endpoint that leads back inside. Both addresses are
	// translated: the source through the host's own endpoint-independent
	// mapping, the destination through a forward, an expectation or
	// another inside endpoint's mapping.
	tagHairpin      // to a forwarded port; holds a binding of its inside source
	tagHairpinBound // to an expectation or a mapping; holds a binding of its source and one of its target
)

// Engine translates packets. It is safe for concurrent use by several
// workers sharing one flow table.
type Engine struct {
	cfg     Config
	table   *conntrack.Table
	ports   *portMap
	public  [2]netip.Addr     // by family; invalid if none
	n64     *nat64            // nil unless NAT64 is on
	frags   *frag.Reassembler // nil with Config.NoReassembly
	ftpPort [65536 / 64]uint64
	ct      CTStore // where ProcessCT stores flows' facts in the kernel's conntrack entries

	// Stats come last, a cache line's worth of padding on either side, so
	// that no field read on every packet shares a cache line with a
	// counter: every worker adds its batch's counts to Stats, and a line
	// read per packet that a counter shares would be fetched back from the
	// other worker's cache after each of its batches. Not first: the
	// compiler checks a nil *Engine by loading its first byte before
	// reading a field past the first 4 KiB (ftpPort is 8 KiB), so the
	// first line is read on every packet. See bench/README.md, "Scaling
	// with workers".
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
		for _, p := range cfg.FTPPorts {
			e.ftpPort[p/64] |= 1 << (p % 64)
		}
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

func (e *Engine) isFTP(port uint16) bool { return e.ftpPort[port/64]&(1<<(port%64)) != 0 }

func (e *Engine) inside(a netip.Addr) bool {
	for _, p := range e.cfg.Inside {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Process translates one IP packet in place and returns the verdict and the
// packet to send, which aliases pkt's array. pkt holds the packet from its IP
// header; bytes past the IP length (link padding) are cut off. A payload
// rewrite may grow the packet up to cap(pkt): front ends pass buffers with
// room (65535 bytes is always enough), else such a packet is dropped as
// too_big. now is the packet's arrival time.
//
// A packet from an inside address is outbound, one to a public address is
// inbound, one from an inside address to a public address is hairpinned
// (translated both ways, back inside, RFC 4787 §6) or, when nothing inside
// answers there, accepted unchanged for the router itself; with NAT64 on, an IPv6 packet to the NAT64 prefix is outbound
// and an IPv4 packet to the pool inbound NAT64 (the packet changes family:
// the result may start 20 bytes later in pkt's array, or be 20 bytes
// longer). Any other packet is accepted unchanged.
//
// A fragment of a packet to translate is held (Verdict Held) until its
// datagram is whole; the fragment that completes it returns the datagram
// translated, whole, in memory of its own (ProcessBatch cuts it into
// fragments again: see Packet.More).
func (e *Engine) Process(pkt []byte, now time.Time) (Verdict, []byte) {
	var c counts
	v, out, _ := e.process(pkt, now.UnixNano(), nil, &c, nil, nil)
	c.flush(&e.Stats)
	return v, out
}

// ProcessReason is Process that also says why a packet was dropped.
func (e *Engine) ProcessReason(pkt []byte, now time.Time) (Verdict, []byte, DropReason) {
	var c counts
	v, out, r := e.process(pkt, now.UnixNano(), nil, &c, nil, nil)
	c.flush(&e.Stats)
	return v, out, r
}

// process is Process. hint, when not nil, is what the prefetch passes
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
	case header.ProtoTCP, header.ProtoUDP:
		if p.Proto == header.ProtoUDP && p.Version == 6 && p.UDP().Checksum() == 0 {
			v, dr := e.Stats.drop(DropBadUDPZeroChecksum)
			return v, nil, dr
		}
	case header.ProtoICMPv4, header.ProtoICMPv6:
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
	if x, ok := f.Ext.(*ftpFlow); ok && p.Proto == header.ProtoTCP {
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
	if p.Proto == header.ProtoICMPv4 {
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
	if p.SrcPort != t.DstPort && (p.Proto != header.ProtoICMPv4 && p.Proto != header.ProtoICMPv6 || p.SrcPort != 0) {
		p.SetSrcPort(t.DstPort)
	}
	if p.DstPort != t.SrcPort && (p.Proto != header.ProtoICMPv4 && p.Proto != header.ProtoICMPv6 || p.DstPort != 0) {
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
	if isICMP(tu.Proto) {
		if p.SrcPort == 0 && p.DstPort != 0 {
			// An echo reply from inside to a request that has no flow.
			return nil, 0, DropNoFlow
		}
	}
	port, ok := e.ports.acquire(in)
	if !ok {
		return nil, 0, DropPortsExhausted
	}
	reply := conntrack.Tuple{Src: tu.Dst, Dst: pub, SrcPort: tu.DstPort, DstPort: port, Proto: tu.Proto}
	f := conntrack.NewFlow(tu, reply)
	f.Tag = tagSNAT
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
	if isICMP(tu.Proto) {
		return nil, 0, DropNoFlow
	}
	if dr := e.mayCreate(p); dr != DropNone {
		return nil, 0, dr
	}
	for i := range e.cfg.Forwards {
		fw := &e.cfg.Forwards[i]
		if fw.Proto == tu.Proto && tu.DstPort >= fw.Port && tu.DstPort <= fw.PortEnd && familyOf(fw.Target) == familyOf(tu.Dst) {
			t := fw.target(tu.DstPort)
			reply := conntrack.Tuple{Src: t.Addr(), Dst: tu.Src, SrcPort: t.Port(), DstPort: tu.SrcPort, Proto: tu.Proto}
			f := conntrack.NewFlow(tu, reply)
			f.Tag = tagForward
			return e.insert(f, now)
		}
	}
	if tu.Proto == header.ProtoTCP && p.TCPFlags&(conntrack.FlagSYN|conntrack.FlagACK) != conntrack.FlagSYN {
		// An expectation admits only a connection's opening SYN.
		return nil, 0, DropNoFlow
	}
	x := e.table.TakeExpectation(tu.Proto, tu.Src, tu.Dst, tu.DstPort, now)
	if x == nil {
		return e.newMapped(tu, now)
	}
	t := x.Target
	reply := conntrack.Tuple{Src: t.Addr(), Dst: tu.Src, SrcPort: t.Port(), DstPort: tu.SrcPort, Proto: tu.Proto}
	f := conntrack.NewFlow(tu, reply)
	f.Tag = tagExpected
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
	if p.Proto != header.ProtoTCP {
		return DropNone
	}
	fl := p.TCPFlags
	if fl&conntrack.FlagRST != 0 {
		return DropNoFlow
	}
	if fl&conntrack.FlagSYN == 0 && e.cfg.NoPickup {
		return DropNoPickup
	}
	if fl&conntrack.FlagSYN != 0 && fl&conntrack.FlagACK != 0 {
		return DropNoFlow // a SYN+ACK never opens a flow
	}
	return DropNone
}

// insert adds f to the table, attaching the FTP gateway to control flows.
func (e *Engine) insert(f *conntrack.Flow, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	o, r := f.Tuples[conntrack.Original], f.Tuples[conntrack.Reply]
	if o.Proto == header.ProtoTCP && f.Master == nil && (e.isFTP(o.DstPort) || e.isFTP(r.SrcPort)) {
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

func isICMP(proto uint8) bool {
	return proto == header.ProtoICMPv4 || proto == header.ProtoICMPv6
}

// flowRemoved releases what a flow held.
func (e *Engine) flowRemoved(f *conntrack.Flow) {
	if f.Tag >= tag64 {
		e.release64(f)
		return
	}
	o, r := f.Tuples[conntrack.Original], f.Tuples[conntrack.Reply]
	switch f.Tag {
	case tagSNAT:
		in := endpoint{addr: o.Src, port: o.SrcPort, proto: o.Proto}
		e.ports.dropPeer(in, o.Dst)
		e.ports.release(in)
	case tagExpected, tagMapped:
		e.ports.release(endpoint{addr: r.Src, port: r.SrcPort, proto: r.Proto})
	case tagHairpin:
		e.ports.release(endpoint{addr: o.Src, port: o.SrcPort, proto: o.Proto})
	case tagHairpinBound:
		e.ports.release(endpoint{addr: o.Src, port: o.SrcPort, proto: o.Proto})
		e.ports.release(endpoint{addr: r.Src, port: r.SrcPort, proto: r.Proto})
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
