package nat

// Crash-only state: the facts natalg needs to go on translating a flow live
// in the kernel's conntrack entry of the connection, which outlives the
// process. ProcessCT says what to store when a packet makes new facts true;
// the front end (natalg run's NFQUEUE loop) stores them in the entry
// (ctnetlink) before it releases the packet, then calls CTFacts.Done; a
// restarted natalg reads them back with a conntrack dump (Adopt) before it
// translates any packet.
//
// The connection mark holds the flow's kind and public port, under a
// configurable mask (CTStore.MarkMask): value = (kind<<16 | port) << shift,
// shift the mask's lowest set bit; kind 0 means "not natalg's".
//
// The 128 connection label bits of an FTP control connection hold what its
// gateway needs to continue: per direction (bytes 0-7 the original
// direction, 8-15 the reply direction), big-endian
//
//	uint32 position of the newest correction point (seqdelta.Point.Pos)
//	uint32 packed: bits 31-14 the offset from that point on (signed, 18
//	       bits), bits 13-3 the offset's change at that point (signed, 11
//	       bits: the offset before it is their difference), bit 2 "the
//	       ledger did not fit" (never stored: the flow is then not adopted),
//	       bit 1 "a point is present", bit 0 "this direction is TLS"
//
// Older correction points (retransmissions of bytes before the newest
// rewrite), the rewrite history and a half-read line are not stored.

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"time"

	"github.com/natalg/natalg/alg"
	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
	"github.com/natalg/natalg/seqdelta"
)

// LabelBytes is the size of the kernel's connection labels (128 bits).
const LabelBytes = 16

// DefaultCTMarkMask is the connection mark bits natalg owns by default:
// bits 8-27, clear of the low byte operators often use for policy routing
// and of kerneldp's data-connection bit 0x10000000.
const DefaultCTMarkMask uint32 = 0x0fffff00

// CTStore says where natalg keeps its facts in conntrack entries.
type CTStore struct {
	// MarkMask is the connection mark bits natalg owns: one contiguous run
	// of at least 20 bits (4 for the kind, 16 for the port). Zero: off.
	MarkMask uint32
	// Labels stores FTP control connections' sequence offsets in their
	// connection labels (all 128 bits of those connections only).
	Labels bool
}

// Check reports whether s can be used.
func (s CTStore) Check() error {
	if s.MarkMask == 0 {
		// labels are read back only from entries that carry the mark
		if s.Labels {
			return errors.New("connection labels need a connection mark mask too")
		}
		return nil
	}
	shift := bits.TrailingZeros32(s.MarkMask)
	run := s.MarkMask >> shift
	if run&(run+1) != 0 {
		return fmt.Errorf("connection mark mask %#x is not one run of bits", s.MarkMask)
	}
	if bits.OnesCount32(run) < 20 {
		return fmt.Errorf("connection mark mask %#x has %d bits, natalg needs 20 (kind and port)", s.MarkMask, bits.OnesCount32(run))
	}
	return nil
}

// SetCTStore sets where ProcessCT stores flows' facts. Call it before any
// packet is processed.
func (e *Engine) SetCTStore(s CTStore) error {
	if err := s.Check(); err != nil {
		return err
	}
	e.ct = s
	return nil
}

// CTFacts is what ProcessCT asks the front end to store in the kernel's
// conntrack entry of the packet's connection before the packet leaves.
type CTFacts struct {
	// Tuple is the entry's original tuple: the inside view (the kernel's
	// conntrack sees natalg's flows untranslated).
	Tuple conntrack.Tuple
	// SetMark: store Mark under Mask (the bits outside it are the
	// operator's and stay).
	SetMark    bool
	Mark, Mask uint32
	// SetLabels: store Labels (all 128 bits).
	SetLabels bool
	Labels    [LabelBytes]byte

	flow *conntrack.Flow
	ftp  *ftpFlow
}

// Pending reports whether there is anything to store.
func (c *CTFacts) Pending() bool { return c.SetMark || c.SetLabels }

