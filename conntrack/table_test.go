package conntrack

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/natalg/natalg/nat/ipproto"
)

var (
	inside = netip.MustParseAddr("198.18.0.2")
	public = netip.MustParseAddr("198.19.100.100")
	remote = netip.MustParseAddr("198.19.0.2")
)

// snatFlow is a flow from inside:sport to remote:21 masqueraded to public:sport.
func snatFlow(sport uint16) *Flow {
	o := Tuple{Src: inside, Dst: remote, SrcPort: sport, DstPort: 21, Proto: ipproto.TCP}
	r := Tuple{Src: remote, Dst: public, SrcPort: 21, DstPort: sport, Proto: ipproto.TCP}
	return NewFlow(o, r)
}

const sec = int64(time.Second)

func TestInsertLookupBothDirections(t *testing.T) {
	tb := NewTable(Config{})
	f := snatFlow(40000)
	if g, _, err := tb.Insert(f, 0); err != nil || g != f {
		t.Fatalf("Insert: %v %v", g, err)
	}
	if g, d := tb.Lookup(f.Tuples[Original], 1); g != f || d != Original {
		t.Fatalf("original lookup: %v %v", g, d)
	}
	if g, d := tb.Lookup(f.Tuples[Reply], 1); g != f || d != Reply {
		t.Fatalf("reply lookup: %v %v", g, d)
	}
	if g, _ := tb.Lookup(f.Tuples[Original].Reverse(), 1); g != nil {
		t.Fatal("the reverse of the original tuple is not the reply tuple under NAT")
	}
	// A racing insert of the same original tuple returns the first flow.
	if g, d, err := tb.Insert(snatFlow(40000), 0); err != nil || g != f || d != Original {
		t.Fatalf("second insert: %v %v %v", g, d, err)
	}
	if tb.Len() != 1 {
		t.Fatalf("Len %d", tb.Len())
	}
}

func TestInsertClash(t *testing.T) {
	tb := NewTable(Config{})
	tb.Insert(snatFlow(40000), 0)
	// Another inside host mapped to the same public port towards the same
	// remote endpoint would make replies ambiguous.
	o := Tuple{Src: netip.MustParseAddr("198.18.0.3"), Dst: remote, SrcPort: 40000, DstPort: 21, Proto: ipproto.TCP}
	r := Tuple{Src: remote, Dst: public, SrcPort: 21, DstPort: 40000, Proto: ipproto.TCP}
	if _, _, err := tb.Insert(NewFlow(o, r), 0); !errors.Is(err, ErrClash) {
		t.Fatalf("err %v, want ErrClash", err)
	}
}

