package nat

import (
	"context"
	"net/netip"
	"testing"
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
