package nat

import (
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/ipproto"
)

// TestHoldKernelData: a public port held by a data connection the kernel
// translates is not handed to the next PORT (whose data connection, from
// the same server port 20, would have the held one's 5-tuple); the hold is
// one per connection, refused for a port bound elsewhere or an address
// that is not public, and its release frees the port.
func TestHoldKernelData(t *testing.T) {
	sink := &recordingSink{}
	e, ctl := splitEngine(t, sink)
	bindings := e.Bindings()
	// the port the allocator would hand out next: the one after the
	// control connection's
	next := netip.AddrPortFrom(pubIP, ctl.Port()+1)
	running := netip.MustParseAddrPort("198.18.0.2:41000") // the running transfer's listener
	if !e.HoldKernelData(ipproto.TCP, running, next) {
		t.Fatalf("hold of %v for %v refused", next, running)
	}
	if !e.HoldKernelData(ipproto.TCP, running, next) || e.KernelDataHolds() != 1 || e.Bindings() != bindings+1 {
		t.Fatalf("a second hold of the same connection: %d holds, %d bindings (want 1, %d)", e.KernelDataHolds(), e.Bindings(), bindings+1)
	}
	if e.HoldKernelData(ipproto.TCP, netip.MustParseAddrPort("198.18.0.3:40000"), next) {
		t.Errorf("hold of %v for a second endpoint accepted", next)
	}
	if e.HoldKernelData(ipproto.TCP, running, netip.MustParseAddrPort("198.19.0.2:49999")) {
		t.Errorf("hold of a port of an address that is not public accepted")
	}
	// PORT 198,18,0,2,19,137 (port 5001): its public port is not the held one
	mustSend(t, e, cmd(1001, "PORT 198,18,0,2,19,137\r\n"))
	if len(sink.installed) != 1 {
		t.Fatalf("%d expectations installed, want 1", len(sink.installed))
	}
	if got := sink.installed[0].DstPort; got == next.Port() {
		t.Errorf("the PORT's expectation got public port %d, held by the running data connection", got)
	}
	if held := e.KernelDataHeld(); len(held) != 1 || held[0] != (KernelDataHold{Proto: ipproto.TCP, Inside: running, Public: next}) {
		t.Errorf("KernelDataHeld() = %+v, want the one hold of %v for %v", held, next, running)
	}
	e.ReleaseKernelData(ipproto.TCP, running, next)
	e.ReleaseKernelData(ipproto.TCP, running, next) // no hold: nothing
	if held := e.KernelDataHeld(); len(held) != 0 {
		t.Errorf("KernelDataHeld() after the release = %+v, want none", held)
	}
	if e.KernelDataHolds() != 0 || e.Bindings() != bindings+1 {
		t.Errorf("after the release: %d holds, %d bindings (want 0, %d: the expectation's)", e.KernelDataHolds(), e.Bindings(), bindings+1)
	}
	if !e.HoldKernelData(ipproto.TCP, netip.MustParseAddrPort("198.18.0.3:40000"), next) {
		t.Errorf("port %d not free after the release", next.Port())
	}
}