func TestTableFullKeepsExistingFlows(t *testing.T) {
	tb := NewTable(Config{MaxFlows: 3})
	flows := []*Flow{snatFlow(1), snatFlow(2), snatFlow(3)}
	for _, f := range flows {
		if _, _, err := tb.Insert(f, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tb.Insert(snatFlow(4), 0); !errors.Is(err, ErrFull) {
		t.Fatalf("err %v, want ErrFull", err)
	}
	if tb.Stats.FlowsRejectedFull.Load() != 1 {
		t.Fatal("full rejection not counted")
	}
	for _, f := range flows {
		if g, _ := tb.Lookup(f.Tuples[Reply], 1); g != f {
			t.Fatal("existing flow lost when table full")
		}
	}
	// Once one expires and is swept, a new flow fits.
	flows[0].SetTimeout(0, time.Second)
	if n := tb.Sweep(2 * sec); n != 1 {
		t.Fatalf("swept %d", n)
	}
	if _, _, err := tb.Insert(snatFlow(4), 2*sec); err != nil {
		t.Fatal(err)
	}
}

func TestExpiredFlowIsAbsentAndReplaced(t *testing.T) {
	var removed []*Flow
	tb := NewTable(Config{FlowRemoved: func(f *Flow) { removed = append(removed, f) }})
	f := snatFlow(40000)
	tb.Insert(f, 0)
	f.Touch(Original, ipproto.TCPSYN, 0, tb.Timeouts())
	if got := f.Expires(); got != int64(4*time.Minute) {
		t.Fatalf("SYN_SENT timeout %v, want 4m (RFC 5382 transitory)", time.Duration(got))
	}
	late := int64(5 * time.Minute)
	if g, _ := tb.Lookup(f.Tuples[Original], late); g != nil {
		t.Fatal("expired flow still found")
	}
	g := snatFlow(40000)
	if h, _, err := tb.Insert(g, late); err != nil || h != g {
		t.Fatalf("insert over expired: %v %v", h, err)
	}
	if len(removed) != 1 || removed[0] != f {
		t.Fatalf("FlowRemoved calls %v", removed)
	}
}

func TestTCPStatesAndTimeouts(t *testing.T) {
	to := &DefaultTimeouts
	f := snatFlow(1)
	steps := []struct {
		dir   Dir
		flags ipproto.TCPFlags
		want  TCPState
		tmo   time.Duration
	}{
		{Original, ipproto.TCPSYN, TCPSynSent, 4 * time.Minute},
		{Reply, ipproto.TCPSYN | ipproto.TCPACK, TCPSynRecv, 4 * time.Minute},
		{Original, ipproto.TCPACK, TCPEstablished, 2*time.Hour + 4*time.Minute},
		{Reply, ipproto.TCPACK, TCPEstablished, 2*time.Hour + 4*time.Minute},
		// RFC 5382 §5 REQ-5: half-closed is still the established phase
		{Original, ipproto.TCPFIN | ipproto.TCPACK, TCPFinWait, 2*time.Hour + 4*time.Minute},
		{Reply, ipproto.TCPACK, TCPFinWait, 2*time.Hour + 4*time.Minute},
		{Reply, ipproto.TCPFIN | ipproto.TCPACK, TCPClosing, 4 * time.Minute},
		{Original, ipproto.TCPSYN, TCPSynSent, 4 * time.Minute}, // port reuse
		{Reply, ipproto.TCPRST, TCPClosed, 4 * time.Minute},     // RFC 7857 §2.2
	}
	for i, s := range steps {
		f.Touch(s.dir, s.flags, 0, to)
		if f.State() != s.want || f.Expires() != int64(s.tmo) {
			t.Fatalf("step %d: state %v expires %v, want %v %v", i, f.State(), time.Duration(f.Expires()), s.want, s.tmo)
		}
	}
	picked := snatFlow(2)
	picked.Touch(Original, ipproto.TCPACK, 0, to)
	if picked.State() != TCPEstablished {
		t.Fatalf("mid-stream pickup state %v", picked.State())
	}
	// Picked up at a FIN (a late retransmission after the flow went): the
	// transitory timeout, not the established one.
	late := snatFlow(3)
	late.Touch(Reply, ipproto.TCPFIN|ipproto.TCPACK, 0, to)
	if late.State() != TCPClosing || late.Expires() != int64(4*time.Minute) {
		t.Fatalf("pickup at a FIN: %v, expires %v", late.State(), time.Duration(late.Expires()))
	}
	u := NewFlow(Tuple{Proto: ipproto.UDP}, Tuple{Proto: ipproto.UDP, SrcPort: 1})
	u.Touch(Original, 0, 0, to)
	if u.Expires() != int64(5*time.Minute) {
		t.Fatal("udp timeout")
	}
}

func exp(master *Flow, port uint16) *Expectation {
	return &Expectation{Proto: ipproto.TCP, Src: remote, Dst: public, DstPort: port,
		Target: netip.AddrPortFrom(inside, port), Master: master}
}

func TestExpectationOneShotAndTimeout(t *testing.T) {
	tb := NewTable(Config{})
	m := snatFlow(40000)
	tb.Insert(m, 0)
	m.SetTimeout(0, time.Hour) // the master outlives its expectations
	if err := tb.Expect(exp(m, 50000), 0); err != nil {
		t.Fatal(err)
	}
	if tb.TakeExpectation(ipproto.TCP, netip.MustParseAddr("198.19.0.99"), public, 50000, sec) != nil {
		t.Fatal("a third party took the expectation")
	}
	if e := tb.TakeExpectation(ipproto.TCP, remote, public, 50000, sec); e == nil || e.Target.Port() != 50000 {
		t.Fatal("expectation not taken")
	}
	if tb.TakeExpectation(ipproto.TCP, remote, public, 50000, sec) != nil {
		t.Fatal("expectation used twice")
	}
	tb.Expect(exp(m, 50001), 0)
	if tb.TakeExpectation(ipproto.TCP, remote, public, 50001, 301*sec) != nil {
		t.Fatal("expectation outlived 300 s")
	}
	tb.Sweep(301 * sec)
	if tb.ExpectationCount() != 0 || tb.Stats.ExpectationsExpired.Load() != 1 {
		t.Fatalf("sweep left %d, expired %d", tb.ExpectationCount(), tb.Stats.ExpectationsExpired.Load())
	}
}

func TestExpectationPerMasterAndGlobalCap(t *testing.T) {
	var gone []*Expectation
	tb := NewTable(Config{MaxExpectations: 3, ExpectationRemoved: func(e *Expectation) { gone = append(gone, e) }})
	m := snatFlow(40000)
	tb.Insert(m, 0)
	e1, e2 := exp(m, 50000), exp(m, 50001)
	tb.Expect(e1, 0)
	tb.Expect(e2, 0) // the newest replaces the oldest (max 1 per master)
	if tb.ExpectationCount() != 1 || len(gone) != 1 || gone[0] != e1 {
		t.Fatalf("count %d gone %v", tb.ExpectationCount(), gone)
	}
	for p := uint16(2); p <= 3; p++ {
		mm := snatFlow(p)
		tb.Insert(mm, 0)
		if err := tb.Expect(exp(mm, 50000+p), 0); err != nil {
			t.Fatal(err)
		}
	}
	mm := snatFlow(9)
	tb.Insert(mm, 0)
	if err := tb.Expect(exp(mm, 50009), 0); !errors.Is(err, ErrExpectFull) {
		t.Fatalf("err %v, want ErrExpectFull", err)
	}
	// Removing the master removes its expectation.
	tb.Remove(m)
	if tb.TakeExpectation(ipproto.TCP, remote, public, 50001, 1) != nil {
		t.Fatal("expectation outlived its master")
	}
	if err := tb.Expect(exp(m, 50005), 0); !errors.Is(err, ErrMasterGone) {
		t.Fatalf("err %v, want ErrMasterGone", err)
	}
}

// TestConcurrentWorkers runs several workers inserting, looking up, touching
// and sweeping one table; run with -race.
func TestConcurrentWorkers(t *testing.T) {
	tb := NewTable(Config{MaxFlows: 5000})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				f := snatFlow(uint16(i))
				g, d, err := tb.Insert(f, int64(i))
				if err != nil {
					t.Error(err)
					return
				}
				g.Touch(d, ipproto.TCPSYN, int64(i), tb.Timeouts())
				if h, _ := tb.Lookup(g.Tuples[Reply], int64(i)); h == nil {
					t.Error("lookup after insert failed")
					return
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			tb.Sweep(0)
		}
	}()
	wg.Wait()
	if tb.Len() != 2000 {
		t.Fatalf("Len %d, want 2000", tb.Len())
	}
	tb.Sweep(int64(time.Hour))
	if tb.Len() != 0 {
		t.Fatalf("Len after sweep %d", tb.Len())
	}
}

func BenchmarkLookup(b *testing.B) {
	tb := NewTable(Config{})
	for i := 0; i < 10000; i++ {
		tb.Insert(snatFlow(uint16(i)), 0)
	}
	tu := snatFlow(1234).Tuples[Reply]
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if f, _ := tb.Lookup(tu, 1); f == nil {
			b.Fatal("miss")
		}
	}
}

