package alg

import (
	"errors"
	"fmt"

	"github.com/natalg/natalg/conntrack"
)

// ErrBadState means a saved gateway state is inconsistent.
var ErrBadState = errors.New("alg: inconsistent control state")

// ControlState is a snapshot of a Control, for saving the gateway state of a
// control connection across a restart of the NAT (natalg run --state).
//
// A partial command held back at the time of the snapshot is not saved: the
// snapshot rewinds its direction to the held line's first byte, at a line
// start. Held bytes have not been forwarded, so the receiver never
// acknowledged them and the sender retransmits them; after the restore the
// gateway reads them again from the retransmission, as if they had never
// come. Scratch state of the segment being processed is not saved either.
type ControlState struct {
	Dir   [2]StreamState // by conntrack.Dir
	Reply int            // code of the multi-line reply in progress, 0 if none
	Auth  bool           // AUTH sent, reply awaited
	// NAT64 is the RFC 6384 gateway state of a NAT64 control flow (IPv6
	// client, IPv4 server); all zero for any other flow.
	NAT64 NAT64State
}

// NAT64State is the RFC 6384 gateway state of a NAT64 control flow: what
// it knows of the server and the FIFO of the replies it still has to
// answer, replace or remove in band. Whether the flow is a NAT64 one is not
// saved: it follows from the flow's tuples. The codes (EPSV, Mode, Ans,
// PendingState.Kind) are the gateway's own; RestoreControl checks their
// ranges.
type NAT64State struct {
	Lost     bool   // replies can no longer be told apart: no in-band answers
	Off      bool   // ALGS DISABLE64 received
	Greeted  bool   // the server's greeting went by
	Dead     bool   // the session was torn down (RFC 6384 §12)
	Emitted  bool   // the 229 of the reply in progress was written
	EPSV     uint8  // what is known of the server's EPSV: unknown, yes, no
	PasvPort uint16 // port of the 227 answering the gateway's probe PASV
	Mode     uint8  // what is done with the lines of the reply in progress
	Ans      uint8  // the gateway's answer of the reply in progress
	// Pending is the FIFO of outstanding replies, oldest first, at most
	// MaxPending entries.
	Pending []PendingState
}

// PendingState is one entry of the FIFO of outstanding replies: Kind of
// entry, the answer Ans the gateway gives, N ordinary commands (Kind 0).
type PendingState struct {
	Kind uint8
	Ans  uint8
	N    uint16
}

// MaxPending bounds NAT64State.Pending.
const MaxPending = pendingCap

// MaxSpan bounds RewriteState.Span: a replaced text is at most a segment's
// payload (65535 bytes) after a held line (MaxLine).
const MaxSpan = 65535 + MaxLine

// StreamState is the gateway's view of one direction of the control
// connection.
type StreamState struct {
	Synced    bool   // the direction's sequence space is known
	FromSYN   bool   // synced by the direction's SYN, not picked up mid-stream
	LineStart bool   // the byte at Next begins a line
	Next      uint32 // next expected original sequence number
	MSS       uint16 // MSS announced by this direction's receiver
	// History holds the last rewrites of the direction, oldest first, to
	// repeat them on retransmissions.
	History []RewriteState
	// TLS record framing of an encrypted direction (see Control).
	TLS     bool
	TLSLost bool
	RecLeft uint32 // bytes left in the current record's body
	Hdr     []byte // the first bytes of a record header being collected (< 5)
	Recs    bool   // a whole record header has been seen
}

// RewriteState is one remembered rewrite: the original text at original
// sequence number Start, and the text that replaced it. A replaced text
// longer than the bytes kept of it (a whole reply the NAT64
// gateway replaced or removed) has its length in Span and its FNV-1a hash in
// OldSum, so that a retransmission of it is replayed identically; Span is 0
// otherwise.
type RewriteState struct {
	Start  uint32
	Old    []byte
	New    []byte
	Span   uint32
	OldSum uint64
}

// State returns a snapshot of c. The caller holds the flow lock.
func (c *Control) State() ControlState {
	st := ControlState{Reply: c.reply, Auth: c.auth}
	for d := range c.dir {
		s := &c.dir[d]
		ss := StreamState{
			Synced: s.synced, FromSYN: s.fromSYN, LineStart: s.lineStart, Next: s.next, MSS: s.mss,
			TLS: s.tls, TLSLost: s.tlsLost, RecLeft: s.recLeft, Recs: s.recordSeen,
		}
		if len(s.held) > 0 {
			// Release the held line: read it again from the sender's
			// retransmission (see ControlState).
			ss.Next, ss.LineStart = s.heldSeq, true
		}
		if s.hdrN > 0 {
			ss.Hdr = append([]byte(nil), s.hdr[:min(int(s.hdrN), len(s.hdr))]...)
		}
		for i := 0; i < s.historyCount && i < historyLen; i++ {
			r := &s.history[i]
			ss.History = append(ss.History, RewriteState{
				Start: r.start,
				Old:   append([]byte(nil), r.oldText[:r.oldLen]...),
				New:   append([]byte(nil), r.newText[:r.newLen]...),
				Span:  r.span, OldSum: r.oldSum,
			})
		}
		st.Dir[d] = ss
	}
	n := &c.n64
	if n.on {
		st.NAT64 = NAT64State{
			Lost: n.lost, Off: n.off, Greeted: n.greeted, Dead: n.dead, Emitted: n.emitted,
			EPSV: uint8(n.epsv), PasvPort: n.pasvPort, Mode: uint8(n.mode), Ans: uint8(n.answer),
		}
		for i := 0; i < int(n.queueLen) && i < pendingCap; i++ {
			p := n.queue[(int(n.queueHead)+i)%pendingCap]
			st.NAT64.Pending = append(st.NAT64.Pending, PendingState{Kind: uint8(p.kind), Ans: uint8(p.answer), N: p.commands})
		}
	}
	return st
}

