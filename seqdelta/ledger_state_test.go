package seqdelta

import (
	"errors"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	var l Ledger
	for i := uint32(0); i < Capacity; i++ {
		l.Record(1000+100*i, 1020+100*i, 4)
	}
	l.Prune(1250) // base 12, as after acknowledgments
	l.Record(2000, 2020, -3)
	m, err := l.State().Ledger()
	if err != nil {
		t.Fatal(err)
	}
	if m != l {
		t.Fatalf("restored %+v, want %+v", m, l)
	}
	for _, s := range []uint32{0, 1010, 1500, 1900, 5000} {
		if m.Seq(s) != l.Seq(s) || m.Ack(s) != l.Ack(s) {
			t.Fatalf("%d maps differently", s)
		}
	}
	if l.Len() != Capacity-2 || l.Offset() != 4*Capacity-3 {
		t.Fatalf("len %d offset %d", l.Len(), l.Offset())
	}
	var z Ledger
	if m, err := z.State().Ledger(); err != nil || m != z {
		t.Fatalf("empty ledger: %+v %v", m, err)
	}
}

func TestStateRefused(t *testing.T) {
	for _, s := range []State{
		{Points: make([]Point, Capacity+1)},
		{Points: []Point{{Start: 10, Pos: 5, Offset: 1}}},
		{Points: []Point{{Start: 1, Pos: 5, Offset: 1}, {Start: 2, Pos: 5, Offset: 2}}},
	} {
		if _, err := s.Ledger(); !errors.Is(err, ErrBadState) {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	var l Ledger
	for i := uint32(0); i < Capacity; i++ {
		l.Record(1000+100*i, 1020+100*i, 4)
	}
	l.Prune(1250)
	l.Record(2000, 2020, -3)
	b, _ := l.AppendBinary([]byte{0xee})
	if len(b) != 1+5+pointSize*int(l.n) {
		t.Fatalf("%d bytes for %d points", len(b), l.n)
	}
	var m Ledger
	if err := m.UnmarshalBinary(b[1:]); err != nil || m != l {
		t.Fatalf("restored %+v (%v), want %+v", m, err, l)
	}
	// The layout is the state file's: base, count, points.
	if b[1] != 0 || b[4] != 12 || int(b[5]) != int(l.n) {
		t.Fatalf("header % x", b[1:6])
	}
	var z, zz Ledger
	zb, _ := z.AppendBinary(nil)
	if err := zz.UnmarshalBinary(zb); err != nil || zz != z || len(zb) != 5 {
		t.Fatalf("empty ledger: % x %+v %v", zb, zz, err)
	}
}

func TestBinaryRefused(t *testing.T) {
	var l Ledger
	l.Record(100, 110, 5)
	good, _ := l.AppendBinary(nil)
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short header", good[:4], ErrTruncated},
		{"short point", good[:len(good)-1], ErrTruncated},
		{"too many points", []byte{0, 0, 0, 0, Capacity + 1}, ErrTruncated},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrBadState},
		{"ends before start", []byte{0, 0, 0, 0, 1, 0, 0, 0, 10, 0, 0, 0, 5, 0, 0, 0, 1}, ErrBadState},
	} {
		m := l
		if err := m.UnmarshalBinary(tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if m != l {
			t.Errorf("%s: ledger changed on error", tc.name)
		}
	}
}

// FuzzLedgerBinary checks that any bytes either decode to a ledger whose
// encoding is those bytes again, or are refused; never a panic.
func FuzzLedgerBinary(f *testing.F) {
	var l Ledger
	l.Record(100, 110, 5)
	l.Record(200, 230, -2)
	b, _ := l.AppendBinary(nil)
	f.Add(b)
	f.Add([]byte{0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Ledger
		if err := m.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrBadState) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again, _ := m.AppendBinary(nil)
		if string(again) != string(data) {
			t.Fatalf("re-encoded % x, read % x", again, data)
		}
		_ = m.Seq(150)
		_ = m.Ack(150)
	})
}
