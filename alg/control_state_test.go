package alg

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/seqdelta"
)

// fixedMap maps every announcement to one public endpoint.
type fixedMap netip.AddrPort

func (m fixedMap) MapData(conntrack.Dir, netip.AddrPort, int64) (netip.AddrPort, bool) {
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

// restart replaces the session's Control by one restored from its state,
// as natalg does across a restart, and checks that the restored Control
// gives the same state back.
func (s *session64) restart(cfg *Config) {
	s.t.Helper()
	st := s.c.State()
	d, err := RestoreControl(cfg, nat64Tuples(), st)
	if err != nil {
		s.t.Fatal(err)
	}
	if got := d.State(); !reflect.DeepEqual(got, st) {
		s.t.Fatalf("restored state\n%+v\nwant\n%+v", got, st)
	}
	s.c = d
}

// The RFC 6384 gateway state of a NAT64 control flow survives a restore at
// every step of an EPSV probe the server rejects: both replies pending, a
// long 227 removed whole (replayed identically from its span and hash), the
// rejection turned into a 229 from the kept port, later EPSVs as PASV.
func TestControlStateNAT64EPSVProbe(t *testing.T) {
	cfg := &Config{NAT64EPSVProbe: true}
	s := newSession64(t, cfg)
	s.restart(cfg) // greeting seen: tracked
	s.client("EPSV\r\n").replaced("PASV\r\nEPSV\r\n")
	s.restart(cfg)
	if st := s.c.State().NAT64; len(st.Pending) != 2 || !st.Greeted {
		t.Fatalf("saved NAT64 state %+v", st)
	}
	r227 := "227 Entering Passive Mode (198,18,0,2,195,80). A long text past the 64 bytes kept\r\n"
	x := s.server(r227).replaced("")
	s.restart(cfg)
	if h := s.c.State().Dir[1].History; len(h) != 1 || h[0].Span != uint32(len(r227)) || h[0].OldSum == 0 {
		t.Fatalf("saved history %+v", h)
	}
	x.again()
	rej := "502 Not implemented\r\n"
	w229 := "229 Entering Extended Passive Mode (|||50000|)\r\n"
	y := s.server(rej).replaced(w229)
	s.restart(cfg)
	y.again()
	s.client("EPSV\r\n").replaced("PASV\r\n")
	s.restart(cfg)
	s.server("227 Entering Passive Mode (198,18,0,2,195,81)\r\n").replaced("229 Entering Extended Passive Mode (|||50001|)\r\n")
	s.offsets(6, int32(len(w229)-len(r227)-len(rej))+1)
}

// ALGS DISABLE64 and a gateway answer in the middle of a multi-line reply
// survive a restore.
func TestControlStateNAT64ALGS(t *testing.T) {
	cfg := &Config{}
	s := newSession64(t, cfg)
	s.client("ALGS DISABLE64\r\n").replaced("NOOP\r\n")
	s.restart(cfg)
	s.server("200-NOOP\r\n").replaced(answers[ansALGSOff])
	s.restart(cfg)
	if st := s.c.State(); !st.NAT64.Off || st.Reply != 200 || st.NAT64.Mode == 0 {
		t.Fatalf("saved state %+v", st)
	}
	s.server("200 ok\r\n").replaced("")
	s.restart(cfg)
	// translations off: the EPRT passes unchanged
	s.client("EPRT |2|fd00:64::2|50000|\r\n").pass()
	s.server("200 EPRT ok\r\n").pass()
	s.client("ALGS ENABLE64\r\n").replaced("NOOP\r\n")
	s.restart(cfg)
	s.server("200 NOOP ok\r\n").replaced(answers[ansALGSOn])
}

// A session the gateway tore down (RFC 6384 §12) stays down after a
// restore.
func TestControlStateNAT64TornDown(t *testing.T) {
	cfg := &Config{}
	s := newSession64(t, cfg)
	s.client("EPSV ALL\r\n").replaced("NOOP\r\n")
	s.restart(cfg)
	if r := s.server("421 Bye\r\n").r; r.Action != Reset {
		t.Fatalf("non-200 to the NOOP: %+v", r)
	}
	s.restart(cfg)
	if st := s.c.State().NAT64; !st.Dead {
		t.Fatalf("saved %+v", st)
	}
	if r := s.client("NOOP\r\n").r; r.Action != Drop || r.Events&EvTornDown == 0 {
		t.Fatalf("after a restore: %+v", r)
	}
}

func TestControlStateNAT64Refused(t *testing.T) {
	long := make([]byte, maxAnnounceText)
	for i := range long {
		long[i] = 'x'
	}
	bad64 := []NAT64State{
		{EPSV: 3},
		{Mode: 5},
		{Ans: uint8(len(answers))},
		{Pending: make([]PendingState, MaxPending+1)},
		{Pending: []PendingState{{Kind: 0, N: 0}}},
		{Pending: []PendingState{{Kind: 5}}},
		{Pending: []PendingState{{Kind: 2, N: 1}}},
		{Pending: []PendingState{{Kind: 2, Ans: 1}}},
		{Pending: []PendingState{{Kind: 1, Ans: uint8(len(answers))}}},
	}
	for _, n := range bad64 {
		if _, err := RestoreControl(&Config{}, nat64Tuples(), ControlState{NAT64: n}); !errors.Is(err, ErrBadState) {
			t.Errorf("%+v: %v", n, err)
		}
	}
	// NAT64 state on a flow that is not a NAT64 one
	for _, n := range []NAT64State{{Greeted: true}, {PasvPort: 1}, {Pending: []PendingState{{N: 1}}}} {
		if _, err := RestoreControl(&Config{}, stateTuples, ControlState{NAT64: n}); !errors.Is(err, ErrBadState) {
			t.Errorf("NAT44 with %+v: %v", n, err)
		}
	}
	for _, r := range []RewriteState{
		{Old: long[:10], Span: 100},        // span without the 64 bytes kept
		{Old: long, Span: maxAnnounceText}, // span not longer than what is kept
		{Old: long, Span: MaxSpan + 1},     // longer than a segment
		{Old: long[:10], OldSum: 1},        // hash without span
	} {
		st := ControlState{Dir: [2]StreamState{{}, {History: []RewriteState{r}}}}
		if _, err := RestoreControl(&Config{}, nat64Tuples(), st); !errors.Is(err, ErrBadState) {
			t.Errorf("rewrite %+v: %v", r, err)
		}
	}
	ok := ControlState{
		Dir:   [2]StreamState{{FromSYN: true}, {History: []RewriteState{{Old: long, Span: 100, OldSum: 7}}}},
		NAT64: NAT64State{Greeted: true, EPSV: 2, Mode: 3, Pending: []PendingState{{Kind: 0, N: 3}, {Kind: 1, Ans: 2}}},
	}
	if _, err := RestoreControl(&Config{}, nat64Tuples(), ok); err != nil {
		t.Errorf("valid state refused: %v", err)
	}
	// A state file of a version that kept 64 bytes of a long replaced text
	// still loads.
	ok.Dir[1].History[0].Old = long[:legacyAnnounceText]
	if _, err := RestoreControl(&Config{}, nat64Tuples(), ok); err != nil {
		t.Errorf("legacy state refused: %v", err)
	}
	ok.Dir[1].History[0].Old = long[:legacyAnnounceText-1]
	if _, err := RestoreControl(&Config{}, nat64Tuples(), ok); !errors.Is(err, ErrBadState) {
		t.Errorf("span with 63 bytes kept: %v", err)
	}
}