// established drives f through a handshake at now.
func established(f *Flow, now int64, to *Timeouts) {
	f.Touch(Original, ipproto.TCPSYN, now, to)
	f.Touch(Reply, ipproto.TCPSYN|ipproto.TCPACK, now, to)
	f.Touch(Original, ipproto.TCPACK, now, to)
}

// TestHalfClosedOutlivesTransitory: RFC 5382 §5 REQ-5 puts FIN_WAIT and
// CLOSE_WAIT in the established phase. A connection half-closed by one FIN
// and then idle for more than 4 minutes of engine time stays; once the
// other FIN is seen it goes after the transitory timeout.
func TestHalfClosedOutlivesTransitory(t *testing.T) {
	tb := NewTable(Config{})
	to := tb.Timeouts()
	f := snatFlow(40000)
	tb.Insert(f, 0)
	established(f, 0, to)
	f.Touch(Original, ipproto.TCPFIN|ipproto.TCPACK, sec, to) // the client shuts down its sending side
	idle := sec + int64(4*time.Minute) + 30*sec
	if n := tb.Sweep(idle); n != 0 {
		t.Fatalf("a half-closed connection idle for 4m30s was swept (%d flows)", n)
	}
	if g, d := tb.Lookup(f.Tuples[Reply], idle); g != f || d != Reply || f.State() != TCPFinWait {
		t.Fatalf("half-closed flow after 4m30s: %v %v %v", g, d, f.State())
	}
	// The server goes on sending (CLOSE_WAIT on its side), an hour later.
	later := int64(time.Hour)
	f.Touch(Reply, ipproto.TCPACK, later, to)
	if got := f.Expires() - later; got != int64(to.TCPEstablished) {
		t.Fatalf("half-closed timeout %v, want the established %v", time.Duration(got), to.TCPEstablished)
	}
	// Its FIN closes the connection: the transitory timeout applies.
	f.Touch(Reply, ipproto.TCPFIN|ipproto.TCPACK, later, to)
	if f.State() != TCPClosing || f.Expires()-later != int64(4*time.Minute) {
		t.Fatalf("after both FINs: %v, %v", f.State(), time.Duration(f.Expires()-later))
	}
	if n := tb.Sweep(later + int64(4*time.Minute) - sec); n != 0 {
		t.Fatal("closed connection swept before the transitory timeout")
	}
	if n := tb.Sweep(later + int64(4*time.Minute) + sec); n != 1 || tb.Len() != 0 {
		t.Fatalf("closed connection not swept after the transitory timeout (%d)", n)
	}
}

