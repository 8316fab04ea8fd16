package nat

import (
	"net/netip"
	"time"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
)

// ExpectationSink is told of the FTP expectations the engine installs and
// removes (NAT44 and NAT66; NAT64's stay in the engine). Split mode uses it
// to carry the data connection in the kernel: the engine still translates
// the control connection, and the kernel admits and translates the
// connection the expectation announces. The engine calls it synchronously;
// it must not call back into the engine.
type ExpectationSink interface {
	// ExpectationInstalled is called before the segment announcing x
	// leaves, with x.Expires set. On an error the announcement is still
	// rewritten and x still kept by the engine (so it is removed as usual):
	// the sink failed to admit the connection, which then fails (closed).
	ExpectationInstalled(x *conntrack.Expectation) error
	// ExpectationRemoved is called once when x goes unused: it lapsed, was
	// evicted or replaced, or its control connection is gone. It is called
	// for an x whose installation the table then refused, too.
	ExpectationRemoved(x *conntrack.Expectation)
}

// SetExpectationSink sets Config.Expectations; call it before the first
// packet.
func (e *Engine) SetExpectationSink(s ExpectationSink) { e.cfg.Expectations = s }

// ExpectationUsed removes the pending expectation of proto from peer to
// public and releases the public port it held: the sink saw its connection
// appear outside the engine (split mode: in the kernel). It reports whether
// there was one. The sink is not called for it.
func (e *Engine) ExpectationUsed(proto ipproto.Proto, peer netip.Addr, public netip.AddrPort, now time.Time) bool {
	x := e.table.TakeExpectation(proto, peer, public.Addr(), public.Port(), now.UnixNano())
	if x == nil {
		return false
	}
	e.ports.release(endpoint{addr: x.Target.Addr(), port: x.Target.Port(), proto: x.Proto})
	return true
}
