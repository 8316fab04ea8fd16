package seqdelta

import (
	"errors"
	"fmt"
)

// ErrBadState means a saved ledger is inconsistent.
var ErrBadState = errors.New("seqdelta: inconsistent ledger state")

// State is a ledger as a state file saves it: the offset in force before
// the oldest point, and the points, oldest first.
type State struct {
	Base   int32
	Points []Point
}

// State returns a snapshot of l.
func (l *Ledger) State() State {
	s := State{Base: l.base}
	if l.n > 0 {
		s.Points = append([]Point(nil), l.points[:l.n]...)
	}
	return s
}

// Ledger returns the ledger s describes. It fails when s holds more than
// Capacity points, when a point's rewritten bytes end before they start, or
// when the points are not in increasing order of position, as Record keeps
// them.
func (s State) Ledger() (Ledger, error) {
	var l Ledger
	if len(s.Points) > Capacity {
		return l, fmt.Errorf("%w: %d points, at most %d", ErrBadState, len(s.Points), Capacity)
	}
	for i, p := range s.Points {
		if before(p.Pos, p.Start) {
			return l, fmt.Errorf("%w: point %d ends at %d before its start %d", ErrBadState, i, p.Pos, p.Start)
		}
		if i > 0 && !before(s.Points[i-1].Pos, p.Pos) {
			return l, fmt.Errorf("%w: point %d at %d not after point %d at %d", ErrBadState, i, p.Pos, i-1, s.Points[i-1].Pos)
		}
		l.points[i] = p
	}
	l.n = uint8(len(s.Points))
	l.base = s.Base
	return l, nil
}
