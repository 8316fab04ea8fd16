// Package seqdelta keeps the sequence-number corrections that a payload
// rewrite makes necessary on a TCP flow.
//
// When an application-layer gateway replaces text in a segment with text of a
// different length, every later byte of that direction moves: its sequence
// number must be shifted by the running length difference, and the
// acknowledgment numbers and SACK edges flowing back must be shifted the other
// way (RFC 9293 §3.4, RFC 2018 §3). The Linux kernel keeps one correction point
// per direction (nf_conntrack_seqadj); a retransmission of data sent before an
// earlier rewrite then gets the wrong offset. A Ledger keeps a point for every
// rewrite the receiver has not yet acknowledged whole, at most Capacity of
// them, so every retransmission the sender can still make maps exactly.
//
// A point leaves the ledger only when the receiver's acknowledgment has
// passed it (Prune): the sender never again sends bytes that all lie before
// it, and a retransmission that starts before it and runs past it lands,
// with the newest pruned point's offset, entirely below the receiver's
// RCV.NXT for its bytes before the point (RFC 9293 §3.10.7.4: such bytes are
// trimmed as duplicates) and exactly in place for its bytes after it. A full
// ledger records nothing more (Record returns false): the caller must leave
// further announcements unrewritten until acknowledgments make room. No
// point is ever folded away while it may still be needed.
package seqdelta

// Capacity is the number of correction points a Ledger holds: rewrites not
// yet acknowledged by the receiver. Record refuses a point beyond it.
const Capacity = 8

// Point is one correction: a rewrite replaced the original bytes [Start, Pos)
// of the sender's sequence space; bytes at or after Pos are shifted by Offset
// (the sum of all length changes made up to Pos).
type Point struct {
	Start  uint32
	Pos    uint32
	Offset int32
}

// Ledger is the per-direction list of correction points of one TCP flow,
// ordered by position. The zero value is an empty ledger (offset 0
// everywhere). A Ledger is not safe for concurrent use; the flow's lock
// guards it.
type Ledger struct {
	points [Capacity]Point
	n      uint8
	// base is the offset that applies before the oldest remembered point
	// (non-zero only once points have been pruned, or, in a ledger restored
	// from an older state file, folded).
	base int32
}

// before reports whether sequence number a precedes b in TCP's modular
// arithmetic (RFC 9293 §3.4, RFC 1982).
func before(a, b uint32) bool { return int32(a-b) < 0 }

// Len returns the number of correction points held.
func (l *Ledger) Len() int { return int(l.n) }

// Point returns correction point i (0 is the oldest).
func (l *Ledger) Point(i int) Point { return l.points[i] }

// Offset returns the cumulative offset in force after the newest point: the
// shift applied to new data.
func (l *Ledger) Offset() int32 {
	if l.n == 0 {
		return l.base
	}
	return l.points[l.n-1].Offset
}

// Newest returns the newest correction point and the offset in force
// before it; ok is false when the ledger holds no point (Offset applies
// everywhere).
func (l *Ledger) Newest() (p Point, before int32, ok bool) {
	if l.n == 0 {
		return Point{}, l.base, false
	}
	before = l.base
	if l.n > 1 {
		before = l.points[l.n-2].Offset
	}
	return l.points[l.n-1], before, true
}

// Full reports whether the ledger holds Capacity points: Record would refuse
// a new one until Prune makes room.
func (l *Ledger) Full() bool { return int(l.n) == Capacity }

// Record notes that a rewrite of the original bytes [start, end) changed the
// length of the stream by delta bytes (positive when the text grew). A point
// at the same position as an existing one is ignored, so a retransmitted
// rewritten segment that is rewritten identically records nothing new; a
// point older than the newest one is ignored as well, because rewrites are
// only made on in-order data. A zero delta records nothing. It returns false,
// recording nothing, when a new point is needed and the ledger is Full: the
// caller must not send the rewrite (check Full before rewriting).
func (l *Ledger) Record(start, end uint32, delta int32) bool {
	if delta == 0 {
		return true
	}
	if l.n > 0 {
		last := l.points[l.n-1]
		if !before(last.Pos, end) { // end <= last.Pos
			return true
		}
	}
	if l.Full() {
		return false
	}
	l.points[l.n] = Point{Start: start, Pos: end, Offset: l.Offset() + delta}
	l.n++
	return true
}

// Prune forgets the points the receiver has acknowledged: ack is the
// receiver's cumulative acknowledgment mapped back into the sender's
// original space (Ack of the ACK field, RFC 9293 §3.4), so every original
// byte before ack has been received. A point whose rewritten text ends at
// or before ack is removed and its offset becomes the base: the sender can
// no longer send a byte before it that the receiver still needs. The caller
// passes only acknowledgments of bytes the sender really sent.
func (l *Ledger) Prune(ack uint32) {
	k := 0
	for k < int(l.n) && !before(ack, l.points[k].Pos) { // Pos <= ack
		k++
	}
	if k == 0 {
		return
	}
	l.base = l.points[k-1].Offset
	copy(l.points[:], l.points[k:l.n])
	l.n -= uint8(k)
	clear(l.points[l.n:])
}

// Seq maps a sequence number from the sender's original space to the space the
// receiver sees: it adds the offset of the newest point at or before seq. A
// sequence number inside rewritten bytes gets the offset in force before them.
func (l *Ledger) Seq(seq uint32) uint32 {
	return seq + uint32(l.offsetAt(seq))
}

// offsetAt returns the offset in force at original sequence number seq.
func (l *Ledger) offsetAt(seq uint32) int32 {
	for i := int(l.n) - 1; i >= 0; i-- {
		if !before(seq, l.points[i].Pos) { // seq >= Pos
			return l.points[i].Offset
		}
	}
	return l.base
}

// offsetBefore returns the offset in force just before point i.
func (l *Ledger) offsetBefore(i int) int32 {
	if i == 0 {
		return l.base
	}
	return l.points[i-1].Offset
}

// Ack maps an acknowledgment number (or a SACK edge) sent by the receiver, in
// the receiver's space, back into the sender's original space. It subtracts
// the offset of the newest point whose translated position is at or before
// ack. An acknowledgment that ends inside rewritten text maps to the start of
// that text's original bytes, never past what the receiver really got.
func (l *Ledger) Ack(ack uint32) uint32 {
	for i := int(l.n) - 1; i >= 0; i-- {
		p := l.points[i]
		if !before(ack, p.Pos+uint32(p.Offset)) { // past the rewritten text
			return ack - uint32(p.Offset)
		}
		startT := p.Start + uint32(l.offsetBefore(i))
		if !before(ack, startT) { // inside the rewritten text
			return p.Start
		}
	}
	return ack - uint32(l.base)
}

// Reset empties the ledger.
func (l *Ledger) Reset() { *l = Ledger{} }
