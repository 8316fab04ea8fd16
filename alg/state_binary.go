package alg

import (
	"encoding/binary"
	"fmt"
)

// The binary form of a ControlState, the gateway part of an FTP control
// flow's record in a state file (nat.Engine.SaveState). All integers are
// big-endian:
//
//	uint16 multi-line reply code, uint8 AUTH pending (0 or 1),
//	stream original, stream reply:
//	  uint8 flags (1 synced, 2 line start, 4 TLS, 8 TLS framing lost,
//	  16 record seen, 32 synced by its SYN), uint32 next, uint16 MSS,
//	  uint32 record bytes left, uint8 n < 5 + partial record header,
//	  uint8 n <= seqdelta.Capacity rewrites × (uint32 start, uint8 n + old
//	  text, uint8 n + new text, uint32 span, uint64 hash of the old text)
//	NAT64 gateway state (RFC 6384; zero on other flows): uint8 flags (1
//	  lost, 2 DISABLE64, 4 greeted, 8 unused (once EPSV ALL accepted), 16
//	  229 emitted, 32 torn down), uint8 EPSV support, uint16 probe PASV
//	  port, uint8 reply mode, uint8 answer, uint8 n <= MaxPending pending
//	  replies × (uint8 kind, uint8 answer, uint16 commands)
//
// Format 1 (state files of natalg before NAT64 flows were saved) lacks the
// stream flag 32, the span and hash of a rewrite and the NAT64 state.
const (
	// StateFormat is the format AppendBinary writes and UnmarshalBinary
	// reads.
	StateFormat = 2
	// stateFormatOld is the oldest format DecodeBinary reads.
	stateFormatOld = 1
)

// AppendBinary implements encoding.BinaryAppender: it appends the binary
// form of st (format StateFormat) to b. It fails on a state no Control
// has: a reply code, a record header, a history or a text too long for
// its field.
func (st *ControlState) AppendBinary(b []byte) ([]byte, error) {
	if st.Reply < 0 || st.Reply > 0xffff {
		return b, fmt.Errorf("%w: reply code %d", ErrBadState, st.Reply)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(st.Reply))
	b = append(b, flagByte(st.Auth))
	for d := range st.Dir {
		s := &st.Dir[d]
		if len(s.Hdr) > 255 || len(s.History) > 255 {
			return b, fmt.Errorf("%w: stream %d: %d header bytes, %d rewrites", ErrBadState, d, len(s.Hdr), len(s.History))
		}
		b = append(b, flagByte(s.Synced, s.LineStart, s.TLS, s.TLSLost, s.Recs, s.FromSYN))
		b = binary.BigEndian.AppendUint32(b, s.Next)
		b = binary.BigEndian.AppendUint16(b, s.MSS)
		b = binary.BigEndian.AppendUint32(b, s.RecLeft)
		b = appendShort(b, s.Hdr)
		b = append(b, uint8(len(s.History)))
		for i := range s.History {
			r := &s.History[i]
			if len(r.Old) > 255 || len(r.New) > 255 {
				return b, fmt.Errorf("%w: stream %d: rewrite %d of %d bytes into %d", ErrBadState, d, i, len(r.Old), len(r.New))
			}
			b = binary.BigEndian.AppendUint32(b, r.Start)
			b = appendShort(b, r.Old)
			b = appendShort(b, r.New)
			b = binary.BigEndian.AppendUint32(b, r.Span)
			b = binary.BigEndian.AppendUint64(b, r.OldSum)
		}
	}
	n := &st.NAT64
	if len(n.Pending) > 255 {
		return b, fmt.Errorf("%w: %d NAT64 replies pending", ErrBadState, len(n.Pending))
	}
	// flag 8 meant "the server accepted EPSV ALL" before the gateway
	// answered EPSV ALL itself (RFC 6384 §6); it is written 0, read and
	// ignored
	b = append(b, flagByte(n.Lost, n.Off, n.Greeted, false, n.Emitted, n.Dead), n.EPSV)
	b = binary.BigEndian.AppendUint16(b, n.PasvPort)
	b = append(b, n.Mode, n.Ans, uint8(len(n.Pending)))
	for _, p := range n.Pending {
		b = append(b, p.Kind, p.Ans)
		b = binary.BigEndian.AppendUint16(b, p.N)
	}
	return b, nil
}

