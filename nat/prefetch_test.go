package nat

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/header"
)

// TestPeekTuple: the prefetch peek either declines a packet or reads the
// tuple that process looks up.
func TestPeekTuple(t *testing.T) {
	frag := tcpSeg{src: cli, dst: srv, seq: 1, flags: fSYN}.build()
	frag[6] |= 0x20 // MF
	pkts := [][]byte{
		tcpSeg{src: cli, dst: srv, seq: 1, flags: fSYN}.build(),
		tcpSeg{src: ap("198.19.0.2:80"), dst: pubCli, seq: 1, flags: fACK, payload: "x"}.build(),
		udpPkt(ap("198.18.0.2:5353"), ap("198.19.0.2:53"), "q", false),
		udpPkt(ap("[fd00:18::2]:5353"), ap("[2001:db8:19::2]:53"), "q", false),
		icmpEcho(netip.MustParseAddr("198.19.0.9"), pubIP, true, 7),
		frag,
		{0x45, 0, 0},
		nil,
	}
	declined := 0
	for i, b := range pkts {
		var tu conntrack.Tuple
		ok := peekTuple(b, &tu)
		if !ok {
			declined++
			continue
		}
		var p header.Parsed
		if p.Decode(b) != header.Ok {
			t.Fatalf("packet %d: peeked but malformed", i)
		}
		want := conntrack.Tuple{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort, Proto: p.Proto}
		if tu != want {
			t.Fatalf("packet %d: peek %v, want %v", i, tu, want)
		}
	}
	if declined != 4 {
		t.Fatalf("%d packets declined, want 4 (ICMP, fragment, truncated, empty)", declined)
	}
}

// flowPackets returns, for flow k of worker w, a SYN, the SYN+ACK and data
// both ways.
func flowPackets(w, k int) [][]byte {
	c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(w), byte(k)}), uint16(10000+1000*w+k))
	s := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(w), byte(k)}), 80)
	p := netip.AddrPortFrom(pubIP, c.Port())
	return [][]byte{
		tcpSeg{src: c, dst: s, seq: 1, flags: fSYN}.build(),
		tcpSeg{src: s, dst: p, seq: 100, ack: 2, flags: fSYN | fACK}.build(),
		tcpSeg{src: c, dst: s, seq: 2, ack: 101, flags: fACK, payload: "hello"}.build(),
		tcpSeg{src: s, dst: p, seq: 101, ack: 7, flags: fACK, payload: "world"}.build(),
	}
}

// runBatches sends pkts through e in batches of three prefetch groups but
// a few packets, so that the pipeline of prefetchBatch runs through whole
// groups and a partial one, and returns the verdicts and packets out.
func runBatches(e *Engine, pkts [][]byte) ([]Verdict, [][]byte) {
	ps := make([]Packet, 3*prefetchGroup-5)
	for i := range ps {
		ps[i].Buf = make([]byte, MaxPacket)
	}
	var vs []Verdict
	var outs [][]byte
	for len(pkts) > 0 {
		n := min(len(ps), len(pkts))
		for i := range n {
			ps[i].N = copy(ps[i].Buf, pkts[i])
			ps[i].Time = t0
		}
		pkts = pkts[n:]
		e.ProcessBatch(ps[:n])
		for _, p := range ps[:n] {
			vs = append(vs, p.Verdict)
			outs = append(outs, bytes.Clone(p.Out))
		}
	}
	return vs, outs
}

// TestPrefetchBatchSame: batches processed with prefetch hints come out
// exactly as without them, with every packet translated.
func TestPrefetchBatchSame(t *testing.T) {
	var pkts [][]byte
	for step := range 4 {
		for k := range 200 {
			pkts = append(pkts, flowPackets(1, k)[step])
		}
	}
	defer func(m int) { prefetchMin = m }(prefetchMin)
	prefetchMin = 1 << 30
	vs0, outs0 := runBatches(snatEngine(t), pkts)
	prefetchMin = 0
	vs1, outs1 := runBatches(snatEngine(t), pkts)
	for i := range pkts {
		if vs0[i] != Accept || vs1[i] != vs0[i] || !bytes.Equal(outs0[i], outs1[i]) {
			t.Fatalf("packet %d: %v %x, with prefetch %v %x", i, vs0[i], outs0[i], vs1[i], outs1[i])
		}
	}
}

// TestPrefetchConcurrentWorkers runs workers with prefetch hints on one
// table while flows are created and the table is swept. Run with -race.
func TestPrefetchConcurrentWorkers(t *testing.T) {
	defer func(m int) { prefetchMin = m }(prefetchMin)
	prefetchMin = 0
	e := snatEngine(t)
	const workers, flows = 4, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 1; w <= workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var pkts [][]byte
			for step := range 4 {
				for k := range flows {
					pkts = append(pkts, flowPackets(w, k)[step])
				}
			}
			vs, _ := runBatches(e, pkts)
			for i, v := range vs {
				if v != Accept {
					errs <- fmt.Errorf("worker %d packet %d dropped", w, i)
					return
				}
			}
		}(w)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				e.Expire(t0)
			}
		}
	}()
	wg.Wait()
	close(done)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.Table().Len(); got != workers*flows {
		t.Fatalf("%d flows, want %d", got, workers*flows)
	}
}

// FuzzPeekTuple: whatever the bytes, a tuple the prefetch peek reads is the
// tuple process looks up (process reuses the peek's hash), or the packet is
// one process drops before any lookup.
func FuzzPeekTuple(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/kernel/*/in.pcap")
	for _, s := range seeds {
		for _, p := range readPcapIP(f, s) {
			f.Add(p)
		}
	}
	f.Add(tcpSeg{src: cli, dst: srv, seq: 1, flags: fSYN}.build())
	f.Add(udpPkt(ap("[fd00:18::2]:5353"), ap("[2001:db8:19::2]:53"), "q", false))
	f.Fuzz(func(t *testing.T, b []byte) {
		var tu conntrack.Tuple
		if !peekTuple(b, &tu) {
			return
		}
		var p header.Parsed
		if p.Decode(b) != header.Ok || p.Fragment {
			return
		}
		want := conntrack.Tuple{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort, Proto: p.Proto}
		if tu != want {
			t.Fatalf("peek %v, decode %v", tu, want)
		}
	})
}

// TestPrefetchBatchAllocatesNothing: the prefetch passes (hints on the
// stack, the hinted lookup) allocate nothing on established flows.
func TestPrefetchBatchAllocatesNothing(t *testing.T) {
	defer func(m int) { prefetchMin = m }(prefetchMin)
	prefetchMin = 0
	e := snatEngine(t)
	var pkts [][]byte
	for step := range 4 {
		for k := range 100 {
			pkts = append(pkts, flowPackets(1, k)[step])
		}
	}
	if vs, _ := runBatches(e, pkts); vs[len(vs)-1] != Accept {
		t.Fatal("setup dropped")
	}
	ps := NewBatch(2*prefetchGroup + 9)
	data := pkts[200:] // data both ways on established flows
	run := func() {
		for i := range ps {
			ps[i].N = copy(ps[i].Buf, data[i*3%len(data)])
			ps[i].Time = t0
		}
		e.ProcessBatch(ps)
		if ps[0].Verdict != Accept {
			t.Fatal("dropped")
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("%v allocations per batch, want 0", n)
	}
}
