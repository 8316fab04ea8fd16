package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
)

// recordingSink is an ExpectationSink that remembers what it was told.
type recordingSink struct {
	installed, removed []conntrack.Expectation
	fail               bool
}

func (s *recordingSink) ExpectationInstalled(x *conntrack.Expectation) error {
	if s.fail {
		return errors.New("refused")
	}
	s.installed = append(s.installed, *x)
	return nil
}

func (s *recordingSink) ExpectationRemoved(x *conntrack.Expectation) {
	s.removed = append(s.removed, *x)
}

// splitEngine is snatEngine as split mode configures it: natalg's ports
// 49152-65535 only, expectations told to sink. It opens the control
// connection (client ISN 1000, server ISN 5000, greeting) and returns the
// client's public endpoint.
func splitEngine(t *testing.T, sink *recordingSink) (*Engine, netip.AddrPort) {
	t.Helper()
	e, err := New(Config{
		Inside:  []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")},
		Public:  []netip.Addr{pubIP},
		PortMin: 49152, PortMax: 65535, StrictPorts: true,
		Expectations: sink,
	})
	if err != nil {
		t.Fatal(err)
	}
	o := mustSend(t, e, tcpSeg{src: cli, dst: srv, seq: 1000, flags: fSYN, mss: 1460})
	if o.SrcPort < 49152 {
		t.Fatalf("StrictPorts: inside port %d went out as %d, below the range", cli.Port(), o.SrcPort)
	}
	pub := netip.AddrPortFrom(pubIP, o.SrcPort)
	mustSend(t, e, tcpSeg{src: srv, dst: pub, seq: 5000, ack: 1001, flags: fSYN | fACK, mss: 1460})
	mustSend(t, e, tcpSeg{src: cli, dst: srv, seq: 1001, ack: 5001, flags: fACK})
	mustSend(t, e, tcpSeg{src: srv, dst: pub, seq: 5001, ack: 1001, flags: fACK | fPSH, payload: "220 hi\r\n"})
	return e, pub
}

// TestExpectationSink: the sink holds the expectation when the rewritten
// PORT leaves, exactly as the engine does; a refusal still rewrites the
// PORT; a use reported by the sink's side ends the expectation and its
// binding without telling the sink; a lapse tells it once per expectation.
func TestExpectationSink(t *testing.T) {
	sink := &recordingSink{}
	e, _ := splitEngine(t, sink)
	bindings := e.Bindings()

	// A refusal: the PORT still goes out rewritten (never with the inside
	// address), and the engine keeps the expectation, to remove it as usual.
	// (PORT 198,18,0,2,19,136 names port 5000.)
	sink.fail = true
	o := mustSend(t, e, cmd(1001, "PORT 198,18,0,2,19,136\r\n"))
	if len(sink.installed) != 0 || e.Table().ExpectationCount() != 1 || o.payload == "PORT 198,18,0,2,19,136\r\n" {
		t.Fatalf("refused by the sink: PORT out %q, %d installed, %d expectations in the engine", o.payload, len(sink.installed), e.Table().ExpectationCount())
	}
	sink.fail = false
	seq := 1001 + uint32(len("PORT 198,18,0,2,19,136\r\n"))
	o = mustSend(t, e, cmd(seq, "PORT 198,18,0,2,19,137\r\n"))
	seq += uint32(len("PORT 198,18,0,2,19,137\r\n"))
	if len(sink.installed) != 1 {
		t.Fatalf("sink told of %d expectations when the PORT left, want 1 (out %q)", len(sink.installed), o.payload)
	}
	// one pending per control connection: the refused one was evicted (the
	// sink hears of it; it never held it)
	if len(sink.removed) != 1 || sink.removed[0].Target.Port() != 5000 {
		t.Fatalf("the second PORT evicted %+v, want the refused expectation of port 5000", sink.removed)
	}
	x := sink.installed[0]
	want := fmt.Sprintf("PORT 198,19,100,100,%d,%d\r\n", x.DstPort>>8, x.DstPort&0xff)
	if o.payload != want || x.Src != srv.Addr() || x.Dst != pubIP || x.Target != netip.AddrPortFrom(cli.Addr(), 5001) || x.DstPort < 49152 {
		t.Fatalf("PORT out %q, sink got %+v; want %q from %v to the client's port 5001", o.payload, x, want, srv.Addr())
	}
	if x.Expires != t0.UnixNano()+int64(e.Table().Timeouts().Expectation) {
		t.Errorf("sink's expectation expires at %d, want now + the expectation timeout", x.Expires)
	}
	if !e.ExpectationUsed(ipproto.TCP, srv.Addr(), netip.AddrPortFrom(pubIP, x.DstPort), t0) {
		t.Fatal("ExpectationUsed found no expectation")
	}
	if e.Table().ExpectationCount() != 0 || e.Bindings() != bindings || len(sink.removed) != 1 {
		t.Fatalf("after use: %d expectations, %d bindings (want %d), sink told of %d removals (want 1)",
			e.Table().ExpectationCount(), e.Bindings(), bindings, len(sink.removed))
	}
	if e.ExpectationUsed(ipproto.TCP, srv.Addr(), netip.AddrPortFrom(pubIP, x.DstPort), t0) {
		t.Fatal("an expectation was used twice")
	}

	mustSend(t, e, cmd(seq, "PORT 198,18,0,2,19,138\r\n"))
	if len(sink.installed) != 2 {
		t.Fatalf("second PORT: sink told of %d expectations, want 2", len(sink.installed))
	}
	e.Expire(t0.Add(e.Table().Timeouts().Expectation + time.Second))
	if len(sink.removed) != 2 || sink.removed[1].Target.Port() != 5002 {
		t.Fatalf("lapsed expectation: sink told of removals %+v, want the one of port 5002 last", sink.removed)
	}
}
