package alg

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/seqdelta"
)

// fixedMap maps every announcement to one public endpoint.
type fixedMap netip.AddrPort

func (m fixedMap) MapData(conntrack.Dir, netip.AddrPort) (netip.AddrPort, bool) {
	return netip.AddrPort(m), true
}

var stateTuples = [2]conntrack.Tuple{
	{Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.19.0.2"), SrcPort: 40000, DstPort: 21, Proto: 6},
	{Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.MustParseAddr("198.19.100.100"), SrcPort: 21, DstPort: 40000, Proto: 6},
}

// A restored Control repeats a rewrite on a retransmission and continues
// where the saved one stopped; a held partial line is released, to be read
// again from the sender's retransmission.
func TestControlStateRoundTrip(t *testing.T) {
	cfg := &Config{}
	tr := fixedMap(netip.MustParseAddrPort("198.19.100.100:50000"))
	c := NewControl(cfg, stateTuples)
	var led seqdelta.Ledger
	c.Segment(&Segment{Dir: conntrack.Original, Seq: 1000, SYN: true, MSS: 1460}, &led, tr)
	c.Segment(&Segment{Dir: conntrack.Reply, Seq: 5000, SYN: true, MSS: 1400}, &led, tr)
	port := "PORT 198,18,0,2,195,80\r\n"
	res := c.Segment(&Segment{Dir: conntrack.Original, Seq: 1001, Payload: []byte(port)}, &led, tr)
	if res.Action != Replace {
		t.Fatalf("PORT not rewritten: %+v", res)
	}
	want := string(res.Payload)
	res = c.Segment(&Segment{Dir: conntrack.Original, Seq: 1025, Payload: []byte("PORT 198,18")}, &led, tr)
	if res.Events&EvHeld == 0 {
		t.Fatalf("partial PORT not held: %+v", res)
	}
	st := c.State()
	if s := st.Dir[0]; s.Next != 1025 || !s.LineStart || len(s.History) != 1 || s.MSS != 1400 {
		t.Fatalf("saved stream %+v", s)
	}
	d, err := RestoreControl(cfg, stateTuples, st)
	if err != nil {
		t.Fatal(err)
	}
	res = d.Segment(&Segment{Dir: conntrack.Original, Seq: 1001, Payload: []byte(port)}, &led, tr)
	if res.Action != Replace || string(res.Payload) != want || res.Events&EvRetransRewrite == 0 {
		t.Fatalf("retransmitted PORT after restore: %+v %q", res, res.Payload)
	}
	res = d.Segment(&Segment{Dir: conntrack.Original, Seq: 1025, Payload: []byte("PORT 198,18,0,2,195,81\r\n")}, &led, tr)
	if res.Action != Replace || res.Seq != 1025 {
		t.Fatalf("PORT after the released one: %+v", res)
	}
	if got := d.State(); len(got.Dir[0].History) != 2 || got.Dir[0].Next != 1049 || !got.Dir[1].Synced || got.Dir[1].Next != 5001 || got.Dir[1].MSS != 1460 {
		t.Fatalf("state after %+v", got)
	}
}

func TestControlStateRefused(t *testing.T) {
	long := make([]byte, maxAnnounceText+1)
	for _, st := range []ControlState{
		{Reply: -1},
		{Reply: 1000},
		{Dir: [2]StreamState{{History: make([]RewriteState, historyLen+1)}}},
		{Dir: [2]StreamState{{History: []RewriteState{{Old: long, New: []byte("x")}}}}},
		{Dir: [2]StreamState{{History: []RewriteState{{Old: nil, New: []byte("x")}}}}},
		{Dir: [2]StreamState{{}, {Hdr: []byte{22, 3, 3, 0, 5}}}},
		{Dir: [2]StreamState{{}, {Hdr: []byte{99}}}},
		{Dir: [2]StreamState{{RecLeft: maxRecord + 1}}},
	} {
		if _, err := RestoreControl(&Config{}, stateTuples, st); !errors.Is(err, ErrBadState) {
			t.Errorf("%+v: %v", st, err)
		}
	}
}
