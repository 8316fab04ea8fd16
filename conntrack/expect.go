package conntrack

import (
	"errors"
	"net/netip"
	"slices"

	"github.com/natalg/natalg/nat/ipproto"
)

// Errors returned by Table.Expect.
var (
	// ErrExpectFull means the table holds its maximum of pending expectations.
	ErrExpectFull = errors.New("conntrack: expectation table full")
	// ErrMasterGone means the announcing flow has already been removed.
	ErrMasterGone = errors.New("conntrack: master flow removed")
)

// Expectation is a connection a gateway has announced and the NAT must let in:
// a packet of protocol Proto from the peer Src (exact; any source port, as the
// kernel's FTP helper wildcards it) to Dst:DstPort, as it arrives at the NAT.
// It is one-shot: the first matching connection takes it.
type Expectation struct {
	Proto   ipproto.Proto
	Src     netip.Addr
	Dst     netip.Addr
	DstPort uint16
	// Target is where the connection is translated to (the announcing inside
	// endpoint).
	Target netip.AddrPort
	// Master is the flow whose gateway announced the connection.
	Master *Flow
	// Expires is when the expectation lapses, in Unix nanoseconds.
	Expires int64
	// Created is when it was installed, in Unix nanoseconds.
	Created int64
}

type expKey struct {
	src, dst netip.Addr
	dport    uint16
	proto    ipproto.Proto
}

func (e *Expectation) key() expKey {
	return expKey{src: e.Src, dst: e.Dst, dport: e.DstPort, proto: e.Proto}
}

// Expect installs e at now for its master. An expectation with the same key
// is replaced. When the master already has MaxExpectPerMaster pending, its
// oldest is evicted; when the whole table is at MaxExpectations, ErrExpectFull
// is returned. A master that has already been removed gets no expectation.
func (t *Table) Expect(e *Expectation, now int64) error {
	var dropped [2]*Expectation
	nd := 0
	t.expMu.Lock()
	if e.Master != nil && e.Master.Dead() {
		t.expMu.Unlock()
		return ErrMasterGone
	}
	if old := t.expects[e.key()]; old != nil {
		t.unlinkLocked(old)
		dropped[nd] = old
		nd++
	}
	if len(t.expects) >= t.cfg.MaxExpectations {
		t.expMu.Unlock()
		t.Stats.ExpectationsFull.Add(1)
		t.notifyExpectations(dropped[:nd])
		return ErrExpectFull
	}
	if m := e.Master; m != nil && len(t.byMaster[m]) >= t.cfg.MaxExpectPerMaster {
		oldest := t.byMaster[m][0]
		t.unlinkLocked(oldest)
		dropped[nd] = oldest
		nd++
		t.Stats.ExpectationsEvicted.Add(1)
	}
	e.Created = now
	e.Expires = now + int64(t.cfg.Timeouts.Expectation)
	t.expects[e.key()] = e
	if e.Master != nil {
		t.byMaster[e.Master] = append(t.byMaster[e.Master], e)
	}
	t.expMu.Unlock()
	t.Stats.ExpectationsCreated.Add(1)
	t.notifyExpectations(dropped[:nd])
	return nil
}

// unlinkLocked removes e from the index and its master's list.
func (t *Table) unlinkLocked(e *Expectation) {
	if t.expects[e.key()] == e {
		delete(t.expects, e.key())
	}
	if m := e.Master; m != nil {
		es := t.byMaster[m]
		if i := slices.Index(es, e); i >= 0 {
			es = slices.Delete(es, i, i+1)
		}
		if len(es) == 0 {
			delete(t.byMaster, m)
		} else {
			t.byMaster[m] = es
		}
	}
}

func (t *Table) notifyExpectations(es []*Expectation) {
	if t.cfg.ExpectationRemoved == nil {
		return
	}
	for _, e := range es {
		t.cfg.ExpectationRemoved(e)
	}
}

// TakeExpectation returns and removes the live expectation for a new
// connection of proto from src to dst:dport at now, or nil.
func (t *Table) TakeExpectation(proto ipproto.Proto, src, dst netip.Addr, dport uint16, now int64) *Expectation {
	k := expKey{src: src, dst: dst, dport: dport, proto: proto}
	t.expMu.Lock()
	e := t.expects[k]
	if e == nil || e.Expires <= now {
		t.expMu.Unlock()
		return nil
	}
	t.unlinkLocked(e)
	t.expMu.Unlock()
	t.Stats.ExpectationsUsed.Add(1)
	return e
}

// removeExpectationsOf drops the pending expectations of a removed master.
func (t *Table) removeExpectationsOf(f *Flow) {
	t.expMu.Lock()
	es := t.byMaster[f]
	delete(t.byMaster, f)
	for _, e := range es {
		if t.expects[e.key()] == e {
			delete(t.expects, e.key())
		}
	}
	t.expMu.Unlock()
	t.notifyExpectations(es)
}

// sweepExpectations drops expectations that lapsed at now.
func (t *Table) sweepExpectations(now int64) {
	var lapsed []*Expectation
	t.expMu.Lock()
	for _, e := range t.expects {
		if e.Expires <= now {
			lapsed = append(lapsed, e)
		}
	}
	for _, e := range lapsed {
		t.unlinkLocked(e)
	}
	t.expMu.Unlock()
	t.Stats.ExpectationsExpired.Add(uint64(len(lapsed)))
	t.notifyExpectations(lapsed)
}

// ExpectationCount returns the number of pending expectations.
func (t *Table) ExpectationCount() int {
	t.expMu.Lock()
	defer t.expMu.Unlock()
	return len(t.expects)
}

// RangeExpectations calls fn for a snapshot of the pending expectations.
func (t *Table) RangeExpectations(fn func(*Expectation)) {
	t.expMu.Lock()
	snap := make([]*Expectation, 0, len(t.expects))
	for _, e := range t.expects {
		snap = append(snap, e)
	}
	t.expMu.Unlock()
	for _, e := range snap {
		fn(e)
	}
}