// Done records that the facts are stored, so that they are not asked for
// again until they change. Call it once the kernel took them; without it
// the next packet of the flow asks again.
func (c *CTFacts) Done() {
	if c.SetMark {
		c.flow.MarkStored()
	}
	if c.SetLabels {
		c.flow.Lock()
		c.ftp.stored = c.Labels
		c.flow.Unlock()
	}
}

// Failed records that the facts could not be stored. After three failures
// for a flow natalg gives up on it (Done), so that a flow the kernel does
// not track (a NOTRACK rule, an entry evicted) does not cost a failed store
// with every packet: a crash then loses that flow.
func (c *CTFacts) Failed() {
	if c.flow.StoreFailed() {
		c.Done()
	}
}

// ProcessCT is Process that also fills facts with what must be stored in
// the kernel's conntrack entry of the packet's connection: the flow's kind
// and public port until they are stored, an FTP control connection's labels
// whenever they change. The packet that creates a flow asks nothing (its
// conntrack entry is not in the kernel's table yet). It allocates nothing.
func (e *Engine) ProcessCT(pkt []byte, now time.Time, facts *CTFacts) (Verdict, []byte) {
	*facts = CTFacts{}
	var c counts
	v, out, _ := e.process(pkt, now.UnixNano(), nil, &c, nil, facts)
	c.flush(&e.Stats)
	if v != Accept {
		facts.SetMark, facts.SetLabels = false, false
	}
	return v, out
}

// factsOf returns where process puts what p's front end must store (nil
// when the engine stores nothing), cleared.
func (e *Engine) factsOf(p *Packet) *CTFacts {
	if e.ct.MarkMask == 0 {
		return nil
	}
	p.CT = CTFacts{}
	return &p.CT
}

// markValue returns the mark of f, 0 when f is of a kind natalg does not
// store (hairpinned, NAT64).
func (e *Engine) markValue(f *conntrack.Flow) uint32 {
	switch kindOf(f) {
	case kindSNAT, kindForward, kindExpected, kindMapped:
	default:
		return 0
	}
	if p := f.Proto(); p != ipproto.TCP && p != ipproto.UDP {
		return 0 // ICMP echo flows: the kernel's tuple has no ports, and they are short
	}
	port := f.Tuples[conntrack.Original].DstPort
	if kindOf(f) == kindSNAT {
		port = f.Tuples[conntrack.Reply].DstPort
	}
	return (uint32(f.Tag)<<16 | uint32(port)) << bits.TrailingZeros32(e.ct.MarkMask)
}

// kernelTuple returns the original tuple of f's entry in the kernel's
// conntrack: the inside view.
func (e *Engine) kernelTuple(f *conntrack.Flow) conntrack.Tuple {
	o, r := &f.Tuples[conntrack.Original], &f.Tuples[conntrack.Reply]
	if kindOf(f) == kindSNAT {
		return *o
	}
	return conntrack.Tuple{Src: o.Src, Dst: r.Src, SrcPort: o.SrcPort, DstPort: r.SrcPort, Proto: o.Proto}
}

// ctFacts fills facts for a packet of f (x: its FTP gateway, or nil).
// f is locked when x is not nil.
func (e *Engine) ctFacts(f *conntrack.Flow, x *ftpFlow, facts *CTFacts) {
	if facts == nil || e.ct.MarkMask == 0 {
		return
	}
	if !f.Stored() {
		if m := e.markValue(f); m != 0 {
			facts.SetMark, facts.Mark, facts.Mask = true, m, e.ct.MarkMask
		}
	}
	if x != nil && e.ct.Labels {
		if l, ok := encodeLabels(x); ok && l != x.stored {
			facts.SetLabels, facts.Labels = true, l
		}
	}
	if facts.Pending() {
		facts.Tuple, facts.flow, facts.ftp = e.kernelTuple(f), f, x
	}
}

const (
	labelTLS      = 1 << 0
	labelPoint    = 1 << 1
	labelOverflow = 1 << 2
)

