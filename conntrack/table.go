package conntrack

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Errors returned by Table.Insert.
var (
	// ErrFull means the table holds its configured maximum of flows.
	ErrFull = errors.New("conntrack: table full")
	// ErrClash means the reply tuple of a new flow is already used by another
	// live flow (the NAT chose a translation that is taken).
	ErrClash = errors.New("conntrack: reply tuple in use")
)

const shardBits = 6
const nShards = 1 << shardBits

// Config sets a table's limits and callbacks.
type Config struct {
	// MaxFlows bounds the number of flows; further new flows get ErrFull
	// while existing flows are unaffected. 0 means DefaultMaxFlows.
	MaxFlows int
	// MaxExpectations bounds the number of pending expectations in the whole
	// table. 0 means DefaultMaxExpectations.
	MaxExpectations int
	// MaxExpectPerMaster bounds the pending expectations of one master
	// flow; a new one evicts the oldest (the kernel's max_expected). 0 means 1.
	MaxExpectPerMaster int
	// Timeouts are the idle timeouts; the zero value means DefaultTimeouts.
	Timeouts Timeouts
	// FlowRemoved, if set, is called once for each flow after it leaves the
	// table (expired or removed), without table locks held.
	FlowRemoved func(*Flow)
	// ExpectationRemoved, if set, is called once for each expectation that
	// leaves the table unused (expired, evicted, or removed with its master).
	ExpectationRemoved func(*Expectation)
}

// Defaults for Config.
const (
	DefaultMaxFlows        = 1 << 20
	DefaultMaxExpectations = 4096
)

type shard struct {
	mu  sync.RWMutex
	idx index
	_   [16]byte // keep shards on separate cache lines
}

// Table is the flow table: every live flow is indexed by both its tuples, in
// 64 shards of compact open-addressing tables (see index). It is safe for
// concurrent use by several packet workers.
type Table struct {
	cfg    Config
	seed   [6]uint64
	shards [nShards]shard
	count  atomic.Int64

	expMu    sync.Mutex
	expects  map[expKey]*Expectation
	byMaster map[*Flow][]*Expectation // pending expectations of each master

	sweepMu sync.Mutex
	stale   []*Flow // scratch for Sweep, guarded by sweepMu

	Stats Stats
}

// Stats are cumulative counters, updated atomically.
type Stats struct {
	FlowsCreated        atomic.Uint64
	FlowsExpired        atomic.Uint64
	FlowsRejectedFull   atomic.Uint64
	ExpectationsCreated atomic.Uint64
	ExpectationsUsed    atomic.Uint64
	ExpectationsExpired atomic.Uint64
	ExpectationsEvicted atomic.Uint64
	ExpectationsFull    atomic.Uint64
}

// NewTable returns an empty table.
func NewTable(cfg Config) *Table {
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.MaxExpectations <= 0 {
		cfg.MaxExpectations = DefaultMaxExpectations
	}
	if cfg.MaxExpectPerMaster <= 0 {
		cfg.MaxExpectPerMaster = 1
	}
	if cfg.Timeouts == (Timeouts{}) {
		cfg.Timeouts = DefaultTimeouts
	}
	t := &Table{cfg: cfg, expects: make(map[expKey]*Expectation), byMaster: make(map[*Flow][]*Expectation)}
	for i := range t.seed {
		t.seed[i] = rand.Uint64()
	}
	return t
}

// Timeouts returns the table's timeouts.
func (t *Table) Timeouts() *Timeouts { return &t.cfg.Timeouts }

// Len returns the number of live flows.
func (t *Table) Len() int { return int(t.count.Load()) }

// Max returns the configured maximum number of flows.
func (t *Table) Max() int { return t.cfg.MaxFlows }

func (t *Table) shard(h uint64) *shard { return &t.shards[h>>(64-shardBits)] }

// Lookup returns the live flow that tuple tu belongs to and the direction of
// a packet with that tuple, or nil. A flow past its timeout at now is treated
// as absent.
func (t *Table) Lookup(tu Tuple, now int64) (*Flow, Dir) {
	return t.LookupHash(&tu, hashTuple(&tu, &t.seed), now)
}

// LookupHash is Lookup of *tu, whose Hash h the caller has already
// computed (for a prefetch). h must be t.Hash(tu). It takes a pointer: a
// Tuple passed by value is copied in 16-byte moves, which stall when the
// caller has just written its fields.
func (t *Table) LookupHash(tu *Tuple, h uint64, now int64) (*Flow, Dir) {
	f, d := t.shard(h).idx.get(tu, h)
	if f == nil || f.Expired(now) {
		return nil, Original
	}
	return f, d
}

