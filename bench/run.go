// Package bench is natalg's kernel-bypass benchmark harness: an in-memory
// datapath (Device, a nat.Device like the NFQUEUE and replay front ends)
// driven by Engine.Serve, a traffic generator building valid packets of
// realistic flows (TCP with handshake, data and teardown; FTP control
// sessions whose PORT and 227 announcements the gateway rewrites, with their
// data connections; UDP; ICMP echo), and the scenarios and measurements of
// "natalg bench". See README.md.
package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"time"

	"github.com/natalg/natalg/nat"
)

// Options select a run.
type Options struct {
	Scenario string
	// Flows is the number of concurrent flows (control sessions for
	// ftp-control, flows opened for setup).
	Flows int
	// Workers is the number of Serve loops sharing the engine, each with
	// its own device over its own share of the flows. GOMAXPROCS is set to
	// it for the run.
	Workers int
	// Size is the IP length of data packets (established, ftp-control).
	Size int
	// Packets is about how many packets the timed phase plays. In a
	// looped scenario each of the workers gets an equal share, and the run
	// stops when the first has played it (see serveAll), so with several
	// workers it may play fewer.
	Packets int
	// MaxTime bounds the timed phase.
	MaxTime time.Duration
	// Batch is the Serve batch size.
	Batch int
	// Seed seeds the generator's shuffles.
	Seed int64
}

// Defaults for Options.
const (
	DefaultSize    = 64
	DefaultPackets = 4_000_000
	DefaultMaxTime = 60 * time.Second
	DefaultBatch   = 64
)

