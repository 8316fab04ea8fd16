package alg

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/seqdelta"
)

// sampleStates returns the states of Controls that saw a rewrite, a held
// line and (NAT64) an EPSV probe, to seed the encoding tests.
func sampleStates(t testing.TB) []ControlState {
	cfg := &Config{}
	tr := fixedMap(netip.MustParseAddrPort("198.19.100.100:50000"))
	c := NewControl(cfg, stateTuples)
	var led seqdelta.Ledger
	c.Segment(&Segment{Dir: conntrack.Original, Seq: 1000, SYN: true, MSS: 1460}, &led, tr)
	c.Segment(&Segment{Dir: conntrack.Reply, Seq: 5000, SYN: true, MSS: 1400}, &led, tr)
	c.Segment(&Segment{Dir: conntrack.Original, Seq: 1001, Payload: []byte("PORT 198,18,0,2,195,80\r\n")}, &led, tr)
	states := []ControlState{{}, c.State()}
	c64 := NewControl(&Config{NAT64EPSVProbe: true}, nat64Tuples())
	var led64 [2]seqdelta.Ledger
	nat := &fakeNAT{public: netip.MustParseAddr("198.19.64.1")}
	c64.Segment(&Segment{Dir: conntrack.Original, Seq: 999, SYN: true, MSS: 1440}, &led64[0], nat)
	c64.Segment(&Segment{Dir: conntrack.Reply, Seq: 4999, SYN: true, MSS: 1460}, &led64[1], nat)
	c64.Segment(&Segment{Dir: conntrack.Reply, Seq: 5000, Payload: []byte("220 ready\r\n")}, &led64[1], nat)
	if res := c64.Segment(&Segment{Dir: conntrack.Original, Seq: 1000, Payload: []byte("EPSV\r\n")}, &led64[0], nat); res.Events&EvEPSVToPASV == 0 {
		t.Fatalf("EPSV of a NAT64 flow not sent as PASV: %+v", res)
	}
	states = append(states, c64.State())
	states = append(states, ControlState{Reply: 150, Auth: true, Dir: [2]StreamState{
		{TLS: true, Recs: true, RecLeft: 300, Hdr: []byte{23, 3}},
		{Synced: true, History: []RewriteState{{Start: 7, Old: bytes.Repeat([]byte("x"), maxAnnounceText), New: nil, Span: 900, OldSum: 1 << 63}}},
	}})
	return states
}

// Every sample state survives AppendBinary and UnmarshalBinary unchanged,
// with the byte layout state files have always had.
func TestControlStateBinaryRoundTrip(t *testing.T) {
	for i, st := range sampleStates(t) {
		data, err := st.AppendBinary([]byte("prefix"))
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		if string(data[:6]) != "prefix" {
			t.Fatalf("state %d: AppendBinary did not append", i)
		}
		var got ControlState
		if err := got.UnmarshalBinary(data[6:]); err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, st) {
			t.Errorf("state %d: got %+v, want %+v", i, got, st)
		}
		if err := got.UnmarshalBinary(append(data[6:], 0)); !errors.Is(err, ErrBadState) {
			t.Errorf("state %d: trailing byte accepted: %v", i, err)
		}
	}
	// the layout of the empty state: reply, AUTH, two streams of 13 bytes
	// each (flags, next, MSS, record left, header length, rewrites), then
	// the NAT64 part (flags, EPSV, probe port, mode, answer, pending)
	empty, _ := (&ControlState{}).AppendBinary(nil)
	if want := 3 + 2*13 + 7; len(empty) != want {
		t.Errorf("empty state is %d bytes, want %d", len(empty), want)
	}
}

// A format 1 state (no span and hash, no NAT64 part) decodes, and what
// follows it is left to the caller.
func TestControlStateFormat1(t *testing.T) {
	v1 := []byte{0, 0, 1, // reply 0, AUTH pending
		3, 0, 0, 0, 9, 5, 0xb4, 0, 0, 0, 0, 0, 1, // synced+line start, next 9, MSS 1460, one rewrite
		0, 0, 0, 5, 2, 'a', 'b', 1, 'c', // start 5, "ab" -> "c"
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // reply stream, nothing
		0xee}
	var st ControlState
	rest, err := st.DecodeBinary(v1, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := ControlState{Auth: true, Dir: [2]StreamState{
		{Synced: true, LineStart: true, Next: 9, MSS: 1460, History: []RewriteState{{Start: 5, Old: []byte("ab"), New: []byte("c")}}},
	}}
	if !reflect.DeepEqual(st, want) || !bytes.Equal(rest, []byte{0xee}) {
		t.Fatalf("got %+v rest % x", st, rest)
	}
	v1[3] = 32 // synced by its SYN: a format 2 flag
	if _, err := st.DecodeBinary(v1, 1); !errors.Is(err, ErrBadState) {
		t.Errorf("format 2 flag in format 1: %v", err)
	}
}

// FuzzControlState decodes arbitrary bytes as a control state: no panic;
// what decodes encodes again to a state that decodes the same, and
// RestoreControl either refuses it or makes a Control whose own state
// encodes and decodes unchanged.
func FuzzControlState(f *testing.F) {
	for _, st := range sampleStates(f) {
		data, err := st.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, false)
	}
	f.Add([]byte{0, 0, 1, 3, 0, 0, 0, 9, 5, 0xb4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 2, 'a', 'b', 1, 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, data []byte, format1 bool) {
		format := StateFormat
		if format1 {
			format = 1
		}
		var st ControlState
		rest, err := st.DecodeBinary(data, format)
		if err != nil {
			if !errors.Is(err, ErrBadState) {
				t.Fatalf("error %v does not wrap ErrBadState", err)
			}
			return
		}
		if len(rest) > len(data) {
			t.Fatalf("rest longer than the input")
		}
		again, err := st.AppendBinary(nil)
		if err != nil {
			t.Fatalf("decoded state does not encode: %v", err)
		}
		var st2 ControlState
		if err := st2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if !reflect.DeepEqual(st, st2) {
			t.Fatalf("round trip: %+v != %+v", st2, st)
		}
		for _, tuples := range [][2]conntrack.Tuple{stateTuples, nat64Tuples()} {
			c, err := RestoreControl(&Config{}, tuples, st)
			if err != nil {
				continue
			}
			saved := c.State()
			encoded, err := saved.AppendBinary(nil)
			if err != nil {
				t.Fatalf("restored Control's state does not encode: %v", err)
			}
			var back ControlState
			if err := back.UnmarshalBinary(encoded); err != nil || !reflect.DeepEqual(back, saved) {
				t.Fatalf("restored Control's state: %v, %+v != %+v", err, back, saved)
			}
		}
	})
}
