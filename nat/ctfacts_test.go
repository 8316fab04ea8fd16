package nat

import (
	"bytes"
	"testing"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
	"github.com/natalg/natalg/seqdelta"
)

// sendCT runs one segment through ProcessCT and, like natalg run's queue
// reader, "stores" what it asks in kernel (the conntrack entry by its
// tuple) and calls Done.
func sendCT(t *testing.T, e *Engine, s tcpSeg, kernel map[conntrack.Tuple]*KernelFlow) seen {
	t.Helper()
	var facts CTFacts
	v, out := e.ProcessCT(s.build(), t0, &facts)
	if v != Accept {
		t.Fatalf("segment %q dropped", s.payload)
	}
	if facts.Pending() {
		kf := kernel[facts.Tuple]
		if kf == nil {
			kf = &KernelFlow{Tuple: facts.Tuple, TCP: conntrack.TCPEstablished}
			kernel[facts.Tuple] = kf
		}
		if facts.SetMark {
			kf.Mark = kf.Mark&^facts.Mask | facts.Mark
		}
		if facts.SetLabels {
			kf.Labels = append([]byte(nil), facts.Labels[:]...)
		}
		facts.Done()
	}
	return decodeOut(t, out)
}

// An FTP control connection whose PORT grew by 4 is rebuilt from the
// kernel's entry alone (mark and labels) by a fresh engine: the next
// command goes on with the +4 offset, the server's ACK maps back.
func TestAdoptFromKernelEntry(t *testing.T) {
	e := snatEngine(t)
	if err := e.SetCTStore(CTStore{MarkMask: DefaultCTMarkMask | 0x0f, Labels: true}); err == nil {
		t.Fatal("a mask of two runs was accepted")
	}
	if err := e.SetCTStore(CTStore{MarkMask: DefaultCTMarkMask, Labels: true}); err != nil {
		t.Fatal(err)
	}
	kernel := map[conntrack.Tuple]*KernelFlow{}
	const operatorBit = 0x1
	sendCT(t, e, tcpSeg{src: cli, dst: srv, seq: 1000, flags: fSYN, mss: 1460}, kernel)
	if len(kernel) != 0 {
		t.Fatal("the packet that created the flow asked to store facts (its entry is not confirmed yet)")
	}
	sendCT(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1460}, kernel)
	if len(kernel) != 1 {
		t.Fatalf("facts stored for %d entries after the SYN+ACK, want 1", len(kernel))
	}
	for _, kf := range kernel {
		kf.Mark |= operatorBit // the operator's own bit, outside natalg's mask
	}
	sendCT(t, e, tcpSeg{src: cli, dst: srv, seq: 1001, ack: 5001, flags: fACK}, kernel)
	sendCT(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"}, kernel)
	if o := sendCT(t, e, cmd(1001, portIn), kernel); o.payload != portOut {
		t.Fatalf("PORT out %q", o.payload)
	}
	kf := kernel[conntrack.Tuple{Src: cli.Addr(), Dst: srv.Addr(), SrcPort: cli.Port(), DstPort: srv.Port(), Proto: ipproto.TCP}]
	if kf == nil || kf.Mark&operatorBit == 0 || len(kf.Labels) != LabelBytes {
		t.Fatalf("kernel entry %+v: want natalg's mark beside the operator's bit, and labels", kf)
	}

	// natalg is killed; a new one adopts the entry
	e2 := snatEngine(t)
	if err := e2.SetCTStore(CTStore{MarkMask: DefaultCTMarkMask, Labels: true}); err != nil {
		t.Fatal(err)
	}
	st := e2.Adopt([]KernelFlow{*kf, {Tuple: conntrack.Tuple{Src: cli.Addr(), Dst: srv.Addr(), SrcPort: 1, DstPort: 2, Proto: 6}, Mark: operatorBit}}, nil, t0)
	if st.Flows != 1 || st.FTP != 1 || st.NotOurs != 1 || e2.Bindings() != 1 {
		t.Fatalf("adopt: %+v, %d bindings", st, e2.Bindings())
	}
	var fi FlowInfo
	e2.Flows(func(f FlowInfo) { fi = f })
	if fi.Kind != "snat" || fi.SeqDelta != [2]int32{4, 0} {
		t.Fatalf("adopted flow %+v", fi)
	}
	// the server's 200 acknowledges the grown PORT; the client's next
	// command is shifted by +4 (the gateway takes it as a line start)
	afterPort(t, e2)
	// the public port is the one the mark holds: the reply is translated
	o := mustSend(t, e2, tcpSeg{src: srv, dst: pubCli, seq: 5022, ack: 1035, flags: fACK | fPSH, payload: "150 ok\r\n"})
	if o.Ack != 1031 || o.Dst != cli.Addr() || o.DstPort != cli.Port() {
		t.Fatalf("server segment after adoption: to %v:%d ack %d", o.Dst, o.DstPort, o.Ack)
	}
	// a second adoption (keepalived's "became master" again) adds nothing
	if st := e2.Adopt([]KernelFlow{*kf}, nil, t0); st.Flows != 0 || st.Clash != 1 {
		t.Fatalf("second adopt: %+v", st)
	}
}

