package kerneldp

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	ct "github.com/ti-mo/conntrack"

	"github.com/natalg/natalg/cmd/internal/netnstest"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

// liveDataFlow is dataFlow as an entry the kernel accepts over ctnetlink:
// established, with a timeout.
func liveDataFlow(mark uint32, src, dst, replySrc netip.AddrPort) ct.Flow {
	f := dataFlow(mark, src, dst, replySrc)
	f.Timeout = 120
	f.ProtoInfo.TCP = &ct.ProtoInfoTCP{State: ctTCPEstablished}
	return f
}

// TestDataEventsLive: the event socket hears of natalg's data connections
// only: an entry with the data mark (among other mark bits) is reported
// when it is made and when it is deleted; entries with no mark, with the
// control mark or with other bits are dropped by the socket's filter in
// the kernel.
func TestDataEventsLive(t *testing.T) {
	netnstest.Enter(t)
	cc, err := ct.Dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c, err := dialEvents()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu     sync.Mutex
		events []ct.Event
		done   = make(chan error, 1)
	)
	go func() {
		done <- readEvents(ctx, c, func(ev *ct.Event) {
			mu.Lock()
			events = append(events, *ev)
			mu.Unlock()
		}, func() { t.Error("overrun") })
	}()
	ap := netip.MustParseAddrPort
	server20 := ap("198.19.0.2:20")
	flows := []ct.Flow{
		liveDataFlow(CtMarkData|0x1, server20, ap("198.19.100.100:49153"), ap("198.18.0.2:41000")), // natalg's data connection
		liveDataFlow(0, server20, ap("198.19.100.100:49154"), ap("198.18.0.2:41001")),
		liveDataFlow(CtMarkControl, server20, ap("198.19.100.100:49155"), ap("198.18.0.2:41002")),
		liveDataFlow(0x0fffffff, server20, ap("198.19.100.100:49156"), ap("198.18.0.2:41003")),
	}
	for i := range flows {
		if err := cc.Create(flows[i]); err != nil {
			t.Fatalf("create entry %d: %v", i, err)
		}
	}
	for i := range flows {
		if err := cc.Delete(flows[i]); err != nil {
			t.Fatalf("delete entry %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for an event the filter should have dropped
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("readEvents: %v", err)
	}
	var got []string
	for _, ev := range events {
		got = append(got, fmt.Sprintf("%v %v mark %#x", ev.Type, ev.Flow.TupleOrig.Proto.DestinationPort, ev.Flow.Mark))
	}
	want := []string{
		fmt.Sprintf("%v 49153 mark %#x", ct.EventNew, CtMarkData|0x1),
		fmt.Sprintf("%v 49153 mark %#x", ct.EventDestroy, CtMarkData|0x1),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

// TestEventOverrunLive: when the event socket's buffer overruns, the events
// lost are read back from the kernel's table: a data connection that runs
// holds its public port, one that ended unseen lets its port go.
func TestEventOverrunLive(t *testing.T) {
	netnstest.Enter(t)
	cc, err := ct.Dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	eng := dataEngine(t)
	ap := netip.MustParseAddrPort
	server20 := ap("198.19.0.2:20")
	running := nat.KernelDataHold{Proto: ipproto.TCP, Inside: ap("198.18.0.2:41000"), Public: ap("198.19.100.100:49153")}
	ended := nat.KernelDataHold{Proto: ipproto.TCP, Inside: ap("198.18.0.2:41001"), Public: ap("198.19.100.100:49154")}
	if !eng.HoldKernelData(ended.Proto, ended.Inside, ended.Public) {
		t.Fatal("hold refused")
	}
	c, err := dialEvents()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadBuffer(1); err != nil { // the kernel's minimum: a few events
		t.Fatal(err)
	}
	// the running connection's events, and a burst of data-marked entries
	// (UDP: no port of natalg's), all unread: the buffer overruns
	if err := cc.Create(liveDataFlow(CtMarkData, server20, running.Public, running.Inside)); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		f := ct.NewFlow(uint8(ipproto.UDP), 0, netip.MustParseAddr("198.19.0.2"), netip.MustParseAddr("198.19.100.100"), uint16(10000+i), 53, 60, CtMarkData)
		if err := cc.Create(f); err != nil {
			t.Fatalf("create UDP entry %d: %v", i, err)
		}
	}
	d := &Datapath{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = readEvents(ctx, c, func(ev *ct.Event) { d.event(eng, ev) }, func() {
		d.Stats.EventOverruns.Add(1)
		if err := d.resync(eng); err != nil {
			t.Errorf("resync: %v", err)
		}
		cancel()
	})
	if err != nil {
		t.Fatalf("readEvents: %v", err)
	}
	if d.Stats.EventOverruns.Load() != 1 {
		t.Fatalf("%d overruns, want 1", d.Stats.EventOverruns.Load())
	}
	if held := eng.KernelDataHeld(); len(held) != 1 || held[0] != running {
		t.Errorf("holds after the resync %+v, want only the running connection's %+v", held, running)
	}
}
