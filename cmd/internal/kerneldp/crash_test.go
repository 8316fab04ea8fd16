package kerneldp

import (
	"net/netip"
	"testing"

	ct "github.com/ti-mo/conntrack"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
)

// kernelFlow reads the inside view out of an entry conntrack made: of an
// outbound control connection and of one to a forwarded FTP port.
func TestKernelFlowInsideView(t *testing.T) {
	tuple := func(src, dst string) ct.Tuple {
		s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
		return ct.Tuple{IP: ct.IPTuple{SourceAddress: s.Addr(), DestinationAddress: d.Addr()},
			Proto: ct.ProtoTuple{Protocol: uint8(ipproto.TCP), SourcePort: s.Port(), DestinationPort: d.Port()}}
	}
	want := conntrack.Tuple{Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.19.0.2"), SrcPort: 40000, DstPort: 21, Proto: ipproto.TCP}
	for _, c := range []struct {
		name        string
		orig, reply ct.Tuple
		want        conntrack.Tuple
	}{
		{"made by conntrack, outbound", tuple("198.18.0.2:40000", "198.19.0.2:21"), tuple("198.19.0.2:21", "198.18.0.2:40000"), want},
		{"made by conntrack, forward", tuple("198.19.0.2:40000", "198.18.0.2:21"), tuple("198.18.0.2:21", "198.19.0.2:40000"),
			conntrack.Tuple{Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.MustParseAddr("198.18.0.2"), SrcPort: 40000, DstPort: 21, Proto: ipproto.TCP}},
	} {
		if got := kernelFlow(&ct.Flow{TupleOrig: c.orig, TupleReply: c.reply}).Tuple; got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