// TestRSTThenDataReestablishes: RFC 7857 §2.2 and RFC 6146 §3.5.2.2 (TRANS):
// a RST gives the flow the transitory timeout without removing it, and a
// later non-RST segment (the RST was spoofed or lost) returns it to
// ESTABLISHED with the established timeout.
func TestRSTThenDataReestablishes(t *testing.T) {
	tb := NewTable(Config{})
	to := tb.Timeouts()
	f := snatFlow(40000)
	tb.Insert(f, 0)
	established(f, 0, to)
	f.Touch(Reply, ipproto.TCPRST, 10*sec, to)
	if f.State() != TCPClosed || f.Expires() != 10*sec+int64(4*time.Minute) {
		t.Fatalf("after RST: %v, expires %v", f.State(), time.Duration(f.Expires()))
	}
	if n := tb.Sweep(10*sec + int64(3*time.Minute)); n != 0 {
		t.Fatal("flow removed less than 4 minutes after a RST")
	}
	at := 10*sec + int64(3*time.Minute)
	f.Touch(Original, ipproto.TCPACK, at, to)
	if f.State() != TCPEstablished || f.Expires() != at+int64(to.TCPEstablished) {
		t.Fatalf("data after RST: %v, timeout %v", f.State(), time.Duration(f.Expires()-at))
	}
	if n := tb.Sweep(at + int64(time.Hour)); n != 0 {
		t.Fatal("re-established flow swept after an hour")
	}
	// A RST after one FIN, then data: back to half-closed, not 4 minutes.
	f.Touch(Original, ipproto.TCPFIN|ipproto.TCPACK, at, to)
	f.Touch(Reply, ipproto.TCPRST, at, to)
	f.Touch(Reply, ipproto.TCPACK, at, to)
	if f.State() != TCPFinWait || f.Expires() != at+int64(to.TCPEstablished) {
		t.Fatalf("FIN, RST, data: %v, timeout %v", f.State(), time.Duration(f.Expires()-at))
	}
	// A RST alone, unanswered, ends the flow after the transitory timeout.
	f.Touch(Reply, ipproto.TCPRST, 2*at, to)
	if n := tb.Sweep(2*at + int64(4*time.Minute) + sec); n != 1 {
		t.Fatalf("reset flow not swept after the transitory timeout (%d)", n)
	}
}

