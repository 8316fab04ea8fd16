package conntrack

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/natalg/natalg/nat/ipproto"
)

// Flow is one tracked connection. Tuples[Original] is the tuple of packets in
// the direction that created the flow, as they arrive at the NAT (before
// translation); Tuples[Reply] is the tuple of packets coming back, as they
// arrive at the NAT. A NAT translates a packet of direction d so that it
// leaves looking like Tuples[d.Other()].Reverse().
//
// Tuples, Master and Created are immutable once the flow is inserted. State
// and expiry are atomic; Ext is guarded by the flow's lock.
type Flow struct {
	// expires and state come first, on the cache line a lookup of the
	// original tuple reads anyway.
	expires atomic.Int64 // Unix nanoseconds
	// state packs the TCP state (bits 0-7), the FINs seen (bits 8-15), the
	// removed mark and the lock bit, so that a flow fits a 160-byte size
	// class (see bench/README.md: memory per flow).
	state atomic.Uint32
	// Tag is the creator's own mark, opaque to the table (the NAT records
	// how the flow was made, to release what it holds when it goes).
	Tag uint8

	Tuples [2]Tuple
	// Master is the flow whose gateway announced this one (FTP control for
	// an FTP data connection), or nil.
	Master *Flow
	// Created is when the flow was inserted, in Unix nanoseconds.
	Created int64
	// Ext is per-flow state of a gateway (for example the FTP ALG and its
	// sequence ledgers), nil on plain flows. Access it with the flow locked.
	Ext any
}

const (
	stateMask = 0xffff
	deadBit   = 1 << 16
	lockedBit = 1 << 17
	// storedBit: the flow's facts (public port and kind) are in the
	// kernel's conntrack entry of the connection (natalg run's crash-only
	// store, set with an NFQUEUE verdict).
	storedBit = 1 << 18
	// storeTries counts failed attempts to store the facts (bits 19-20).
	storeTryShift = 19
	storeTryMask  = 3 << storeTryShift
	spinBefore    = 64 // lock attempts before yielding the processor
)

// NewFlow returns a flow for a packet with tuple orig that the NAT will
// translate so that replies arrive with tuple reply.
func NewFlow(orig, reply Tuple) *Flow {
	return &Flow{Tuples: [2]Tuple{orig, reply}}
}

// Lock locks the flow's mutable gateway state. The lock is a bit of the
// flow's state word: it is held only while a gateway looks at one segment,
// so a waiter spins briefly, then yields.
func (f *Flow) Lock() {
	for i := 0; ; i++ {
		old := f.state.Load()
		if old&lockedBit == 0 && f.state.CompareAndSwap(old, old|lockedBit) {
			return
		}
		if i >= spinBefore {
			runtime.Gosched()
		}
	}
}

// Unlock unlocks the flow.
func (f *Flow) Unlock() {
	if f.state.And(^uint32(lockedBit))&lockedBit == 0 {
		panic("conntrack: unlock of unlocked flow")
	}
}

// Proto returns the flow's IP protocol.
func (f *Flow) Proto() ipproto.Proto { return f.Tuples[Original].Proto }

// State returns the flow's TCP state (TCPNone for other protocols).
func (f *Flow) State() TCPState { return TCPState(f.state.Load() & 0xff) }

// Expires returns when the flow times out, in Unix nanoseconds.
func (f *Flow) Expires() int64 { return f.expires.Load() }

// Expired reports whether the flow has timed out at now or been removed.
func (f *Flow) Expired(now int64) bool { return f.expires.Load() <= now || f.Dead() }

// Dead reports whether the flow has been removed from its table.
func (f *Flow) Dead() bool { return f.state.Load()&deadBit != 0 }

// Stored reports whether the flow's facts were stored in the kernel's
// conntrack entry (see MarkStored).
func (f *Flow) Stored() bool { return f.state.Load()&storedBit != 0 }

// MarkStored records that the flow's facts are in the kernel's conntrack
// entry, so that they are not sent again with every packet.
func (f *Flow) MarkStored() { f.state.Or(storedBit) }

// StoreFailed counts a failed attempt to store the flow's facts and
// reports whether that was the last one allowed (three): the caller then
// gives up on this flow (MarkStored), rather than paying a failed store on
// every packet of a flow the kernel does not track.
func (f *Flow) StoreFailed() bool {
	for {
		old := f.state.Load()
		n := (old&storeTryMask)>>storeTryShift + 1
		if n >= 3 {
			return true
		}
		if f.state.CompareAndSwap(old, old&^storeTryMask|n<<storeTryShift) {
			return false
		}
	}
}

// kill marks the flow removed and reports whether it was live.
func (f *Flow) kill() bool { return f.state.Or(deadBit)&deadBit == 0 }

// Touch records a packet in direction dir with TCP flags (ignored for other
// protocols) at now, advancing the TCP state machine and extending the flow's
// timeout. The common case (an established TCP flow, no SYN, FIN or RST)
// takes no lock.
//
// A flow with a master (an FTP data connection) also keeps its master alive
// at least as long as itself (to within refreshGrain): RFC 6384 §12,
// "Wherever possible, control channels SHOULD NOT time out while there is
// an active data channel", applied to NAT44 flows as to NAT64 ones. A long
// transfer over an idle control connection thus never loses the control
// connection (and its gateway state) under it.
func (f *Flow) Touch(dir Dir, flags ipproto.TCPFlags, now int64, to *Timeouts) {
	proto := f.Proto()
	if proto != ipproto.TCP {
		f.extend(now, to.timeout(proto, TCPNone))
	} else {
		for {
			old := f.state.Load()
			s, fin := TCPState(old&0xff), uint8(old>>8)
			ns, nfin := nextTCPState(s, dir, flags, fin)
			nv := old&^stateMask | uint32(ns) | uint32(nfin)<<8
			if nv == old || f.state.CompareAndSwap(old, nv) {
				f.extend(now, to.timeout(proto, ns))
				break
			}
		}
	}
	if m := f.Master; m != nil && !m.Expired(now) {
		// A master that has already timed out is not brought back, nor one
		// closed in both directions or reset: that control connection is
		// over, it does not time out under an active transfer.
		if s := m.State(); s != TCPClosing && s != TCPClosed {
			m.holdUntil(f.expires.Load())
		}
	}
}

// holdUntil moves the flow's deadline to dl when that is later by at least
// refreshGrain; it never brings it forward.
func (f *Flow) holdUntil(dl int64) {
	for {
		old := f.expires.Load()
		if dl-old < refreshGrain || f.expires.CompareAndSwap(old, dl) {
			return
		}
	}
}

// refreshGrain is how far a deadline must move forward before a packet
// stores it: a flow may time out up to this much before its idle timeout
// (hours or minutes) has passed since its last packet. The kernel's
// conntrack likewise skips a refresh that changes nothing at its own
// (jiffy) granularity. Established packets then only read the Flow, and its
// cache lines stay clean: in a large table a dirty line costs a write-back
// when it is evicted, and workers on one flow do not bounce it.
const refreshGrain = int64(time.Second)

// extend sets the deadline to now+d. The timeout of the current state always
// wins, so a move from established to closing shortens it; a deadline
// later by less than refreshGrain is not stored.
func (f *Flow) extend(now int64, d time.Duration) {
	dl := now + int64(d)
	if old := f.expires.Load(); dl < old || dl-old >= refreshGrain {
		f.expires.Store(dl)
	}
}

// SetTimeout sets the flow to expire d after now.
func (f *Flow) SetTimeout(now int64, d time.Duration) { f.expires.Store(now + int64(d)) }
