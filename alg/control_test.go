package alg

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/seqdelta"
)

// fakeNAT maps every announcement to the public address, keeping the port,
// and records what it was asked.
type fakeNAT struct {
	public netip.Addr
	asked  []netip.AddrPort
	refuse bool
}

func (f *fakeNAT) MapData(dir conntrack.Dir, a netip.AddrPort, _ int64) (netip.AddrPort, bool) {
	f.asked = append(f.asked, a)
	if f.refuse {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(f.public, a.Port()), true
}

type harness struct {
	c   *Control
	led [2]seqdelta.Ledger
	nat *fakeNAT
}

// newHarness: client 198.18.0.2 inside, masqueraded to 198.19.100.100;
// server 198.19.0.2 outside. Client ISN 999, server ISN 4999; the receiver
// of client data announced MSS mss.
func newHarness(t *testing.T, cfg *Config, mss uint16) *harness {
	orig := conntrack.Tuple{Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.19.0.2"), SrcPort: 40000, DstPort: 21, Proto: 6}
	reply := conntrack.Tuple{Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.MustParseAddr("198.19.100.100"), SrcPort: 21, DstPort: 40000, Proto: 6}
	h := &harness{c: NewControl(cfg, [2]conntrack.Tuple{orig, reply}), nat: &fakeNAT{public: netip.MustParseAddr("198.19.100.100")}}
	h.seg(conntrack.Original, 999, "", true, false)
	r := h.c.Segment(&Segment{Dir: conntrack.Reply, Seq: 4999, SYN: true, MSS: mss}, &h.led[1], h.nat)
	if r.Action != Pass {
		t.Fatal("SYN+ACK not passed")
	}
	return h
}

func (h *harness) seg(d conntrack.Dir, seq uint32, p string, syn, fin bool) Result {
	return h.c.Segment(&Segment{Dir: d, Seq: seq, Payload: []byte(p), SYN: syn, FIN: fin}, &h.led[d], h.nat)
}

func (h *harness) client(seq uint32, p string) Result {
	return h.seg(conntrack.Original, seq, p, false, false)
}

func TestMergedReleaseCutToMSS(t *testing.T) {
	h := newHarness(t, &Config{}, 100)
	if r := h.client(1000, "PORT 198,18,0,2,1"); r.Action != Drop || r.Events&EvHeld == 0 {
		t.Fatalf("not held: %+v", r)
	}
	// The continuation (85 bytes) fits the receiver's MSS of 100; merged
	// with the held 17 and the rewrite's growth, it would not.
	tail := "95,80\r\n" + strings.Repeat("NOOP\r\n", 13)
	r := h.client(1017, tail)
	if r.Action != Replace || r.Seq != 1000 || r.Events&EvTruncated == 0 {
		t.Fatalf("merged release: %+v", r)
	}
	if len(r.Payload) > 100 {
		t.Fatalf("merged release of %d bytes passes the MSS", len(r.Payload))
	}
	if !strings.HasPrefix(string(r.Payload), "PORT 198,19,100,100,195,80\r\n") || !strings.HasSuffix(string(r.Payload), "\r\n") {
		t.Fatalf("release not cut at a line end: %q", r.Payload)
	}
	// What was cut comes again from the sender and goes through in order,
	// at the position right after what was released.
	consumed := uint32(len(r.Payload) - 4) // original bytes released
	r2 := h.client(1000+consumed, tail[consumed-17:])
	if r2.Action != Pass {
		t.Fatalf("retransmitted remainder: %+v", r2)
	}
	if got := h.led[0].Seq(1000 + consumed); got != 1000+consumed+4 {
		t.Fatalf("remainder mapped to %d", got)
	}
}

func TestHeldLineAbandonedAfterRetransmissions(t *testing.T) {
	h := newHarness(t, &Config{MaxHoldRetries: 2}, 1460)
	h.client(1000, "PORT 198,18,0,2,1")
	for i := 0; i < 2; i++ {
		if r := h.client(1000, "PORT 198,18,0,2,1"); r.Action != Drop {
			t.Fatalf("retransmission %d not absorbed", i+1)
		}
	}
	r := h.client(1000, "PORT 198,18,0,2,1")
	if r.Action != Pass || r.Events&EvAbandoned == 0 {
		t.Fatalf("third retransmission: %+v", r)
	}
	// The rest of the line is not taken for a new line.
	if r := h.client(1017, "95,80\r\n"); r.Action != Pass || len(h.nat.asked) != 0 {
		t.Fatalf("abandoned line rewritten later: %+v", r)
	}
	if r := h.client(1024, "PORT 198,18,0,2,195,81\r\n"); r.Action != Replace {
		t.Fatalf("next line not inspected: %+v", r)
	}
}

func TestFINWithPartialLineNotHeld(t *testing.T) {
	h := newHarness(t, &Config{}, 1460)
	if r := h.seg(conntrack.Original, 1000, "PORT 198,18,0,2,1", false, true); r.Action != Pass {
		t.Fatalf("partial line with FIN: %+v", r)
	}
}

func TestPickedUpMidStreamWaitsForLineStart(t *testing.T) {
	h := &harness{nat: &fakeNAT{public: netip.MustParseAddr("198.19.100.100")}}
	nh := newHarness(t, &Config{}, 0)
	h.c = NewControl(&Config{}, nh.c.flow)
	// No SYN seen: the first segment may start mid-line.
	if r := h.client(5000, "RT 198,18,0,2,195,80\r\n"); r.Action != Pass {
		t.Fatalf("mid-line bytes: %+v", r)
	}
	if r := h.client(5022, "PORT 198,18,0,2,195,80\r\n"); r.Action != Replace {
		t.Fatalf("first whole line after pickup: %+v", r)
	}
}

func TestMultiLine227FinalLine(t *testing.T) {
	h := newHarness(t, &Config{}, 1460)
	// A server inside announcing in the final line of a multi-line 227.
	h.c.flow = [2]conntrack.Tuple{
		{Src: netip.MustParseAddr("198.19.0.7"), Dst: netip.MustParseAddr("198.19.100.100"), SrcPort: 5000, DstPort: 21, Proto: 6},
		{Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.19.0.7"), SrcPort: 21, DstPort: 5000, Proto: 6},
	}
	msg := "227-Entering Passive Mode\r\n here it comes\r\n227 (198,18,0,2,195,80)\r\n"
	r := h.seg(conntrack.Reply, 5000, msg, false, false)
	want := "227-Entering Passive Mode\r\n here it comes\r\n227 (198,19,100,100,195,80)\r\n"
	if r.Action != Replace || string(r.Payload) != want {
		t.Fatalf("got %+v %q", r, r.Payload)
	}
	if h.led[1].Offset() != 4 {
		t.Fatalf("ledger offset %d", h.led[1].Offset())
	}
}

func TestMapFailureDropsSegment(t *testing.T) {
	h := newHarness(t, &Config{}, 1460)
	h.nat.refuse = true
	if r := h.client(1000, "PORT 198,18,0,2,195,80\r\n"); r.Action != Drop || r.Events&EvMapFailed == 0 {
		t.Fatalf("unmappable announcement: %+v", r)
	}
	if h.led[0].Len() != 0 {
		t.Fatal("a dropped segment recorded a correction")
	}
	// Its retransmission must not leave with the inside address either
	// (the bytes were consumed: the replay path knows no rewrite for them),
	// even once the NAT could map again: the connection fails closed.
	h.nat.refuse = false
	for _, retrans := range []struct {
		seq uint32
		p   string
	}{{1000, "PORT 198,18,0,2,195,80\r\n"}, {1005, "198,18,0,2,195,80\r\n"}, {1000, "PORT 198,18,0,2,195,80\r\nNOOP\r\n"}} {
		if r := h.client(retrans.seq, retrans.p); r.Action != Drop || r.Events&EvMapFailed == 0 {
			t.Fatalf("retransmission %q of an unmapped announcement: %+v %q", retrans.p, r, r.Payload)
		}
	}
}

func TestRetransmissionStartingInsideRewrite(t *testing.T) {
	h := newHarness(t, &Config{}, 1460)
	h.client(1000, "PORT 198,18,0,2,195,80\r\n") // 1000..1023, text 1005..1021
	// Re-segmented retransmission starting inside the rewritten numbers.
	r := h.client(1010, "8,0,2,195,80\r\nNOOP\r\n")
	if r.Action != Replace || r.Seq != 1005 || string(r.Payload) != "198,19,100,100,195,80\r\nNOOP\r\n" {
		t.Fatalf("got %+v %q", r, r.Payload)
	}
	// And one whose bytes differ from what was rewritten is dropped.
	if r := h.client(1010, "9,9,195,80\r\n"); r.Action != Drop || r.Events&EvRetransMismatch == 0 {
		t.Fatalf("mismatching retransmission: %+v", r)
	}
}

// TestRewriteLimitPerSegment: fifty PORT commands in one segment. Only the
// first MaxRewritesPerSegment are rewritten (and mapped); the rest pass
// unchanged, so the ledger never holds more points for one segment than it
// can keep and the segment's own start maps to itself.
func TestRewriteLimitPerSegment(t *testing.T) {
	h := newHarness(t, &Config{}, 1460)
	var b strings.Builder
	for i := 0; i < 50; i++ {
		b.WriteString("PORT 198,18,0,2,78," + strconv.Itoa(32+i) + "\r\n")
	}
	r := h.client(1000, b.String())
	if r.Action != Replace || r.Seq != 1000 || r.Events&EvRewriteLimit == 0 || r.Events&EvRewrite == 0 {
		t.Fatalf("batch: %+v", r)
	}
	if n := strings.Count(string(r.Payload), "PORT 198,19,100,100,"); n != MaxRewritesPerSegment {
		t.Fatalf("%d rewritten, want %d", n, MaxRewritesPerSegment)
	}
	if n := strings.Count(string(r.Payload), "PORT 198,18,0,2,"); n != 50-MaxRewritesPerSegment {
		t.Fatalf("%d left unchanged, want %d", n, 50-MaxRewritesPerSegment)
	}
	if len(h.nat.asked) != MaxRewritesPerSegment {
		t.Fatalf("%d mappings asked, want %d", len(h.nat.asked), MaxRewritesPerSegment)
	}
	if got := h.led[0].Seq(1000); got != 1000 {
		t.Fatalf("segment start maps to %d, want 1000", got)
	}
	end := uint32(1000 + b.Len())
	if got, want := h.led[0].Seq(end), end+4*MaxRewritesPerSegment; got != want {
		t.Fatalf("segment end maps to %d, want %d", got, want)
	}
	// the next segment may rewrite again
	next := "PORT 198,18,0,2,90,1\r\n"
	r = h.client(end, next)
	if r.Action != Replace || r.Events&EvRewriteLimit != 0 || !strings.HasPrefix(string(r.Payload), "PORT 198,19,100,100,90,1") {
		t.Fatalf("next segment: %+v %q", r, r.Payload)
	}
}

// TestLedgerFullPassesUnchanged: with seqdelta.Capacity rewrites of the
// client not yet acknowledged, the next PORT passes exactly as sent, with
// no mapping asked (so no expectation) and EvLedgerFull. Acknowledgments
// the gateway cannot trust (beyond what the client sent, or into a held
// line) free nothing; the server's real acknowledgment of two commands
// frees two points and two history entries when room is needed, and not
// before: an acknowledged rewrite is still repeated exactly until then.
func TestLedgerFullPassesUnchanged(t *testing.T) {
	h := newHarness(t, &Config{}, 1460)
	line := func(i int) string { return "PORT 198,18,0,2,78," + strconv.Itoa(32+i) + "\r\n" }
	seq := uint32(1000)
	ends := []uint32{}
	for i := 0; i < seqdelta.Capacity; i++ {
		if r := h.client(seq, line(i)); r.Action != Replace || r.Events&EvRewrite == 0 {
			t.Fatalf("command %d: %+v", i, r)
		}
		seq += uint32(len(line(i)))
		ends = append(ends, seq)
	}
	r := h.client(seq, line(8))
	if r.Action != Pass || r.Events != EvLedgerFull {
		t.Fatalf("ninth command: %+v", r)
	}
	if len(h.nat.asked) != seqdelta.Capacity {
		t.Fatalf("%d mappings asked, want %d", len(h.nat.asked), seqdelta.Capacity)
	}
	seq += uint32(len(line(8)))
	// an acknowledgment of bytes never sent is ignored
	h.c.Acked(conntrack.Original, seq+1)
	if r := h.client(seq, line(9)); r.Action != Pass || r.Events != EvLedgerFull {
		t.Fatalf("after a forged ACK: %+v", r)
	}
	seq += uint32(len(line(9)))
	// so is one reaching into a held line, whose bytes were never forwarded
	if r := h.client(seq, "PORT 198,18,0,2,7"); r.Events&EvHeld == 0 {
		t.Fatalf("partial line not held: %+v", r)
	}
	h.c.Acked(conntrack.Original, seq+3)
	if r := h.client(seq, "PORT 198,18,0,2,78,99\r\n"); r.Action != Pass || r.Events != EvLedgerFull {
		t.Fatalf("after an ACK into a held line: %+v %q", r, r.Payload)
	}
	if h.led[0].Len() != seqdelta.Capacity || h.c.Outstanding(conntrack.Original) != seqdelta.Capacity {
		t.Fatalf("untrusted ACKs freed points: %d, %d", h.led[0].Len(), h.c.Outstanding(conntrack.Original))
	}
	seq += 23
	// the server acknowledges the first two commands: kept until needed,
	// so a retransmission of the first (its ACK lost) is still exact
	h.c.Acked(conntrack.Original, ends[1])
	if r := h.client(1000, line(0)); r.Action != Replace || string(r.Payload) != "PORT 198,19,100,100,78,32\r\n" {
		t.Fatalf("retransmitted first after its ACK: %+v %q", r, r.Payload)
	}
	if r := h.client(seq, "PORT 198,18,0,2,78,98\r\n"); r.Action != Replace || string(r.Payload) != "PORT 198,19,100,100,78,98\r\n" {
		t.Fatalf("after the ACK: %+v %q", r, r.Payload)
	}
	if h.led[0].Len() != seqdelta.Capacity-1 || h.c.Outstanding(conntrack.Original) != seqdelta.Capacity-1 {
		t.Fatalf("after the ACK: %d points, %d rewrites", h.led[0].Len(), h.c.Outstanding(conntrack.Original))
	}
	// the third command is still remembered
	if r := h.client(ends[1], line(2)); r.Action != Replace || string(r.Payload) != "PORT 198,19,100,100,78,34\r\n" {
		t.Fatalf("retransmitted third: %+v %q", r, r.Payload)
	}
}