// TestAdoptRefreshesStaleControlFlow: a router of a pair that was master,
// then backup while the other rewrote a PORT on the same control
// connection, then master again, still has the control flow from before;
// its rebuild takes the ledgers from the kernel entry's (synced) labels.
func TestAdoptRefreshesStaleControlFlow(t *testing.T) {
	e := snatEngine(t)
	if err := e.SetCTStore(CTStore{MarkMask: DefaultCTMarkMask, Labels: true}); err != nil {
		t.Fatal(err)
	}
	kernel := map[conntrack.Tuple]*KernelFlow{}
	sendCT(t, e, tcpSeg{src: cli, dst: srv, seq: 1000, flags: fSYN, mss: 1460}, kernel)
	sendCT(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1460}, kernel)
	sendCT(t, e, tcpSeg{src: cli, dst: srv, seq: 1001, ack: 5001, flags: fACK}, kernel)
	sendCT(t, e, tcpSeg{src: srv, dst: pubCli, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"}, kernel)
	sendCT(t, e, cmd(1001, portIn), kernel)
	kf := kernel[conntrack.Tuple{Src: cli.Addr(), Dst: srv.Addr(), SrcPort: cli.Port(), DstPort: srv.Port(), Proto: ipproto.TCP}]
	if kf == nil || len(kf.Labels) != LabelBytes {
		t.Fatalf("kernel entry %+v", kf)
	}
	// This router adopted the connection before the PORT (no labels yet).
	stale := *kf
	stale.Labels = nil
	b := snatEngine(t)
	if err := b.SetCTStore(CTStore{MarkMask: DefaultCTMarkMask, Labels: true}); err != nil {
		t.Fatal(err)
	}
	if st := b.Adopt([]KernelFlow{stale}, nil, t0); st.Flows != 1 || st.FTP != 1 {
		t.Fatalf("first adopt: %+v", st)
	}
	delta := func() [2]int32 {
		var fi FlowInfo
		b.Flows(func(f FlowInfo) { fi = f })
		return fi.SeqDelta
	}
	if d := delta(); d != [2]int32{0, 0} {
		t.Fatalf("before: seq delta %v", d)
	}
	// Master again: the synced entry has the other router's labels.
	if st := b.Adopt([]KernelFlow{*kf}, nil, t0); st.Refreshed != 1 || st.Flows != 0 {
		t.Fatalf("second adopt: %+v", st)
	}
	if d := delta(); d != [2]int32{4, 0} {
		t.Fatalf("after: seq delta %v, want the kernel's +4", d)
	}
	// The same labels again change nothing.
	if st := b.Adopt([]KernelFlow{*kf}, nil, t0); st.Refreshed != 0 || st.Clash != 1 {
		t.Fatalf("third adopt: %+v", st)
	}
}

func TestLabelsRoundTrip(t *testing.T) {
	for _, c := range []struct {
		base   int32
		points []seqdelta.Point
	}{
		{0, nil},
		{7, nil},
		{4, []seqdelta.Point{{Start: 100, Pos: 124, Offset: 8}}},
		{0, []seqdelta.Point{{Start: 1, Pos: 5, Offset: 3}, {Start: 100, Pos: 124, Offset: -5}}},
		{-1000, []seqdelta.Point{{Start: 9, Pos: 10, Offset: -1000 + 1023}}},
	} {
		var x ftpFlow
		x.ctl = nil
		led, err := seqdelta.State{Base: c.base, Points: c.points}.Ledger()
		if err != nil {
			t.Fatal(err)
		}
		x.ledgers[1] = led
		x.ctl = newFTPFlow(snatEngine(t), conntrack.NewFlow(conntrack.Tuple{}, conntrack.Tuple{})).ctl
		l, ok := encodeLabels(&x)
		if !ok {
			t.Fatalf("%+v did not fit", c)
		}
		got, tls, ok := decodeLabels(l[:])
		if !ok || tls != [2]bool{} {
			t.Fatalf("%+v: decode failed", c)
		}
		gl, err := got[1].Ledger()
		if err != nil {
			t.Fatal(err)
		}
		if gl.Offset() != led.Offset() {
			t.Errorf("%+v: offset %d, want %d", c, gl.Offset(), led.Offset())
		}
		if p, before, has := led.Newest(); has {
			for _, seq := range []uint32{p.Pos - 1, p.Pos, p.Pos + 1000} {
				if gl.Seq(seq) != led.Seq(seq) {
					t.Errorf("%+v: seq %d maps to %d, want %d (before %d)", c, seq, gl.Seq(seq), led.Seq(seq), before)
				}
			}
		}
	}
	// an offset beyond 18 bits does not fit: nothing is stored
	var x ftpFlow
	x.ctl = newFTPFlow(snatEngine(t), conntrack.NewFlow(conntrack.Tuple{}, conntrack.Tuple{})).ctl
	x.ledgers[0], _ = seqdelta.State{Base: 1 << 17}.Ledger()
	if _, ok := encodeLabels(&x); ok {
		t.Error("an offset of 2^17 was encoded")
	}
}

// FuzzDecodeLabels: labels read from the kernel (written by anyone with
// CAP_NET_ADMIN) never panic and decode to valid ledgers.
func FuzzDecodeLabels(f *testing.F) {
	f.Add(make([]byte, 16))
	f.Add([]byte{0, 0, 0, 100, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		led, _, ok := decodeLabels(b)
		if !ok {
			return
		}
		for d := range led {
			if _, err := led[d].Ledger(); err != nil {
				t.Fatalf("decoded an invalid ledger: %v", err)
			}
		}
	})
}

// ProcessCT allocates nothing, whether or not it asks to store facts.
func TestProcessCTAllocs(t *testing.T) {
	e := snatEngine(t)
	if err := e.SetCTStore(CTStore{MarkMask: DefaultCTMarkMask, Labels: true}); err != nil {
		t.Fatal(err)
	}
	handshake(t, e)
	pkt := tcpSeg{src: cli, dst: srv, seq: 1001, ack: 5009, flags: fACK}.build()
	buf := make([]byte, len(pkt), 2048)
	var facts CTFacts
	asked := 0
	n := testing.AllocsPerRun(200, func() {
		copy(buf, pkt)
		e.ProcessCT(buf[:len(pkt)], t0, &facts)
		if facts.Pending() {
			asked++
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
	if asked == 0 {
		t.Fatal("the flow's facts were never asked for (nothing stored them)")
	}
}

// A snapshot (--state-interval) restores NAT64's plain flows, and neither
// NAT44 flows (the kernel's conntrack entries hold them) nor FTP control
// flows (their gateway state may be behind their stream).
func TestSnapshotRestoresNAT64PlainFlowsOnly(t *testing.T) {
	e := nat64Engine(t)
	send64(t, e, udpPkt(ap("[fd00:64::2]:5353"), ap("[2001:db8:64::c612:4002]:53"), "query", false))
	var buf bytes.Buffer
	if err := e.SaveSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	e2 := mk64(t)
	st, err := e2.LoadState(bytes.NewReader(buf.Bytes()), t0)
	if err != nil || st.Flows != 1 || st.Superseded != 0 {
		t.Fatalf("NAT64 snapshot: %+v, %v", st, err)
	}

	e = snatEngine(t)
	handshake(t, e)
	buf.Reset()
	if err := e.SaveSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	st, err = snatEngine(t).LoadState(bytes.NewReader(buf.Bytes()), t0)
	if err != nil || st.Flows != 0 || st.Superseded != 1 {
		t.Fatalf("NAT44 snapshot: %+v, %v", st, err)
	}
	// the same state saved at a clean stop restores the flow
	if _, st, _ := saveLoad(t, e, snatEngine, t0); st.Flows != 1 {
		t.Fatalf("clean-stop state: %+v", st)
	}
}

// A flow whose facts the kernel keeps refusing (no entry: a NOTRACK rule)
// is given up after three tries, not retried with every packet.
func TestCTStoreGivesUp(t *testing.T) {
	e := snatEngine(t)
	if err := e.SetCTStore(CTStore{MarkMask: DefaultCTMarkMask}); err != nil {
		t.Fatal(err)
	}
	mustSend(t, e, tcpSeg{src: cli, dst: ap("198.19.0.9:80"), seq: 1, flags: fSYN})
	tries := 0
	for range 10 {
		var facts CTFacts
		if v, _ := e.ProcessCT(tcpSeg{src: cli, dst: ap("198.19.0.9:80"), seq: 2, ack: 1, flags: fACK}.build(), t0, &facts); v != Accept {
			t.Fatal("dropped")
		}
		if facts.Pending() {
			tries++
			facts.Failed()
		}
	}
	if tries != 3 {
		t.Fatalf("%d store attempts, want 3", tries)
	}
}
