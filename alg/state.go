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
}

// StreamState is the gateway's view of one direction of the control
// connection.
type StreamState struct {
	Synced    bool   // the direction's sequence space is known
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
// sequence number Start, and the text that replaced it.
type RewriteState struct {
	Start uint32
	Old   []byte
	New   []byte
}

// State returns a snapshot of c. The caller holds the flow lock.
func (c *Control) State() ControlState {
	st := ControlState{Reply: c.reply, Auth: c.auth}
	for d := range c.dir {
		s := &c.dir[d]
		ss := StreamState{
			Synced: s.synced, LineStart: s.lineStart, Next: s.next, MSS: s.mss,
			TLS: s.tls, TLSLost: s.tlsLost, RecLeft: s.recLeft, Recs: s.recs,
		}
		if len(s.held) > 0 {
			// Release the held line: read it again from the sender's
			// retransmission (see ControlState).
			ss.Next, ss.LineStart = s.heldSeq, true
		}
		if s.hdrN > 0 {
			ss.Hdr = append([]byte(nil), s.hdr[:min(int(s.hdrN), len(s.hdr))]...)
		}
		for i := 0; i < s.hn && i < historyLen; i++ {
			r := &s.history[i]
			ss.History = append(ss.History, RewriteState{
				Start: r.start,
				Old:   append([]byte(nil), r.oldText[:r.oldLen]...),
				New:   append([]byte(nil), r.newText[:r.newLen]...),
			})
		}
		st.Dir[d] = ss
	}
	return st
}

// RestoreControl returns the gateway state of a control flow with the given
// tuples as st describes it, under policy cfg. It fails, without panicking,
// on any inconsistent st: too many or too long rewrites, a record header
// that cannot be one, an implausible record length or reply code.
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
			h := &s.history[i]
			h.start = r.Start
			h.oldLen = uint8(copy(h.oldText[:], r.Old))
			h.newLen = uint8(copy(h.newText[:], r.New))
		}
		s.hn = len(ss.History)
		if len(ss.Hdr) >= len(s.hdr) || len(ss.Hdr) > 0 && !plausibleHeader(ss.Hdr) {
			return nil, fmt.Errorf("%w: %v: record header % x", ErrBadState, conntrack.Dir(d), ss.Hdr)
		}
		if ss.RecLeft > maxRecord {
			return nil, fmt.Errorf("%w: %v: %d bytes left in a record", ErrBadState, conntrack.Dir(d), ss.RecLeft)
		}
		s.hdrN = uint8(copy(s.hdr[:], ss.Hdr))
		s.synced, s.lineStart, s.next, s.mss = ss.Synced, ss.LineStart, ss.Next, ss.MSS
		s.tls, s.tlsLost, s.recLeft, s.recs = ss.TLS, ss.TLSLost, ss.RecLeft, ss.Recs
	}
	return c, nil
}
