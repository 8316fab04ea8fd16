package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/natalg/natalg/nat/ipproto"
)

// ErrRecordFormat means bytes are not an encoded FlowRecord: truncated, or
// with an address that is neither 4 nor 16 bytes or is IPv4-mapped.
var ErrRecordFormat = errors.New("conntrack: malformed flow record encoding")

// AppendBinary appends r's encoding to b, the layout of a flow in natalg
// state files, all integers big-endian:
//
//	tuple original, tuple reply (tuple: address source, address
//	destination, uint16 source port, uint16 destination port, uint8
//	protocol; address: uint8 length 4 or 16, then the bytes, an
//	IPv4-mapped address written as IPv4)
//	uint8 tag, uint8 TCP state, uint8 FINs seen
//	int64 created, int64 expires (Unix ns)
//
// It never fails.
func (r *FlowRecord) AppendBinary(b []byte) ([]byte, error) {
	b = appendTuple(b, &r.Tuples[Original])
	b = appendTuple(b, &r.Tuples[Reply])
	b = append(b, r.Tag, uint8(r.TCP), r.FINs)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Created))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Expires))
	return b, nil
}

// ReadBinary sets r from the encoding at the start of data (AppendBinary's)
// and returns how many bytes it took; on an error (ErrRecordFormat) r is
// unchanged. It checks the encoding only: whether the record is
// consistent is Check's question.
func (r *FlowRecord) ReadBinary(data []byte) (size int, err error) {
	rd := recordReader{b: data}
	var m FlowRecord
	m.Tuples[Original] = rd.tuple()
	m.Tuples[Reply] = rd.tuple()
	m.Tag = rd.u8()
	m.TCP = TCPState(rd.u8())
	m.FINs = rd.u8()
	m.Created = int64(rd.u64())
	m.Expires = int64(rd.u64())
	if rd.err != nil {
		return 0, rd.err
	}
	*r = m
	return len(data) - len(rd.b), nil
}

// UnmarshalBinary sets r from data, which must hold exactly one encoding
// of AppendBinary.
func (r *FlowRecord) UnmarshalBinary(data []byte) error {
	var m FlowRecord
	size, err := m.ReadBinary(data)
	if err != nil {
		return err
	}
	if size != len(data) {
		return fmt.Errorf("%w: %d bytes after the record", ErrRecordFormat, len(data)-size)
	}
	*r = m
	return nil
}

func appendTuple(b []byte, t *Tuple) []byte {
	b = appendAddr(b, t.Src)
	b = appendAddr(b, t.Dst)
	b = binary.BigEndian.AppendUint16(b, t.SrcPort)
	b = binary.BigEndian.AppendUint16(b, t.DstPort)
	return append(b, uint8(t.Proto))
}

func appendAddr(b []byte, a netip.Addr) []byte {
	a = a.Unmap()
	if a.Is4() {
		v := a.As4()
		return append(append(b, 4), v[:]...)
	}
	v := a.As16()
	return append(append(b, 16), v[:]...)
}

// recordReader reads big-endian fields; the first error sticks and later
// reads return zeros.
type recordReader struct {
	b   []byte
	err error
}

func (d *recordReader) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("%w: truncated", ErrRecordFormat)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *recordReader) u8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *recordReader) u16() uint16 {
	if b := d.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *recordReader) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *recordReader) addr() netip.Addr {
	switch n := d.u8(); {
	case d.err != nil:
	case n == 4:
		if b := d.take(4); b != nil {
			return netip.AddrFrom4([4]byte(b))
		}
	case n == 16:
		if b := d.take(16); b != nil {
			a := netip.AddrFrom16([16]byte(b))
			if a.Is4In6() {
				d.err = fmt.Errorf("%w: IPv4-mapped address %v", ErrRecordFormat, a)
				return netip.Addr{}
			}
			return a
		}
	default:
		d.err = fmt.Errorf("%w: address of %d bytes", ErrRecordFormat, n)
	}
	return netip.Addr{}
}

func (d *recordReader) tuple() Tuple {
	return Tuple{Src: d.addr(), Dst: d.addr(), SrcPort: d.u16(), DstPort: d.u16(), Proto: ipproto.Proto(d.u8())}
}