// lock2 locks the shards of hashes a and b in index order and returns them.
func (t *Table) lock2(a, b uint64) (*shard, *shard) {
	i, j := a>>(64-shardBits), b>>(64-shardBits)
	if i > j {
		i, j = j, i
	}
	si, sj := &t.shards[i], &t.shards[j]
	si.mu.Lock()
	if j != i {
		sj.mu.Lock()
	}
	return si, sj
}

func unlock2(si, sj *shard) {
	if sj != si {
		sj.mu.Unlock()
	}
	si.mu.Unlock()
}

// Insert adds f, created at now, under both its tuples. If a live flow
// already holds f's original tuple (another worker created it first), that
// flow and the direction of f's original tuple in it are returned instead and
// f is not inserted. ErrClash is returned when f's reply tuple belongs to a
// different live flow, ErrFull when the table is full.
func (t *Table) Insert(f *Flow, now int64) (*Flow, Dir, error) {
	o, r := &f.Tuples[Original], &f.Tuples[Reply]
	ho, hr := hashTuple(o, &t.seed), hashTuple(r, &t.seed)
	so, sr := t.shard(ho), t.shard(hr)
	for attempt := 0; ; attempt++ {
		si, sj := t.lock2(ho, hr)
		var stale *Flow
		if g, d := so.idx.get(o, ho); g != nil {
			if !g.Expired(now) {
				unlock2(si, sj)
				return g, d, nil
			}
			stale = g
		}
		if g, _ := sr.idx.get(r, hr); g != nil && stale == nil {
			if !g.Expired(now) {
				unlock2(si, sj)
				return nil, Original, ErrClash
			}
			stale = g
		}
		if stale != nil {
			// Unlink the timed-out flow in the way (it may live in other
			// shards too), then try again.
			unlock2(si, sj)
			t.Remove(stale)
			if attempt < 4 {
				continue
			}
			return nil, Original, ErrClash
		}
		if t.count.Load() >= int64(t.cfg.MaxFlows) {
			unlock2(si, sj)
			t.Stats.FlowsRejectedFull.Add(1)
			return nil, Original, ErrFull
		}
		f.Created = now
		if f.expires.Load() == 0 {
			f.extend(now, t.cfg.Timeouts.timeout(f.Proto(), TCPNone))
		}
		so.idx.put(f, Original, ho, &t.seed)
		sr.idx.put(f, Reply, hr, &t.seed)
		t.count.Add(1)
		unlock2(si, sj)
		t.Stats.FlowsCreated.Add(1)
		return f, Original, nil
	}
}

// Remove unlinks f from the table, drops its pending expectations and calls
// the FlowRemoved callback. Removing a flow twice does nothing.
func (t *Table) Remove(f *Flow) {
	if !f.kill() {
		return
	}
	ho, hr := hashTuple(&f.Tuples[Original], &t.seed), hashTuple(&f.Tuples[Reply], &t.seed)
	si, sj := t.lock2(ho, hr)
	t.shard(ho).idx.del(f, Original, ho)
	t.shard(hr).idx.del(f, Reply, hr)
	unlock2(si, sj)
	t.count.Add(-1)
	t.removeExpectationsOf(f)
	if t.cfg.FlowRemoved != nil {
		t.cfg.FlowRemoved(f)
	}
}

// Sweep removes every flow and expectation timed out at now. It locks one
// shard at a time, only to collect, so packet workers on other shards are
// never held up and workers on the same shard wait at most one shard scan.
// It returns the number of flows removed.
func (t *Table) Sweep(now int64) int {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	removed := 0
	for i := range t.shards {
		sh := &t.shards[i]
		t.stale = t.stale[:0]
		sh.mu.RLock()
		// Collect each flow once: from the slot of its original tuple.
		sh.idx.each(func(f *Flow) bool {
			if f.Expired(now) {
				t.stale = append(t.stale, f)
			}
			return true
		})
		sh.mu.RUnlock()
		for _, f := range t.stale {
			if !f.Dead() {
				t.Remove(f)
				t.Stats.FlowsExpired.Add(1)
				removed++
			}
		}
	}
	clear(t.stale)
	t.sweepExpectations(now)
	return removed
}

// Range calls fn for each live flow until fn returns false. The flow must not
// be removed from within fn.
func (t *Table) Range(fn func(*Flow) bool) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		ok := sh.idx.each(func(f *Flow) bool { return f.Dead() || fn(f) })
		sh.mu.RUnlock()
		if !ok {
			return
		}
	}
}
