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
