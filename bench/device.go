package bench

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/natalg/natalg/nat"
)

// Device is the in-memory datapath: a nat.Device that hands out the packets
// of a Trace (looping over it when asked for more packets than it holds) and
// counts the verdicts. No kernel is in the path: what a run measures is the
// engine plus a copy of each packet into the worker's buffer, as NFQUEUE
// would do.
//
// A Device is used by one Serve loop at a time.
type Device struct {
	tr    *Trace
	next  int   // packets handed out
	limit int   // packets to hand out in all
	clock int64 // arrival time of the next packet, Unix nanoseconds
	step  int64 // nanoseconds between packets

	// Deadline, if not zero, closes the device at the first batch read
	// after it, bounding a run in time.
	Deadline time.Time
	// OnStart, if set, is called at the first ReadBatch (the worker's
	// buffers are allocated by then): the harness lines workers up there.
	OnStart func()
	// Check, if set, sees every packet after processing (tests).
	Check func(p *nat.Packet)

	// stop, if set, is shared by the devices of one timed run: the first
	// of them to close sets it, and the others close at their next batch.
	stop *stopFlag

	started bool
	// Counters of the packets written back.
	Packets  uint64
	Accepted uint64
	Dropped  uint64
	Drops    [32]uint64 // by nat.DropReason
}

// NewDevice returns a device that hands out limit packets of tr (all of them
// once if limit <= 0), stamped from start on, step apart.
func NewDevice(tr *Trace, limit int, start time.Time, step time.Duration) *Device {
	if limit <= 0 {
		limit = tr.Len()
	}
	if tr.Len() == 0 {
		limit = 0
	}
	return &Device{tr: tr, limit: limit, clock: start.UnixNano(), step: int64(step)}
}

// Now returns the arrival time of the next packet.
func (d *Device) Now() time.Time { return time.Unix(0, d.clock) }

// ReadBatch implements nat.Device. It never blocks: once the packets are
// handed out (or the deadline or ctx is passed) it returns nat.ErrClosed.
func (d *Device) ReadBatch(ctx context.Context, ps []nat.Packet) (int, error) {
	if !d.started {
		d.started = true
		if d.OnStart != nil {
			d.OnStart()
		}
	}
	if d.next >= d.limit || ctx.Err() != nil || (!d.Deadline.IsZero() && time.Now().After(d.Deadline)) ||
		(d.stop != nil && d.stop.Load()) {
		if d.stop != nil {
			d.stop.Store(true)
		}
		return 0, nat.ErrClosed
	}
	n := min(len(ps), d.limit-d.next)
	tl := d.tr.Len()
	i := d.next % tl
	for k := range n {
		p := &ps[k]
		p.N = d.tr.put(i, p.Buf[:cap(p.Buf)])
		p.Time = time.Unix(0, d.clock)
		p.ID = uint64(d.next + k)
		d.clock += d.step
		if i++; i == tl {
			i = 0
		}
	}
	d.next += n
	return n, nil
}

// WriteBatch implements nat.Device: it counts the verdicts.
func (d *Device) WriteBatch(ps []nat.Packet) error {
	for k := range ps {
		p := &ps[k]
		if p.Verdict == nat.Accept {
			d.Accepted++
		} else {
			d.Dropped++
			d.Drops[p.Reason&31]++
		}
		if d.Check != nil {
			d.Check(p)
		}
	}
	d.Packets += uint64(len(ps))
	return nil
}

// stopFlag is a flag on a cache line of its own: every worker reads it once
// per batch, and nothing else written nearby may take the line from them.
type stopFlag struct {
	_ [64]byte
	atomic.Bool
	_ [60]byte
}

// DropSummary names the drop reasons counted, for reports and tests.
func (d *Device) DropSummary() map[string]uint64 {
	m := map[string]uint64{}
	for r, n := range d.Drops {
		if n != 0 {
			m[nat.DropReason(r).String()] = n
		}
	}
	return m
}