// RestoreControl returns the gateway state of a control flow with the given
// tuples as st describes it, under policy cfg. It fails, without panicking,
// on any inconsistent st: too many or too long rewrites, a record header
// that cannot be one, an implausible record length or reply code, NAT64
// state out of range or on a flow that is not a NAT64 one.
func RestoreControl(cfg *Config, tuples [2]conntrack.Tuple, st ControlState) (*Control, error) {
	if st.Reply < 0 || st.Reply > 999 {
		return nil, fmt.Errorf("%w: reply code %d", ErrBadState, st.Reply)
	}
	c := NewControl(cfg, tuples)
	c.reply, c.auth = st.Reply, st.Auth
	for d := range c.dir {
		ss := &st.Dir[d]
		s := &c.dir[d]
		if len(ss.History) > historyLen {
			return nil, fmt.Errorf("%w: %v: %d rewrites remembered, at most %d", ErrBadState, conntrack.Dir(d), len(ss.History), historyLen)
		}
		for i, r := range ss.History {
			if len(r.Old) == 0 || len(r.Old) > maxAnnounceText || len(r.New) > maxAnnounceText {
				return nil, fmt.Errorf("%w: %v: rewrite %d of %d bytes into %d", ErrBadState, conntrack.Dir(d), i, len(r.Old), len(r.New))
			}
			if r.Span != 0 && (r.Span <= uint32(len(r.Old)) || r.Span > MaxSpan || len(r.Old) != maxAnnounceText && len(r.Old) != legacyAnnounceText) {
				return nil, fmt.Errorf("%w: %v: rewrite %d of %d bytes kept of %d", ErrBadState, conntrack.Dir(d), i, len(r.Old), r.Span)
			}
			if r.Span == 0 && r.OldSum != 0 {
				return nil, fmt.Errorf("%w: %v: rewrite %d has a hash but no span", ErrBadState, conntrack.Dir(d), i)
			}
			h := &s.history[i]
			h.start = r.Start
			h.oldLen = uint8(copy(h.oldText[:], r.Old))
			h.newLen = uint8(copy(h.newText[:], r.New))
			h.span, h.oldSum = r.Span, r.OldSum
		}
		s.historyCount = len(ss.History)
		if len(ss.Hdr) >= len(s.hdr) || len(ss.Hdr) > 0 && !plausibleHeader(ss.Hdr) {
			return nil, fmt.Errorf("%w: %v: record header % x", ErrBadState, conntrack.Dir(d), ss.Hdr)
		}
		if ss.RecLeft > maxRecord {
			return nil, fmt.Errorf("%w: %v: %d bytes left in a record", ErrBadState, conntrack.Dir(d), ss.RecLeft)
		}
		s.hdrN = uint8(copy(s.hdr[:], ss.Hdr))
		s.synced, s.lineStart, s.next, s.mss = ss.Synced, ss.LineStart, ss.Next, ss.MSS
		s.fromSYN = ss.FromSYN
		s.tls, s.tlsLost, s.recLeft, s.recordSeen = ss.TLS, ss.TLSLost, ss.RecLeft, ss.Recs
	}
	if err := c.n64.restore(c.n64.on, &st.NAT64); err != nil {
		return nil, err
	}
	return c, nil
}

// restore sets n from st, checking every field; on says whether the flow is
// a NAT64 one (else st must be all zero).
func (n *nat64) restore(on bool, st *NAT64State) error {
	if !on {
		if st.Lost || st.Off || st.Greeted || st.Dead || st.Emitted || st.EPSV != 0 || st.PasvPort != 0 ||
			st.Mode != 0 || st.Ans != 0 || len(st.Pending) != 0 {
			return fmt.Errorf("%w: NAT64 state on a flow that is not a NAT64 one", ErrBadState)
		}
		return nil
	}
	if st.EPSV > uint8(epsvNo) || st.Mode > uint8(modeTeardown) || int(st.Ans) >= len(answers) || len(st.Pending) > pendingCap {
		return fmt.Errorf("%w: NAT64 EPSV %d, mode %d, answer %d, %d pending", ErrBadState, st.EPSV, st.Mode, st.Ans, len(st.Pending))
	}
	for i, p := range st.Pending {
		plain := p.Kind == uint8(pendPlain)
		if p.Kind >= uint8(pendUnused) || int(p.Ans) >= len(answers) || plain && p.N == 0 || !plain && p.N != 0 ||
			p.Kind != uint8(pendAnswer) && p.Ans != 0 {
			return fmt.Errorf("%w: NAT64 pending %d: kind %d, answer %d, %d commands", ErrBadState, i, p.Kind, p.Ans, p.N)
		}
		n.queue[i] = pending{kind: pendKind(p.Kind), answer: answer(p.Ans), commands: p.N}
	}
	n.queueHead, n.queueLen = 0, uint8(len(st.Pending))
	n.lost, n.off, n.greeted, n.dead, n.emitted = st.Lost, st.Off, st.Greeted, st.Dead, st.Emitted
	n.epsv, n.pasvPort, n.mode, n.answer = epsvSupport(st.EPSV), st.PasvPort, replyMode(st.Mode), answer(st.Ans)
	return nil
}
