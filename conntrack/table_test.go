package conntrack

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var (
	inside = netip.MustParseAddr("198.18.0.2")
	public = netip.MustParseAddr("198.19.100.100")
	remote = netip.MustParseAddr("198.19.0.2")
)

// snatFlow is a flow from inside:sport to remote:21 masqueraded to public:sport.
func snatFlow(sport uint16) *Flow {
	o := Tuple{Src: inside, Dst: remote, SrcPort: sport, DstPort: 21, Proto: ProtoTCP}
	r := Tuple{Src: remote, Dst: public, SrcPort: 21, DstPort: sport, Proto: ProtoTCP}
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
	o := Tuple{Src: netip.MustParseAddr("198.18.0.3"), Dst: remote, SrcPort: 40000, DstPort: 21, Proto: ProtoTCP}
	r := Tuple{Src: remote, Dst: public, SrcPort: 21, DstPort: 40000, Proto: ProtoTCP}
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
	f.Touch(Original, FlagSYN, 0, tb.Timeouts())
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
		flags uint8
		want  TCPState
		tmo   time.Duration
	}{
		{Original, FlagSYN, TCPSynSent, 4 * time.Minute},
		{Reply, FlagSYN | FlagACK, TCPSynRecv, 4 * time.Minute},
		{Original, FlagACK, TCPEstablished, 2*time.Hour + 4*time.Minute},
		{Reply, FlagACK, TCPEstablished, 2*time.Hour + 4*time.Minute},
		{Original, FlagFIN | FlagACK, TCPFinWait, 4 * time.Minute},
		{Reply, FlagFIN | FlagACK, TCPClosing, 4 * time.Minute},
		{Original, FlagSYN, TCPSynSent, 4 * time.Minute}, // port reuse
		{Reply, FlagRST, TCPClosed, 4 * time.Minute},     // RFC 7857 §2.2
	}
	for i, s := range steps {
		f.Touch(s.dir, s.flags, 0, to)
		if f.State() != s.want || f.Expires() != int64(s.tmo) {
			t.Fatalf("step %d: state %v expires %v, want %v %v", i, f.State(), time.Duration(f.Expires()), s.want, s.tmo)
		}
	}
	picked := snatFlow(2)
	picked.Touch(Original, FlagACK, 0, to)
	if picked.State() != TCPEstablished {
		t.Fatalf("mid-stream pickup state %v", picked.State())
	}
	u := NewFlow(Tuple{Proto: ProtoUDP}, Tuple{Proto: ProtoUDP, SrcPort: 1})
	u.Touch(Original, 0, 0, to)
	if u.Expires() != int64(5*time.Minute) {
		t.Fatal("udp timeout")
	}
}

func exp(master *Flow, port uint16) *Expectation {
	return &Expectation{Proto: ProtoTCP, Src: remote, Dst: public, DstPort: port,
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
	if tb.TakeExpectation(ProtoTCP, netip.MustParseAddr("198.19.0.99"), public, 50000, sec) != nil {
		t.Fatal("a third party took the expectation")
	}
	if e := tb.TakeExpectation(ProtoTCP, remote, public, 50000, sec); e == nil || e.Target.Port() != 50000 {
		t.Fatal("expectation not taken")
	}
	if tb.TakeExpectation(ProtoTCP, remote, public, 50000, sec) != nil {
		t.Fatal("expectation used twice")
	}
	tb.Expect(exp(m, 50001), 0)
	if tb.TakeExpectation(ProtoTCP, remote, public, 50001, 301*sec) != nil {
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
	if tb.TakeExpectation(ProtoTCP, remote, public, 50001, 1) != nil {
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
				g.Touch(d, FlagSYN, int64(i), tb.Timeouts())
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
