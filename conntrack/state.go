package conntrack

import (
	"errors"
	"fmt"

	"github.com/natalg/natalg/nat/ipproto"
)

// Errors returned by Table.Restore and Table.RestoreExpectation.
var (
	// ErrExpired means the saved deadline has already passed.
	ErrExpired = errors.New("conntrack: expired")
	// ErrExists means a tuple or expectation key of the restored entry is
	// already in the table.
	ErrExists = errors.New("conntrack: already in the table")
	// ErrBadRecord means a saved record is inconsistent in itself.
	ErrBadRecord = errors.New("conntrack: inconsistent record")
)

// FlowRecord is what the table owns of a flow, as a saved state file holds
// it: the flow's tuples, its creator's tag, its TCP state with the FINs seen,
// its deadline and its creation time (Unix nanoseconds, absolute, so the
// time spent between saving and loading counts against the timeout). The
// master link and the gateway state (Ext) belong to the creator, which
// saves them by its own means.
type FlowRecord struct {
	Tuples  [2]Tuple
	Tag     uint8
	TCP     TCPState
	FINs    uint8 // bit 0: FIN seen in the original direction, bit 1: in reply
	Expires int64
	Created int64
}

// Record returns f's record.
func (f *Flow) Record() FlowRecord {
	st := f.state.Load()
	return FlowRecord{
		Tuples:  f.Tuples,
		Tag:     f.Tag,
		TCP:     TCPState(st & 0xff),
		FINs:    uint8(st>>8) & 3,
		Expires: f.expires.Load(),
		Created: f.Created,
	}
}

// Check reports whether r is consistent in itself: valid addresses of one
// family per tuple, one protocol (or ICMPv6 on the IPv6 side and ICMP on the
// IPv4 side of a NAT64 flow), two distinct tuples, a known TCP state
// (TCPNone for other protocols) and FIN bits only on TCP.
func (r *FlowRecord) Check() error {
	o, p := &r.Tuples[Original], &r.Tuples[Reply]
	for _, tu := range []*Tuple{o, p} {
		if !tu.Src.IsValid() || !tu.Dst.IsValid() || tu.Src.Is4() != tu.Dst.Is4() ||
			tu.Src.Zone() != "" || tu.Dst.Zone() != "" || tu.Src.Is4In6() || tu.Dst.Is4In6() {
			return fmt.Errorf("%w: bad addresses in %v", ErrBadRecord, *tu)
		}
	}
	if o.Proto != p.Proto && !icmpPair(o, p) && !icmpPair(p, o) {
		return fmt.Errorf("%w: protocols %d and %d", ErrBadRecord, o.Proto, p.Proto)
	}
	if *o == *p {
		return fmt.Errorf("%w: original and reply tuples equal", ErrBadRecord)
	}
	if r.TCP > TCPClosed || r.FINs > 3 || o.Proto != ipproto.TCP && (r.TCP != TCPNone || r.FINs != 0) {
		return fmt.Errorf("%w: TCP state %d, FINs %d for protocol %d", ErrBadRecord, r.TCP, r.FINs, o.Proto)
	}
	return nil
}

// icmpPair reports whether v6 and v4 are the two tuples of an ICMP flow a
// NAT64 translates between the families: ICMPv6 on the IPv6 side, ICMP on
// the IPv4 side.
func icmpPair(v6, v4 *Tuple) bool {
	return v6.Proto == ipproto.ICMPv6 && v6.Src.Is6() && v4.Proto == ipproto.ICMPv4 && v4.Src.Is4()
}

// RestoreFlow returns a flow made from r, not yet in any table. The caller
// sets Master and Ext, then adds it with Table.Restore.
func RestoreFlow(r FlowRecord) *Flow {
	f := &Flow{Tag: r.Tag, Tuples: r.Tuples, Created: r.Created}
	f.state.Store(uint32(r.TCP) | uint32(r.FINs&3)<<8)
	f.expires.Store(r.Expires)
	return f
}

// Restore adds a flow made by RestoreFlow at now, keeping its creation time
// and its deadline (cut to now plus the timeout of its state, when longer):
// unlike Insert, it neither refreshes the timeout nor
// returns another flow holding the same tuple. It fails with ErrExpired when
// the deadline is not after now, ErrBadRecord when the flow is inconsistent
// or its master is not in the table, ErrExists when either tuple is held by
// a live flow, and ErrFull when the table holds its configured maximum.
// Restored flows are not counted in Stats.FlowsCreated.
func (t *Table) Restore(f *Flow, now int64) error {
	r := f.Record()
	if err := r.Check(); err != nil {
		return err
	}
	if f.Expired(now) {
		return ErrExpired
	}
	if lim := now + int64(t.cfg.Timeouts.timeout(r.Tuples[Original].Proto, r.TCP)); r.Expires > lim {
		// Never longer than the current configuration would give it.
		f.expires.Store(lim)
	}
	if f.Master != nil && (f.Master.Dead() || f.Master == f) {
		return fmt.Errorf("%w: master removed", ErrBadRecord)
	}
	o, p := &f.Tuples[Original], &f.Tuples[Reply]
	ho, hr := hashTuple(o, &t.seed), hashTuple(p, &t.seed)
	so, sr := t.shard(ho), t.shard(hr)
	for attempt := 0; ; attempt++ {
		si, sj := t.lock2(ho, hr)
		var stale *Flow
		for _, k := range []struct {
			s  *shard
			tu *Tuple
			h  uint64
		}{{so, o, ho}, {sr, p, hr}} {
			if g, _ := k.s.idx.get(k.tu, k.h); g != nil {
				if !g.Expired(now) {
					unlock2(si, sj)
					return ErrExists
				}
				stale = g
			}
		}
		if stale != nil {
			unlock2(si, sj)
			t.Remove(stale)
			if attempt < 4 {
				continue
			}
			return ErrExists
		}
		if t.count.Load() >= int64(t.cfg.MaxFlows) {
			unlock2(si, sj)
			return ErrFull
		}
		so.idx.put(f, Original, ho, &t.seed)
		sr.idx.put(f, Reply, hr, &t.seed)
		t.count.Add(1)
		unlock2(si, sj)
		return nil
	}
}

// RestoreExpectation adds a saved expectation at now, keeping its creation
// time and deadline (cut to now plus the expectation timeout, when longer). It fails with ErrExpired when the deadline is not after
// now, ErrMasterGone when its master is not in the table, ErrExists when an
// expectation with the same key is pending, ErrExpectFull when the table
// holds its maximum of expectations or the master its maximum. Nothing is
// evicted and no callback is called; restored expectations are not counted
// in Stats.ExpectationsCreated.
func (t *Table) RestoreExpectation(e *Expectation, now int64) error {
	if e.Expires <= now {
		return ErrExpired
	}
	if lim := now + int64(t.cfg.Timeouts.Expectation); e.Expires > lim {
		e.Expires = lim
	}
	t.expMu.Lock()
	defer t.expMu.Unlock()
	if e.Master == nil || e.Master.Dead() {
		return ErrMasterGone
	}
	if t.expects[e.key()] != nil {
		return ErrExists
	}
	if len(t.expects) >= t.cfg.MaxExpectations || len(t.byMaster[e.Master]) >= t.cfg.MaxExpectPerMaster {
		return ErrExpectFull
	}
	t.expects[e.key()] = e
	t.byMaster[e.Master] = append(t.byMaster[e.Master], e)
	return nil
}
