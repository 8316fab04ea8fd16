package conntrack

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/natalg/natalg/nat/ipproto"
)

// A flow's record carries its state, FINs, creation time and deadline into
// another table unchanged; the deadline is cut to the current timeout.
func TestRestoreKeepsRecord(t *testing.T) {
	tb := NewTable(Config{})
	f := snatFlow(40000)
	tb.Insert(f, 10*sec)
	f.Touch(Original, ipproto.TCPSYN, 10*sec, tb.Timeouts())
	f.Touch(Reply, ipproto.TCPSYN|ipproto.TCPACK, 11*sec, tb.Timeouts())
	f.Touch(Original, ipproto.TCPACK, 12*sec, tb.Timeouts())
	f.Touch(Reply, ipproto.TCPFIN|ipproto.TCPACK, 13*sec, tb.Timeouts())
	r := f.Record()
	if r.TCP != TCPFinWait || r.FINs != 2 || r.Created != 10*sec || r.Expires != 13*sec+int64(DefaultTimeouts.TCPEstablished) {
		t.Fatalf("record %+v", r)
	}
	t2 := NewTable(Config{})
	g := RestoreFlow(r)
	if err := t2.Restore(g, 20*sec); err != nil {
		t.Fatal(err)
	}
	if got := g.Record(); got != r {
		t.Fatalf("restored %+v, want %+v", got, r)
	}
	if h, d := t2.Lookup(r.Tuples[Reply], 20*sec); h != g || d != Reply {
		t.Fatal("restored flow not found by its reply tuple")
	}
	// the FIN of the other direction closes it, as it would have
	g.Touch(Original, ipproto.TCPFIN|ipproto.TCPACK, 21*sec, t2.Timeouts())
	if g.State() != TCPClosing {
		t.Fatalf("state %v after both FINs", g.State())
	}
	if t2.Stats.FlowsCreated.Load() != 0 {
		t.Fatal("a restored flow counted as created")
	}
	// shorter timeouts now: the deadline is cut (half-closed has the
	// established timeout, RFC 5382 §5 REQ-5)
	t3 := NewTable(Config{Timeouts: Timeouts{TCPEstablished: time.Minute, TCPTransitory: time.Second, UDP: 1, ICMP: 1, Other: 1, Expectation: 1}})
	g = RestoreFlow(r)
	if err := t3.Restore(g, 20*sec); err != nil || g.Expires() != 80*sec {
		t.Fatalf("cut deadline %d (%v), want %d", g.Expires(), err, 80*sec)
	}
}

func TestRestoreRefusals(t *testing.T) {
	tb := NewTable(Config{MaxFlows: 2})
	r := snatFlow(40000).Record()
	r.Expires = 100 * sec
	if err := tb.Restore(RestoreFlow(r), 100*sec); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := tb.Restore(RestoreFlow(r), 50*sec); err != nil {
		t.Fatal(err)
	}
	if err := tb.Restore(RestoreFlow(r), 50*sec); !errors.Is(err, ErrExists) {
		t.Fatalf("twice: %v", err)
	}
	bad := r
	bad.Tuples[Reply] = bad.Tuples[Original]
	if err := tb.Restore(RestoreFlow(bad), 50*sec); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("equal tuples: %v", err)
	}
	bad = r
	bad.TCP = 9
	if err := tb.Restore(RestoreFlow(bad), 50*sec); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("TCP state 9: %v", err)
	}
	bad = r
	bad.Tuples[Reply].Dst = netip.MustParseAddr("2001:db8::1")
	if err := tb.Restore(RestoreFlow(bad), 50*sec); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("mixed families: %v", err)
	}
	r2 := snatFlow(40001).Record()
	r2.Expires = 100 * sec
	if err := tb.Restore(RestoreFlow(r2), 50*sec); err != nil {
		t.Fatal(err)
	}
	r3 := snatFlow(40002).Record()
	r3.Expires = 100 * sec
	if err := tb.Restore(RestoreFlow(r3), 50*sec); !errors.Is(err, ErrFull) {
		t.Fatalf("full: %v", err)
	}
	if tb.Len() != 2 {
		t.Fatalf("Len %d", tb.Len())
	}
}

