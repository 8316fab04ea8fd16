package nat

import (
	"context"
	"net/netip"
	"testing"
	"unsafe"
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