// encodeLabels packs x's ledgers and TLS state; ok is false when a ledger
// does not fit (the old labels are then left as they are: a restart loses
// this connection).
func encodeLabels(x *ftpFlow) (l [LabelBytes]byte, ok bool) {
	for d := range x.ledgers {
		p, before, has := x.ledgers[d].Newest()
		after := before
		var fl uint32
		if has {
			after = p.Offset
			fl |= labelPoint
		}
		delta := after - before
		if after < -1<<17 || after >= 1<<17 || delta < -1<<10 || delta >= 1<<10 {
			return l, false
		}
		if x.ctl.TLSDir(conntrack.Dir(d)) {
			fl |= labelTLS
		}
		packed := uint32(after)<<14 | uint32(delta)&0x7ff<<3 | fl
		b := l[d*8:]
		b[0], b[1], b[2], b[3] = byte(p.Pos>>24), byte(p.Pos>>16), byte(p.Pos>>8), byte(p.Pos)
		b[4], b[5], b[6], b[7] = byte(packed>>24), byte(packed>>16), byte(packed>>8), byte(packed)
	}
	return l, true
}

// decodeLabels is encodeLabels' inverse.
func decodeLabels(l []byte) (led [2]seqdelta.State, tls [2]bool, ok bool) {
	if len(l) == 0 {
		return led, tls, true // never stored: no rewrite yet
	}
	if len(l) < LabelBytes {
		return led, tls, false
	}
	for d := range led {
		b := l[d*8:]
		pos := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		packed := uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7])
		if packed&labelOverflow != 0 {
			return led, tls, false
		}
		after := int32(packed) >> 14
		delta := int32(packed<<18) >> 21
		tls[d] = packed&labelTLS != 0
		if packed&labelPoint != 0 {
			led[d] = seqdelta.State{Base: after - delta, Points: []seqdelta.Point{{Start: pos, Pos: pos, Offset: after}}}
		} else {
			led[d] = seqdelta.State{Base: after}
		}
	}
	return led, tls, true
}

// KernelFlow is one of natalg's connections as the kernel's conntrack
// holds it (natalg run reads them with a conntrack dump).
type KernelFlow struct {
	// Tuple is the kernel's original tuple: the inside view, from the
	// inside host for an outbound flow, to it for an inbound one.
	Tuple  conntrack.Tuple
	Mark   uint32
	Labels []byte
	TCP    conntrack.TCPState
	FINs   uint8 // bit 0: FIN seen in the original direction, bit 1: in reply
}

// KernelExpectation is an expectation the kernel holds (split datapath: an
// element of natalg's expectation map).
type KernelExpectation struct {
	Peer    netip.Addr
	Public  netip.AddrPort
	Target  netip.AddrPort
	Expires time.Time
}

// AdoptStats counts what Adopt did.
type AdoptStats struct {
	LoadStats
	NotOurs       int // entries without natalg's mark
	LabelsMissing int // control connections whose labels did not fit: not adopted
}

