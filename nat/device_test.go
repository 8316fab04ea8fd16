package nat

import (
	"context"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/natalg/natalg/nat/frag"
)

// memDevice hands out packets from a slice and collects verdicts.
type memDevice struct {
	in       [][]byte
	verdicts []Verdict
	outs     [][]byte
}

func (d *memDevice) ReadBatch(ctx context.Context, ps []Packet) (int, error) {
	if len(d.in) == 0 {
		return 0, ErrClosed
	}
	n := 0
	for n < len(ps) && len(d.in) > 0 {
		ps[n].N = copy(ps[n].Buf[:cap(ps[n].Buf)], d.in[0])
		ps[n].Time = t0
		d.in = d.in[1:]
		n++
	}
	return n, nil
}

func (d *memDevice) WriteBatch(ps []Packet) error {
	for _, p := range ps {
		d.verdicts = append(d.verdicts, p.Verdict)
		d.outs = append(d.outs, append([]byte(nil), p.Out...))
	}
	return nil
}

func TestServeBatches(t *testing.T) {
	e := snatEngine(t)
	d := &memDevice{in: [][]byte{
		cmd(1000, "").build(), // a stray non-SYN control segment: picked up
		tcpSeg{src: cli, dst: srv, seq: 1000, flags: fSYN}.build(),
		tcpSeg{src: ap("198.19.0.9:1"), dst: ap("198.19.100.100:2"), seq: 1, flags: fSYN}.build(),
	}}
	if err := e.Serve(context.Background(), d, 2); err != nil {
		t.Fatal(err)
	}
	if len(d.verdicts) != 3 || d.verdicts[1] != Accept || d.verdicts[2] != Drop {
		t.Fatalf("verdicts %v", d.verdicts)
	}
	if o := decodeOut(t, d.outs[1]); o.Src != netip.MustParseAddr("198.19.100.100") {
		t.Fatalf("not translated: %v", o.Src)
	}
}

// TestNewBatch checks the buffers NewBatch carves from one allocation: each
// has room for MaxPacket, ends where its capacity says (so growing a packet
// cannot reach the next buffer), and the first cache lines of a batch of 64
// fall in 64 different L1 sets.
func TestNewBatch(t *testing.T) {
	ps := NewBatch(64)
	sets := map[uintptr]bool{}
	for i := range ps {
		b := ps[i].Buf
		if len(b) < MaxPacket || cap(b) != len(b) {
			t.Fatalf("buffer %d: len %d cap %d", i, len(b), cap(b))
		}
		b = b[:cap(b)]
		for j := range b {
			b[j] = byte(i)
		}
		sets[uintptr(unsafe.Pointer(&b[0]))%4096/64] = true
	}
	for i := range ps {
		b := ps[i].Buf
		if b[0] != byte(i) || b[len(b)-1] != byte(i) {
			t.Fatalf("buffer %d overwritten by a neighbour", i)
		}
	}
	if len(sets) != 64 {
		t.Errorf("first lines of 64 buffers fall in %d L1 sets, want 64", len(sets))
	}
}

// moreDevice is memDevice that also collects Packet.More, or says it can
// send only one packet per packet read.
type moreDevice struct {
	memDevice
	single bool
	more   [][][]byte
}

func (d *moreDevice) SingleOutput() bool { return d.single }

func (d *moreDevice) WriteBatch(ps []Packet) error {
	for _, p := range ps {
		var m [][]byte
		for _, b := range p.More {
			m = append(m, append([]byte(nil), b...))
		}
		d.more = append(d.more, m)
	}
	return d.memDevice.WriteBatch(ps)
}

// TestServeFragments: Serve hands a Device the fragments of a reassembled
// datagram in Packet.More, after Out, in one WriteBatch with the Held
// verdicts of the others; a SingleOutput device gets the datagram whole.
func TestServeFragments(t *testing.T) {
	for _, single := range []bool{false, true} {
		e := dualEngine(t, 0)
		out := bigUDP(ap("198.18.0.2:40000"), ap("198.19.0.2:7"), 3000, false)
		d := &moreDevice{single: single}
		d.in = reverse(frag.Split4(out, []int{1480, 1480, 48}, 0x1234, false))
		if err := e.Serve(context.Background(), d, 8); err != nil {
			t.Fatal(err)
		}
		if len(d.verdicts) != 3 || d.verdicts[0] != Held || d.verdicts[1] != Held || d.verdicts[2] != Accept {
			t.Fatalf("single %v: verdicts %v", single, d.verdicts)
		}
		sent := append([][]byte{d.outs[2]}, d.more[2]...)
		if single && (len(sent) != 1 || len(sent[0]) != len(out)) || !single && len(sent) != 3 {
			t.Fatalf("single %v: %d packets sent", single, len(sent))
		}
		if got := whole(t, sent); got.Src != pubIP || got.payload != string(out[28:]) {
			t.Fatalf("single %v: %v, %d payload bytes", single, got.Src, len(got.payload))
		}
	}
}
