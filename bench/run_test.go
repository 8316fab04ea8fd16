package bench

import (
	"context"
	"testing"
	"time"

	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/header"
)

// play runs tr through e with a Device, checking every output packet's
// checksums, and returns the device.
func play(t *testing.T, e *nat.Engine, tr *Trace) *Device {
	t.Helper()
	d := NewDevice(tr, 0, time.Unix(1_800_000_000, 0), time.Microsecond)
	d.Check = func(p *nat.Packet) {
		if p.Verdict != nat.Accept {
			return
		}
		var h header.Parsed
		if r := h.Decode(p.Out); r != header.Ok {
			t.Fatalf("output %d does not decode: %v", p.ID, r)
		}
		if !h.IPv4().IsChecksumValid() || !h.L4ChecksumValid() {
			t.Fatalf("output %d: bad checksum", p.ID)
		}
	}
	if err := e.Serve(context.Background(), d, 16); err != nil {
		t.Fatal(err)
	}
	if d.Packets != uint64(tr.Len()) {
		t.Fatalf("%d of %d packets played", d.Packets, tr.Len())
	}
	return d
}

func TestGeneratedPacketsDecode(t *testing.T) {
	p, err := build(&Options{Scenario: "mixed", Flows: 300, Workers: 1, Size: 64, Packets: 5000})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*Trace{p.setup[0], p.timed[0]} {
		for i := range tr.Len() {
			var h header.Parsed
			b := tr.Packet(i)
			if r := h.Decode(b); r != header.Ok {
				t.Fatalf("packet %d: %v", i, r)
			}
			if !h.L4ChecksumValid() {
				t.Fatalf("packet %d: bad transport checksum", i)
			}
		}
	}
}

// The FTP sessions really make the gateway rewrite every PORT and 227, each
// data connection comes in through its expectation, and nothing is dropped.
func TestFTPSessionsRewriteAndConnect(t *testing.T) {
	const sessions, rounds = 40, 3
	o := Options{Scenario: "ftp-control", Flows: sessions, Workers: 1, Size: 200, Packets: rounds * sessions * ftpPacketsPerRound}
	o.fill()
	p, err := build(&o)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nat.New(EngineConfig(p.maxFlows))
	if err != nil {
		t.Fatal(err)
	}
	if d := play(t, e, p.setup[0]); d.Dropped != 0 {
		t.Fatalf("setup drops: %v", d.DropSummary())
	}
	if n := e.Table().Len(); n != sessions {
		t.Fatalf("%d control flows, want %d", n, sessions)
	}
	d := play(t, e, p.timed[0])
	if d.Dropped != 0 {
		t.Fatalf("drops: %v", d.DropSummary())
	}
	s := e.Stats.Snapshot()
	if s.Rewrites != rounds*sessions || s.DataFlows != rounds*sessions {
		t.Fatalf("%d rewrites, %d data flows; want %d each", s.Rewrites, s.DataFlows, rounds*sessions)
	}
	if s.SeqAdjusted == 0 {
		t.Fatal("no sequence numbers shifted after the rewrites")
	}
	if n := e.Table().ExpectationCount(); n != 0 {
		t.Fatalf("%d expectations left unused", n)
	}
}

// Every packet of established flows is accepted and translated, by two
// workers sharing the engine. The run stops when the first worker has
// played its share of 25000 packets; the other is then within a batch of
// its own share or behind it.
func TestEstablishedAllAccepted(t *testing.T) {
	r, err := Run(Options{Scenario: "established", Flows: 2000, Workers: 2, Packets: 50000})
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != 0 || r.Accepted != r.Packets || r.Packets > 50000 || r.FlowsTracked != 2000 ||
		len(r.WorkerPackets) != 2 || max(r.WorkerPackets[0], r.WorkerPackets[1]) != 25000 {
		t.Fatalf("%+v", r)
	}
}

func TestScenariosSmall(t *testing.T) {
	for _, s := range Scenarios {
		r, err := Run(Options{Scenario: s, Flows: 200, Packets: 20000})
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if r.Dropped != 0 || r.Packets == 0 {
			t.Errorf("%s: %d of %d dropped: %v", s, r.Dropped, r.Packets, r.Drops)
		}
		if (s == "ftp-control" || s == "mixed") && (r.Rewrites == 0 || r.Rewrites != r.DataFlows) {
			t.Errorf("%s: %d rewrites, %d data flows", s, r.Rewrites, r.DataFlows)
		}
	}
}