func TestRestoreExpectation(t *testing.T) {
	tb := NewTable(Config{MaxExpectations: 1})
	m := snatFlow(40000)
	tb.Insert(m, 0)
	x := &Expectation{Proto: ipproto.TCP, Src: remote, Dst: public, DstPort: 50000,
		Target: netip.AddrPortFrom(inside, 50000), Master: m, Created: 1, Expires: 1000 * sec}
	if err := tb.RestoreExpectation(x, 0); err != nil {
		t.Fatal(err)
	}
	if x.Expires != int64(DefaultTimeouts.Expectation) || x.Created != 1 {
		t.Fatalf("deadline %d created %d", x.Expires, x.Created)
	}
	y := *x
	y.DstPort = 50001
	if err := tb.RestoreExpectation(&y, 0); !errors.Is(err, ErrExpectFull) {
		t.Fatalf("full: %v", err)
	}
	if got := tb.TakeExpectation(ipproto.TCP, remote, public, 50000, sec); got != x {
		t.Fatal("restored expectation not taken")
	}
	if err := tb.RestoreExpectation(&y, 400*sec); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	tb.Remove(m)
	if err := tb.RestoreExpectation(&y, 0); !errors.Is(err, ErrMasterGone) {
		t.Fatalf("master removed: %v", err)
	}
}

// A NAT64 echo flow (ICMPv6 on its IPv6 side, ICMP on its IPv4 side) is
// consistent; other protocol pairs are not.
func TestRecordCheckNAT64ICMP(t *testing.T) {
	r := FlowRecord{Tuples: [2]Tuple{
		{Src: netip.MustParseAddr("fd00:64::2"), Dst: netip.MustParseAddr("2001:db8:64::c612:4002"), SrcPort: 99, Proto: ipproto.ICMPv6},
		{Src: netip.MustParseAddr("198.18.64.2"), Dst: netip.MustParseAddr("198.19.64.1"), DstPort: 99, Proto: ipproto.ICMPv4},
	}, Expires: 100 * sec}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	if err := NewTable(Config{}).Restore(RestoreFlow(r), 50*sec); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]ipproto.Proto{{ipproto.ICMPv4, ipproto.ICMPv6}, {ipproto.ICMPv6, ipproto.TCP}, {ipproto.UDP, ipproto.ICMPv4}, {ipproto.ICMPv6, ipproto.ICMPv6 + 1}} {
		bad := r
		bad.Tuples[Original].Proto, bad.Tuples[Reply].Proto = c[0], c[1]
		if err := bad.Check(); !errors.Is(err, ErrBadRecord) {
			t.Errorf("protocols %v: %v", c, err)
		}
	}
	// ICMPv6 and ICMP within one family: not a NAT64 flow
	bad := r
	bad.Tuples[Reply].Src, bad.Tuples[Reply].Dst = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	if err := bad.Check(); !errors.Is(err, ErrBadRecord) {
		t.Errorf("one family: %v", err)
	}
}

// TestRestoreHalfClosedFromOlderVersion: a state file written before
// half-closed flows kept the established timeout holds FIN_WAIT flows with
// a 4-minute deadline. They load unchanged (same state numbers, deadline
// kept), and their next packet gives them the established timeout.
func TestRestoreHalfClosedFromOlderVersion(t *testing.T) {
	f := snatFlow(40000)
	r := f.Record()
	r.TCP, r.FINs = TCPFinWait, 1
	r.Created, r.Expires = 0, 10*sec+int64(4*time.Minute)
	tb := NewTable(Config{})
	g := RestoreFlow(r)
	if err := tb.Restore(g, 10*sec); err != nil {
		t.Fatal(err)
	}
	if got := g.Record(); got != r {
		t.Fatalf("restored %+v, want %+v", got, r)
	}
	g.Touch(Reply, ipproto.TCPACK, 20*sec, tb.Timeouts())
	if g.State() != TCPFinWait || g.Expires() != 20*sec+int64(DefaultTimeouts.TCPEstablished) {
		t.Fatalf("after a packet: %v, expires %v", g.State(), time.Duration(g.Expires()))
	}
}