// TestControlOutlivesActiveData: RFC 6384 §12, a control connection does
// not time out while a data connection it announced is active, even when
// the data connection outlasts the control connection's own timeout.
func TestControlOutlivesActiveData(t *testing.T) {
	to := Timeouts{TCPEstablished: 10 * time.Minute, TCPTransitory: 4 * time.Minute, UDP: 1, ICMP: 1, Other: 1, Expectation: time.Minute}
	tb := NewTable(Config{Timeouts: to})
	ctl := snatFlow(40000)
	tb.Insert(ctl, 0)
	established(ctl, 0, tb.Timeouts())
	o := Tuple{Src: remote, Dst: public, SrcPort: 20, DstPort: 50000, Proto: ipproto.TCP}
	r := Tuple{Src: inside, Dst: remote, SrcPort: 50000, DstPort: 20, Proto: ipproto.TCP}
	data := NewFlow(o, r)
	data.Master = ctl
	tb.Insert(data, 0)
	established(data, 0, tb.Timeouts())
	// An hour of transfer, a segment every minute; the control connection
	// says nothing (its own timeout is 10 minutes).
	for now := int64(0); now <= int64(time.Hour); now += int64(time.Minute) {
		data.Touch(Reply, ipproto.TCPACK, now, tb.Timeouts())
		tb.Sweep(now)
		if g, _ := tb.Lookup(ctl.Tuples[Original], now); g != ctl {
			t.Fatalf("control connection timed out at %v with an active data connection", time.Duration(now))
		}
	}
	// The transfer ends: the data connection closes, and the control
	// connection, idle, times out after its own timeout.
	end := int64(time.Hour)
	data.Touch(Reply, ipproto.TCPFIN|ipproto.TCPACK, end, tb.Timeouts())
	data.Touch(Original, ipproto.TCPFIN|ipproto.TCPACK, end, tb.Timeouts())
	tb.Sweep(end + int64(5*time.Minute))
	if g, _ := tb.Lookup(data.Tuples[Original], end+int64(5*time.Minute)); g != nil {
		t.Fatal("closed data connection outlived its transitory timeout")
	}
	if g, _ := tb.Lookup(ctl.Tuples[Original], end+int64(5*time.Minute)); g != ctl {
		t.Fatal("control connection gone before its own timeout")
	}
	if n := tb.Sweep(end + int64(11*time.Minute)); n != 1 || tb.Len() != 0 {
		t.Fatalf("idle control connection not swept after its timeout (%d, %d left)", n, tb.Len())
	}

	// A control connection closed first (QUIT while the data connection's
	// last segments are on their way) is not held by them: it goes after
	// the transitory timeout.
	ctl = snatFlow(40001)
	tb.Insert(ctl, 0)
	established(ctl, 0, tb.Timeouts())
	data = NewFlow(Tuple{Src: remote, Dst: public, SrcPort: 20, DstPort: 50001, Proto: ipproto.TCP},
		Tuple{Src: inside, Dst: remote, SrcPort: 50001, DstPort: 20, Proto: ipproto.TCP})
	data.Master = ctl
	tb.Insert(data, 0)
	established(data, 0, tb.Timeouts())
	ctl.Touch(Original, ipproto.TCPFIN|ipproto.TCPACK, sec, tb.Timeouts())
	ctl.Touch(Reply, ipproto.TCPFIN|ipproto.TCPACK, sec, tb.Timeouts())
	data.Touch(Reply, ipproto.TCPFIN|ipproto.TCPACK, 2*sec, tb.Timeouts()) // half-closed: established timeout
	if got := ctl.Expires(); got != sec+int64(to.TCPTransitory) {
		t.Fatalf("closed control connection held to %v by its data connection", time.Duration(got))
	}
}
