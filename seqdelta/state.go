package seqdelta

import (
	"encoding/binary"
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

// ErrTruncated means an encoded ledger ends early or holds more points
// than Capacity: it is not a ledger encoding at all.
var ErrTruncated = errors.New("seqdelta: truncated or oversized ledger encoding")

// pointSize is the encoded size of one point.
const pointSize = 12

// AppendBinary appends l's encoding to b: the offset before the oldest
// point (int32), the number of points (uint8, at most Capacity), then
// each point oldest first (uint32 start, uint32 position, int32 offset),
// all big-endian. It is the ledger's layout in natalg state files and never
// fails.
func (l *Ledger) AppendBinary(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, uint32(l.base))
	b = append(b, l.n)
	for _, p := range l.points[:l.n] {
		b = binary.BigEndian.AppendUint32(b, p.Start)
		b = binary.BigEndian.AppendUint32(b, p.Pos)
		b = binary.BigEndian.AppendUint32(b, uint32(p.Offset))
	}
	return b, nil
}

// ReadBinary sets l from the encoding at the start of data (AppendBinary's)
// and returns how many bytes it took. It fails with ErrTruncated when data
// does not hold a whole encoding (size is then 0), and with ErrBadState,
// size set, when the points are inconsistent as State.Ledger checks them
// (the bytes are a ledger, but not one Record could have made); l is then
// unchanged.
func (l *Ledger) ReadBinary(data []byte) (size int, err error) {
	if len(data) < 5 {
		return 0, fmt.Errorf("%w: %d bytes", ErrTruncated, len(data))
	}
	n := int(data[4])
	if n > Capacity {
		return 0, fmt.Errorf("%w: %d points, at most %d", ErrTruncated, n, Capacity)
	}
	size = 5 + n*pointSize
	if len(data) < size {
		return 0, fmt.Errorf("%w: %d points in %d bytes", ErrTruncated, n, len(data))
	}
	s := State{Base: int32(binary.BigEndian.Uint32(data)), Points: make([]Point, n)}
	for i := range s.Points {
		q := data[5+i*pointSize:]
		s.Points[i] = Point{Start: binary.BigEndian.Uint32(q), Pos: binary.BigEndian.Uint32(q[4:]), Offset: int32(binary.BigEndian.Uint32(q[8:]))}
	}
	m, err := s.Ledger()
	if err != nil {
		return size, err
	}
	*l = m
	return size, nil
}

// UnmarshalBinary sets l from data, which must hold exactly one encoding
// of AppendBinary.
func (l *Ledger) UnmarshalBinary(data []byte) error {
	var m Ledger
	size, err := m.ReadBinary(data)
	if err != nil {
		return err
	}
	if size != len(data) {
		return fmt.Errorf("%w: %d bytes after the ledger", ErrBadState, len(data)-size)
	}
	*l = m
	return nil
}
