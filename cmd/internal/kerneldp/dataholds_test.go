package kerneldp

import (
	"net/netip"
	"testing"

	ct "github.com/ti-mo/conntrack"

	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

// dataFlow is a conntrack entry from orig's source to its destination,
// answered from replySrc (DNAT when replySrc is not orig's destination).
func dataFlow(mark uint32, src, dst, replySrc netip.AddrPort) ct.Flow {
	var f ct.Flow
	f.Mark = mark
	f.TupleOrig.IP.SourceAddress, f.TupleOrig.IP.DestinationAddress = src.Addr(), dst.Addr()
	f.TupleOrig.Proto.Protocol, f.TupleOrig.Proto.SourcePort, f.TupleOrig.Proto.DestinationPort = uint8(ipproto.TCP), src.Port(), dst.Port()
	f.TupleReply.IP.SourceAddress, f.TupleReply.IP.DestinationAddress = replySrc.Addr(), src.Addr()
	f.TupleReply.Proto.Protocol, f.TupleReply.Proto.SourcePort, f.TupleReply.Proto.DestinationPort = uint8(ipproto.TCP), replySrc.Port(), src.Port()
	return f
}

// dataEngine is a split-mode engine with public address 198.19.100.100
// and natalg's ports from 49152.
func dataEngine(t *testing.T) *nat.Engine {
	t.Helper()
	eng, err := nat.New(nat.Config{
		Inside:  []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")},
		Public:  []netip.Addr{netip.MustParseAddr("198.19.100.100")},
		PortMin: 49152, PortMax: 65535, StrictPorts: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// TestHoldDataConnections: of a kernel table, the data connections DNATed
// through natalg's expectations (data mark, to the public address) hold
// their public ports; a masqueraded passive data connection, an unmarked
// DNAT and a data connection in TIME_WAIT do not.
func TestHoldDataConnections(t *testing.T) {
	eng := dataEngine(t)
	ap := netip.MustParseAddrPort
	server20, public := ap("198.19.0.2:20"), ap("198.19.100.100:49153")
	dump := []ct.Flow{
		// active mode: server port 20 -> public 49153, DNAT to the client's listener
		dataFlow(CtMarkData, server20, public, ap("198.18.0.2:41000")),
		// the same without the data mark: not natalg's
		dataFlow(0, server20, ap("198.19.100.100:49160"), ap("198.18.0.2:41001")),
		// passive mode from an inside client: masqueraded by the kernel
		dataFlow(CtMarkData, ap("198.18.0.2:41002"), ap("198.19.0.2:12323"), ap("198.19.0.2:12323")),
		// an active-mode one that has ended (TIME_WAIT): a SYN may reopen it
		dataFlow(CtMarkData, server20, ap("198.19.100.100:49170"), ap("198.18.0.2:41003")),
	}
	dump[3].ProtoInfo.TCP = &ct.ProtoInfoTCP{State: ctTCPTimeWait}
	if n := holdDataConnections(eng, dump); n != 1 || eng.KernelDataHolds() != 1 {
		t.Fatalf("held %d (engine: %d), want 1: the active-mode data connection", n, eng.KernelDataHolds())
	}
	if eng.HoldKernelData(ipproto.TCP, ap("198.18.0.3:41000"), public) {
		t.Errorf("public port %d handed to another endpoint while the data connection holds it", public.Port())
	}
	inside, pub, ok := dataEndpoints(&dump[0])
	if !ok || inside != ap("198.18.0.2:41000") || pub != public {
		t.Errorf("dataEndpoints: %v %v %v", inside, pub, ok)
	}
	eng.ReleaseKernelData(ipproto.TCP, inside, pub)
	if eng.KernelDataHolds() != 0 || !eng.HoldKernelData(ipproto.TCP, ap("198.18.0.3:41000"), public) {
		t.Errorf("public port %d not free after the destroy", public.Port())
	}
}