// MarshalBinary implements encoding.BinaryMarshaler (AppendBinary to a
// new slice).
func (st *ControlState) MarshalBinary() ([]byte, error) { return st.AppendBinary(nil) }

// UnmarshalBinary implements encoding.BinaryUnmarshaler: it sets st from
// data, which must hold exactly one control state of format StateFormat.
// Only the encoding is checked here (lengths, flags, counts);
// RestoreControl checks that the values make a Control.
func (st *ControlState) UnmarshalBinary(data []byte) error {
	rest, err := st.DecodeBinary(data, StateFormat)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d bytes after the control state", ErrBadState, len(rest))
	}
	return nil
}

// DecodeBinary sets st from the control state of the given format (1 or
// StateFormat) at the start of data and returns the bytes after it. A
// state file holds one in each FTP control flow's record.
func (st *ControlState) DecodeBinary(data []byte, format int) (rest []byte, err error) {
	if format < stateFormatOld || format > StateFormat {
		return data, fmt.Errorf("%w: control state format %d", ErrBadState, format)
	}
	*st = ControlState{}
	in := stateInput{rest: data}
	st.Reply = int(in.u16())
	st.Auth = in.flag()
	for d := range st.Dir {
		s := &st.Dir[d]
		flags := in.u8()
		if flags >= 32 && format < 2 || flags >= 64 {
			in.fail("stream flags %#x", flags)
		}
		s.Synced, s.LineStart, s.TLS, s.TLSLost, s.Recs = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0, flags&16 != 0
		s.FromSYN = flags&32 != 0
		s.Next = in.u32()
		s.MSS = in.u16()
		s.RecLeft = in.u32()
		s.Hdr = in.short()
		count := int(in.u8())
		if count > historyLen {
			in.fail("%d rewrites remembered", count)
		}
		for range count {
			if in.err != nil {
				break
			}
			r := RewriteState{Start: in.u32(), Old: in.short(), New: in.short()}
			if format >= 2 {
				r.Span = in.u32()
				r.OldSum = in.u64()
			}
			s.History = append(s.History, r)
		}
	}
	if format < 2 {
		return in.rest, in.err
	}
	n := &st.NAT64
	flags := in.u8()
	if flags >= 64 {
		in.fail("NAT64 flags %#x", flags)
	}
	n.Lost, n.Off, n.Greeted, n.Emitted, n.Dead = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&16 != 0, flags&32 != 0
	n.EPSV = in.u8()
	n.PasvPort = in.u16()
	n.Mode = in.u8()
	n.Ans = in.u8()
	count := int(in.u8())
	if count > MaxPending {
		in.fail("%d NAT64 replies pending", count)
	}
	for range count {
		if in.err != nil {
			break
		}
		n.Pending = append(n.Pending, PendingState{Kind: in.u8(), Ans: in.u8(), N: in.u16()})
	}
	return in.rest, in.err
}

// flagByte packs up to 8 flags into a byte, the first in bit 0.
func flagByte(flags ...bool) uint8 {
	var b uint8
	for i, f := range flags {
		if f {
			b |= 1 << i
		}
	}
	return b
}

// appendShort appends a byte string of at most 255 bytes with its length.
func appendShort(b, text []byte) []byte {
	return append(append(b, uint8(len(text))), text...)
}

// stateInput reads big-endian fields of a control state; the first error
// sticks and later reads return zeros.
type stateInput struct {
	rest []byte
	err  error
}

func (in *stateInput) fail(format string, args ...any) {
	if in.err == nil {
		in.err = fmt.Errorf("%w: "+format, append([]any{ErrBadState}, args...)...)
	}
}

func (in *stateInput) take(n int) []byte {
	if in.err != nil {
		return nil
	}
	if len(in.rest) < n {
		in.fail("truncated control state")
		return nil
	}
	v := in.rest[:n]
	in.rest = in.rest[n:]
	return v
}

func (in *stateInput) u8() uint8 {
	if b := in.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (in *stateInput) flag() bool {
	switch v := in.u8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		in.fail("boolean %d", v)
		return false
	}
}

func (in *stateInput) u16() uint16 {
	if b := in.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (in *stateInput) u32() uint32 {
	if b := in.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (in *stateInput) u64() uint64 {
	if b := in.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// short reads a byte string written by appendShort, as a copy.
func (in *stateInput) short() []byte {
	n := int(in.u8())
	if b := in.take(n); b != nil && n > 0 {
		return append([]byte(nil), b...)
	}
	return nil
}