func (o *Options) fill() error {
	if o.Flows <= 0 {
		return errors.New("bench: flows must be positive")
	}
	if o.Flows > 1<<24 {
		return errors.New("bench: at most 16777216 flows")
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Workers > o.Flows {
		return errors.New("bench: more workers than flows")
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.Size < 40 || o.Size > 1500 {
		return errors.New("bench: packet size must be within 40..1500")
	}
	if o.Packets <= 0 {
		o.Packets = DefaultPackets
	}
	if o.MaxTime <= 0 {
		o.MaxTime = DefaultMaxTime
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	return nil
}

// Result is one run's figures. Times are wall-clock; NsPerPacket is per
// worker (elapsed * workers / packets), so with one worker it is the cost
// of a packet on one core.
type Result struct {
	Scenario   string `json:"scenario"`
	Flows      int    `json:"flows"`
	Workers    int    `json:"workers"`
	PacketSize int    `json:"packet_size"`
	Batch      int    `json:"batch"`

	Packets          uint64  `json:"packets"`
	Seconds          float64 `json:"seconds"`
	NsPerPacket      float64 `json:"ns_per_packet"`
	PacketsPerSecond float64 `json:"packets_per_second"`
	AllocsPerPacket  float64 `json:"allocs_per_packet"`
	// BytesPerFlow is the growth of the live heap while the flows were
	// opened, divided by the flows opened.
	BytesPerFlow float64 `json:"bytes_per_flow"`
	FlowsTracked int     `json:"flows_tracked"`
	// DeviceNsPerPacket is the cost of the device alone (handing out and
	// taking back a packet with no engine), included in NsPerPacket.
	DeviceNsPerPacket float64 `json:"device_ns_per_packet"`
	// CPUNsPerPacket is the process's CPU time (user and system, every
	// thread) over the timed phase, per packet. Unlike NsPerPacket it leaves
	// out the time the workers waited for a core, so on a shared machine it
	// is the steadier figure of the engine's cost; on an idle one the two
	// agree (times workers) when every worker had a core.
	CPUNsPerPacket float64 `json:"cpu_ns_per_packet"`
	// LoadAverage is the machine's 1-minute load average (/proc/loadavg)
	// when the run ended, 0 if unknown.
	LoadAverage float64 `json:"load_average"`

	FlowsPerSecond float64 `json:"flows_per_second,omitempty"` // setup: flows opened per second
	// NsPerControlSegment is the whole timed phase per FTP control segment
	// (ftp-control): an upper bound, as it includes the data connections.
	ControlSegments     uint64  `json:"control_segments,omitempty"`
	NsPerControlSegment float64 `json:"ns_per_control_segment,omitempty"`
	Rewrites            uint64  `json:"rewrites"`
	DataFlows           uint64  `json:"data_flows"`

	// WorkerPackets are the packets each worker played. In a looped
	// scenario (established) the run stops when the first worker has
	// played its share, so they differ when the workers ran at different
	// speeds.
	WorkerPackets []uint64 `json:"worker_packets"`

	Accepted uint64            `json:"accepted"`
	Dropped  uint64            `json:"dropped"`
	Drops    map[string]uint64 `json:"drops,omitempty"`

	HeapBytes  uint64 `json:"heap_bytes"`
	GoVersion  string `json:"go_version"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NumCPU     int    `json:"num_cpu"`
}

// Run builds o's traffic, opens the flows (untimed, except in the setup
// scenario), then times the scenario's packets through Engine.Serve loops.
func Run(o Options) (*Result, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	p, err := build(&o)
	if err != nil {
		return nil, err
	}
	old := runtime.GOMAXPROCS(o.Workers)
	defer runtime.GOMAXPROCS(old)

	e, err := nat.New(EngineConfig(p.maxFlows + 1024))
	if err != nil {
		return nil, err
	}
	start := time.Unix(1_800_000_000, 0)
	const step = time.Microsecond
	res := &Result{Scenario: o.Scenario, Flows: o.Flows, Workers: o.Workers, PacketSize: o.Size, Batch: o.Batch,
		GoVersion: runtime.Version(), GOMAXPROCS: o.Workers, NumCPU: runtime.NumCPU(), Drops: map[string]uint64{}}

	heap0 := liveHeap()
	clock := start
	if p.setup[0] != nil {
		devs := make([]*Device, o.Workers)
		for i := range devs {
			devs[i] = NewDevice(p.setup[i], 0, clock, step)
		}
		if _, err := serveAll(e, devs, o.Batch, false); err != nil {
			return nil, err
		}
		for _, d := range devs {
			if d.Dropped != 0 {
				return nil, fmt.Errorf("bench: %d setup packets dropped: %v", d.Dropped, d.DropSummary())
			}
			clock = maxTime(clock, d.Now())
		}
		heap1 := liveHeap()
		res.BytesPerFlow = float64(int64(heap1)-int64(heap0)) / float64(max(1, e.Table().Len()))
	}

	limit := 0
	if p.loop {
		limit = (o.Packets + o.Workers - 1) / o.Workers
	}
	devs := make([]*Device, o.Workers)
	deadline := time.Now().Add(o.MaxTime)
	for i := range devs {
		devs[i] = NewDevice(p.timed[i], limit, clock, step)
		devs[i].Deadline = deadline
	}
	flows0 := e.Table().Len()
	rw0, df0 := e.Stats.Rewrites.Load(), e.Stats.DataFlows.Load()
	m, err := serveAll(e, devs, o.Batch, p.loop)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		res.WorkerPackets = append(res.WorkerPackets, d.Packets)
		res.Packets += d.Packets
		res.Accepted += d.Accepted
		res.Dropped += d.Dropped
		for r, n := range d.DropSummary() {
			res.Drops[r] += n
		}
	}
	res.Seconds = m.elapsed.Seconds()
	if res.Packets > 0 {
		res.NsPerPacket = float64(m.elapsed.Nanoseconds()) * float64(o.Workers) / float64(res.Packets)
		res.PacketsPerSecond = float64(res.Packets) / m.elapsed.Seconds()
		res.AllocsPerPacket = float64(m.allocs) / float64(res.Packets)
		res.CPUNsPerPacket = float64(m.cpu.Nanoseconds()) / float64(res.Packets)
	}
	res.Rewrites = e.Stats.Rewrites.Load() - rw0
	res.DataFlows = e.Stats.DataFlows.Load() - df0
	res.FlowsTracked = e.Table().Len()
	if o.Scenario == "setup" {
		made := e.Table().Len() - flows0
		res.FlowsPerSecond = float64(made) / m.elapsed.Seconds()
		res.BytesPerFlow = float64(int64(liveHeap())-int64(heap0)) / float64(max(1, made))
	}
	if o.Scenario == "ftp-control" && res.Packets == uint64(p.packets()) {
		res.ControlSegments = p.control
		res.NsPerControlSegment = float64(m.elapsed.Nanoseconds()) * float64(o.Workers) / float64(p.control)
	}
	res.LoadAverage = loadAverage()
	res.HeapBytes = liveHeap()
	runtime.KeepAlive(e) // the heap measurements above must see the engine live
	runtime.KeepAlive(p)
	res.DeviceNsPerPacket = deviceCost(p.timed[0], min(max(limit, p.timed[0].Len()), 1_000_000), o.Batch)
	return res, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}

func allocs() uint64 {
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

type measured struct {
	elapsed time.Duration
	cpu     time.Duration // process CPU time
	allocs  uint64
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage returns the 1-minute load average, or 0.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

// serveAll runs one Serve loop per device on e and waits for them. The
// clock and the allocation count start when every loop has read its first
// batch (its buffers allocated) and a full collection has run, and stop
// when the last loop returns.
//
// If stopFirst is set, every device closes as soon as one of them does, so
// that the clock covers only time when all the loops were running. Without
// it, a loop that finished its share first would leave the others running
// alone until they were done: with two workers of uneven speed (a vCPU
// whose physical core is busy elsewhere), that tail counted as the time of
// two workers, and wall-clock time per worker exceeded CPU time.
func serveAll(e *nat.Engine, devs []*Device, batch int, stopFirst bool) (measured, error) {
	var stop *stopFlag
	if stopFirst && len(devs) > 1 {
		stop = new(stopFlag)
	}
	var ready sync.WaitGroup
	ready.Add(len(devs))
	var once sync.Once
	var t0 time.Time
	var a0 uint64
	var c0 time.Duration
	for _, d := range devs {
		d.stop = stop
		d.OnStart = func() {
			ready.Done()
			ready.Wait()
			once.Do(func() {
				// The loops' buffers were just allocated, and a
				// collection they set off would run into the timed
				// phase (its stop-the-world pauses and mark work are
				// not the engine's): finish it now, untimed.
				runtime.GC()
				a0 = allocs()
				c0 = cpuTime()
				t0 = time.Now()
			})
		}
	}
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.Serve(context.Background(), d, batch)
		}()
	}
	wg.Wait()
	m := measured{elapsed: time.Since(t0), cpu: cpuTime() - c0, allocs: allocs() - a0}
	return m, errors.Join(errs...)
}

// deviceCost returns the nanoseconds per packet of playing n packets of tr
// through a device with no engine: the harness's own share of a run.
func deviceCost(tr *Trace, n, batch int) float64 {
	if tr.Len() == 0 || n == 0 {
		return 0
	}
	d := NewDevice(tr, n, time.Unix(1_800_000_000, 0), time.Microsecond)
	ps := nat.NewBatch(batch)
	ctx := context.Background()
	t0 := time.Now()
	for {
		k, err := d.ReadBatch(ctx, ps)
		for i := range k {
			ps[i].Verdict, ps[i].Out = nat.Accept, ps[i].Buf[:ps[i].N]
		}
		d.WriteBatch(ps[:k])
		if err != nil {
			break
		}
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(max(1, d.Packets))
}
