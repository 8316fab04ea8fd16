package header

import (
	"testing"

	"github.com/natalg/natalg/nat/ipproto"
)

// TestClampMSS: the MSS option of a SYN is lowered to the limit with the TCP
// checksum kept right, whether the option starts a checksum word or sits
// after a NOP (its value then spans two words); a lower MSS, a segment
// without SYN and a SYN without the option are left alone.
func TestClampMSS(t *testing.T) {
	for _, c := range []struct {
		name  string
		opts  []byte
		flags ipproto.TCPFlags
		mss   uint16
		want  uint16
		moved bool
	}{
		{"aligned", cat(optMSS(1460), []byte{1, 1, 1, 0}), ipproto.TCPSYN, 1460, 1440, true},
		{"after a NOP", cat([]byte{1}, optMSS(1460), []byte{1, 1, 0}), ipproto.TCPSYN | ipproto.TCPACK, 1460, 1440, true},
		{"already lower", cat(optMSS(1200), []byte{1, 1, 1, 0}), ipproto.TCPSYN, 1200, 1200, false},
		{"no SYN", cat(optMSS(1460), []byte{1, 1, 1, 0}), ipproto.TCPACK, 0, 0, false},
		{"no option", []byte{1, 1, 1, 0}, ipproto.TCPSYN, 0, 0, false},
	} {
		for _, pkt := range [][]byte{
			v4("198.18.0.1", "198.18.0.2", ipproto.TCP, tcpSeg(1, 2, 3, 4, c.flags, c.opts, nil), v4opts{}),
			v6("2001:db8::1", "2001:db8::2", nil, ipproto.TCP, tcpSeg(1, 2, 3, 4, c.flags, c.opts, nil), false),
		} {
			var p Parsed
			if r := p.Decode(pkt); r != Ok {
				t.Fatalf("%s: %v", c.name, r)
			}
			if p.MSS != c.mss {
				t.Fatalf("%s: decoded MSS %d", c.name, p.MSS)
			}
			if moved := p.ClampMSS(1440); moved != c.moved || p.MSS != c.want {
				t.Errorf("%s v%d: ClampMSS = %v, MSS %d; want %v, %d", c.name, p.Version, moved, p.MSS, c.moved, c.want)
			}
			if !p.TCPChecksumValid() {
				t.Errorf("%s v%d: bad checksum after ClampMSS", c.name, p.Version)
			}
			var q Parsed
			if q.Decode(pkt); q.MSS != c.want {
				t.Errorf("%s v%d: MSS %d on the wire, want %d", c.name, p.Version, q.MSS, c.want)
			}
		}
	}
}

// TestClearTCPUrgentAndFlags: URG and the Urgent Pointer are cleared, other
// bits kept; SetTCPFlags replaces the bits; the checksum stays right.
func TestClearTCPUrgentAndFlags(t *testing.T) {
	seg := tcpSeg(1, 2, 3, 4, ipproto.TCPACK|ipproto.TCPPSH|ipproto.TCPURG, nil, []byte("ABOR\r\n"))
	seg[18], seg[19] = 0, 4 // urgent pointer
	pkt := v4("198.18.0.1", "198.18.0.2", ipproto.TCP, seg, v4opts{})
	var p Parsed
	if r := p.Decode(pkt); r != Ok {
		t.Fatal(r)
	}
	if !p.TCPChecksumValid() {
		t.Fatal("bad checksum to start with")
	}
	if !p.ClearTCPUrgent() || p.TCPFlags != ipproto.TCPACK|ipproto.TCPPSH || p.TCP().Urgent() != 0 || p.TCP().Flags() != ipproto.TCPACK|ipproto.TCPPSH {
		t.Fatalf("after ClearTCPUrgent: flags %#x on the wire %#x, urgent %d", p.TCPFlags, p.TCP().Flags(), p.TCP().Urgent())
	}
	if !p.TCPChecksumValid() {
		t.Error("bad checksum after ClearTCPUrgent")
	}
	if !p.SetTCPFlags(ipproto.TCPRST|ipproto.TCPACK) || p.TCP().Flags() != ipproto.TCPRST|ipproto.TCPACK || p.TCP().DataOffset() != 5 {
		t.Fatalf("after SetTCPFlags: %#x, data offset %d", p.TCP().Flags(), p.TCP().DataOffset())
	}
	if !p.TCPChecksumValid() {
		t.Error("bad checksum after SetTCPFlags")
	}
}
