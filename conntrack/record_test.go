package conntrack

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/ipproto"
)

func sampleRecords() []FlowRecord {
	v4 := FlowRecord{
		Tuples: [2]Tuple{
			{Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.19.0.2"), SrcPort: 40000, DstPort: 21, Proto: ipproto.TCP},
			{Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.MustParseAddr("198.19.0.1"), SrcPort: 21, DstPort: 40000, Proto: ipproto.TCP},
		},
		Tag: 1, TCP: TCPEstablished, FINs: 1, Created: 1e18, Expires: 1e18 + 7200e9,
	}
	v6 := FlowRecord{
		Tuples: [2]Tuple{
			{Src: netip.MustParseAddr("2001:db8::2"), Dst: netip.MustParseAddr("64:ff9b::c613:2"), SrcPort: 7, DstPort: 7, Proto: ipproto.ICMPv6},
			{Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.MustParseAddr("198.18.255.1"), SrcPort: 7, DstPort: 1024, Proto: ipproto.ICMPv4},
		},
		Tag: 16, Created: -5, Expires: 60e9,
	}
	return []FlowRecord{v4, v6}
}

func TestRecordBinaryRoundTrip(t *testing.T) {
	for _, r := range sampleRecords() {
		b, _ := r.AppendBinary([]byte{0xee})
		var m FlowRecord
		if err := m.UnmarshalBinary(b[1:]); err != nil || m != r {
			t.Fatalf("restored %+v (%v), want %+v", m, err, r)
		}
	}
	// The state file layout: the first tuple's source address comes first,
	// with its length.
	r := sampleRecords()[0]
	b, _ := r.AppendBinary(nil)
	if !bytes.HasPrefix(b, []byte{4, 198, 18, 0, 2, 4, 198, 19, 0, 2, 0x9c, 0x40, 0, 21, 6}) || len(b) != 2*(5+5+5)+3+16 {
		t.Fatalf("encoding % x", b)
	}
	// An IPv4-mapped address is written as IPv4.
	mapped := r
	mapped.Tuples[Original].Src = netip.MustParseAddr("::ffff:198.18.0.2")
	if mb, _ := mapped.AppendBinary(nil); !bytes.Equal(mb, b) {
		t.Fatalf("mapped address encoded as % x", mb)
	}
}

func TestRecordBinaryRefused(t *testing.T) {
	r := sampleRecords()[0]
	good, _ := r.AppendBinary(nil)
	bad16 := append([]byte{16}, netip.MustParseAddr("::ffff:1.2.3.4").AsSlice()...)
	for name, data := range map[string][]byte{
		"empty":          nil,
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte(nil), good...), 0),
		"address size 5": append([]byte{5}, good[1:]...),
		"IPv4-mapped":    append(bad16, good[5:]...),
	} {
		m := r
		if err := m.UnmarshalBinary(data); !errors.Is(err, ErrRecordFormat) {
			t.Errorf("%s: %v", name, err)
		}
		if m != r {
			t.Errorf("%s: record changed on error", name)
		}
	}
}

// FuzzFlowRecord checks that any bytes either decode to a record whose
// encoding is those bytes again, or are refused; never a panic.
func FuzzFlowRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		b, _ := r.AppendBinary(nil)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r FlowRecord
		if err := r.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrRecordFormat) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again, _ := r.AppendBinary(nil)
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoded % x, read % x", again, data)
		}
		if r.Check() == nil {
			_ = RestoreFlow(r).Record()
		}
	})
}