// Adopt rebuilds the engine's table from the kernel's conntrack entries of
// natalg's connections and the kernel's pending expectations, at start
// before any packet, or when a router becomes master. Flows already in the
// table are kept (counted as clashes). Expectations whose control
// connection is not adopted are skipped (Orphans): the caller withdraws
// them from the kernel.
func (e *Engine) Adopt(flows []KernelFlow, exps []KernelExpectation, now time.Time) AdoptStats {
	var st AdoptStats
	if e.ct.MarkMask == 0 {
		return st
	}
	shift := bits.TrailingZeros32(e.ct.MarkMask)
	dec := &decoded{version: StateVersion, savedAt: now, adopted: true}
	far := now.Add(365 * 24 * time.Hour).UnixNano() // Restore clamps to the configured timeout
	for i := range flows {
		kf := &flows[i]
		v := (kf.Mark & e.ct.MarkMask) >> shift
		tag, port := uint8(v>>16&0xf), uint16(v)
		if tag == 0 {
			st.NotOurs++
			continue
		}
		k := kf.Tuple
		k.Src, k.Dst = k.Src.Unmap(), k.Dst.Unmap()
		var orig, reply conntrack.Tuple
		switch flowKind(tag) {
		case kindSNAT:
			orig = k
			reply = conntrack.Tuple{Src: k.Dst, Dst: e.public[familyOf(k.Src)], SrcPort: k.DstPort, DstPort: port, Proto: k.Proto}
		case kindForward, kindExpected, kindMapped:
			orig = conntrack.Tuple{Src: k.Src, Dst: e.public[familyOf(k.Dst)], SrcPort: k.SrcPort, DstPort: port, Proto: k.Proto}
			reply = conntrack.Tuple{Src: k.Dst, Dst: k.Src, SrcPort: k.DstPort, DstPort: k.SrcPort, Proto: k.Proto}
		default:
			st.Misfit++
			continue
		}
		sf := savedFlow{rec: conntrack.FlowRecord{Tuples: [2]conntrack.Tuple{orig, reply}, Tag: tag, TCP: kf.TCP, FINs: kf.FINs,
			Expires: far, Created: now.UnixNano()}, adopted: true}
		if k.Proto == ipproto.TCP && (e.isFTP(orig.DstPort) || e.isFTP(reply.SrcPort)) && e.ct.Labels {
			states, tls, ok := decodeLabels(kf.Labels)
			var led [2]seqdelta.Ledger
			for d := range led {
				l, err := states[d].Ledger()
				if err != nil {
					ok = false
					break
				}
				led[d] = l
			}
			if !ok {
				st.LabelsMissing++
				continue
			}
			sf.ftp, sf.led, sf.tls = true, led, tls
			copy(sf.stored[:], kf.Labels)
		}
		dec.flows = append(dec.flows, sf)
	}
	for _, kx := range exps {
		master := 0
		for i := range dec.flows {
			sf := &dec.flows[i]
			o, r := &sf.rec.Tuples[conntrack.Original], &sf.rec.Tuples[conntrack.Reply]
			if !sf.ftp {
				continue
			}
			if k := flowKind(sf.rec.Tag); k == kindSNAT && o.Src == kx.Target.Addr() && o.Dst == kx.Peer ||
				k == kindForward && o.Src == kx.Peer && r.Src == kx.Target.Addr() {
				master = i + 1
				break
			}
		}
		if master == 0 {
			st.Orphans++
			continue
		}
		dec.exps = append(dec.exps, savedExp{master: uint32(master), x: conntrack.Expectation{Proto: ipproto.TCP,
			Src: kx.Peer, Dst: kx.Public.Addr(), DstPort: kx.Public.Port(), Target: kx.Target,
			Created: now.UnixNano(), Expires: kx.Expires.UnixNano()}})
	}
	e.restore(dec, now.UnixNano(), &st.LoadStats)
	return st
}

// refreshAdopted brings FTP control flow f, which natalg already has, up to
// the kernel entry's labels in sf when they differ from what this natalg
// last stored there: another router of the pair rewrote announcements on
// the connection meanwhile (it was master while this one was backup), and
// the ledgers kept here are stale. It reports whether f changed.
func (e *Engine) refreshAdopted(f *conntrack.Flow, sf *savedFlow) bool {
	f.Lock()
	defer f.Unlock()
	x, ok := f.Ext.(*ftpFlow)
	if !ok || x.stored == sf.stored {
		return false
	}
	x.ctl = alg.AdoptControl(&e.cfg.FTP, f.Tuples, sf.tls)
	x.ledgers, x.stored = sf.led, sf.stored
	return true
}

// adoptExt returns the gateway of an adopted FTP control flow.
func (e *Engine) adoptExt(f *conntrack.Flow, sf *savedFlow) (any, bool) {
	x := newFTPFlow(e, f)
	x.ctl = alg.AdoptControl(&e.cfg.FTP, f.Tuples, sf.tls)
	x.ledgers = sf.led
	x.stored = sf.stored
	return x, true
}

// CTStore returns where the engine stores flows' facts.
func (e *Engine) CTStore() CTStore { return e.ct }
