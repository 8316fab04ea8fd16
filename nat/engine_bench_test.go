package nat

import (
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/header"
)

func benchEngine(b *testing.B) *Engine {
	e, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkFTPControlPORT times a PORT command the gateway rewrites, each
// at the next sequence number: parse, map the data port, install the
// expectation (evicting the previous one), rewrite, record the sequence
// shift, recompute the checksum.
func BenchmarkFTPControlPORT(b *testing.B) {
	e := benchEngine(b)
	for _, s := range []tcpSeg{
		{src: cli, dst: srv, seq: 1000, flags: fSYN, mss: 1460},
		{src: srv, dst: pubCli, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1460},
		{src: cli, dst: srv, seq: 1001, ack: 5001, flags: fACK},
		{src: srv, dst: pubCli, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"},
	} {
		if v, _ := e.processPacket(s.build(), t0); v != Accept {
			b.Fatal("handshake dropped")
		}
	}
	tmpl := cmd(1001, portIn).build()
	buf := make([]byte, 0, 65535)
	seq := uint32(1001)
	var p header.Parsed
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		pkt := append(buf[:0], tmpl...)
		p.Decode(pkt)
		p.SetTCPSeq(seq)
		if v, _ := e.processPacket(pkt, t0); v != Accept {
			b.Fatal("PORT dropped")
		}
		seq += uint32(len(portIn))
		n++
	}
	if got := e.Stats.Rewrites.Load(); got != uint64(n) {
		b.Fatalf("%d rewrites for %d PORT commands", got, n)
	}
}

// BenchmarkProcessBatchEstablished translates batches of 64 inbound ACKs
// (40 bytes) of an established flow through ProcessBatch; ns/op is per
// batch.
func BenchmarkProcessBatchEstablished(b *testing.B) {
	e := benchEngine(b)
	_, in := establish(b, e)
	ps := make([]Packet, 64)
	for i := range ps {
		ps[i].Buf = make([]byte, 0, MaxPacket)
		ps[i].Time = t0
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range ps {
			ps[i].N = copy(ps[i].Buf[:cap(ps[i].Buf)], in)
		}
		e.ProcessBatch(ps)
	}
	b.SetBytes(int64(len(in)) * 64)
	if ps[0].Verdict != Accept {
		b.Fatal("dropped")
	}
}
