package nat

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/header"
)

// TestICMPErrorChecksumVerified: an ICMP error whose own checksum is wrong
// is dropped (RFC 5508 §4.1 REQ-3), not translated with a checksum
// recomputed whole, which would make the corruption valid.
func TestICMPErrorChecksumVerified(t *testing.T) {
	e := snatEngine(t)
	out, _ := establish(t, e)
	_, sent := e.processPacket(bytes.Clone(out), t0)
	router := netip.MustParseAddr("198.19.0.1")
	good := icmpErr(router, pubIP, 3, 4, bytes.Clone(sent[:48]))
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0x40 // a bit of the quote flipped after the checksum was made
	if v, _, r := e.processPacketReason(bad, t0); v != Drop || r != DropBadL4Checksum {
		t.Fatalf("corrupted error: verdict %v, reason %v; want a drop as bad_l4_checksum", v, r)
	}
	if v, _, r := e.processPacketReason(good, t0); v != Accept {
		t.Fatalf("intact error dropped: %v", r)
	}
}

// TestICMPErrorDoesNotRefresh: errors about a flow do not keep it alive
// (RFC 5508 §4.3 REQ-6), for an ICMP query session and a TCP flow alike: a
// forged error stream cannot hold a session open.
func TestICMPErrorDoesNotRefresh(t *testing.T) {
	e := snatEngine(t)
	in, remote := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.19.0.2")
	echo := icmpEcho(in, remote, false, 4242)
	_, sentEcho := e.processPacket(bytes.Clone(echo), t0)
	out, _ := establish(t, e)
	_, sentSeg := e.processPacket(bytes.Clone(out), t0)
	router := netip.MustParseAddr("198.19.0.1")
	for name, quote := range map[string][]byte{"icmp-query": sentEcho[:28], "tcp": sentSeg[:48]} {
		f := quotedFlowOf(t, e, quote)
		before := f.Expires()
		later := t0.Add(30 * time.Second)
		if v, _, r := e.processPacketReason(icmpErr(router, pubIP, 3, 1, bytes.Clone(quote)), later); v != Accept {
			t.Fatalf("%s: error about a live flow dropped: %v", name, r)
		}
		if got := f.Expires(); got != before {
			t.Errorf("%s: the error moved the flow's deadline from %v to %v", name, time.Unix(0, before), time.Unix(0, got))
		}
	}
}

// quotedFlowOf returns the flow of the packet quote as it left the NAT.
func quotedFlowOf(t *testing.T, e *Engine, quote []byte) *conntrack.Flow {
	t.Helper()
	var q header.Parsed
	if r := q.DecodeInner(quote); r != header.Ok {
		t.Fatalf("quote: %v", r)
	}
	tu := conntrack.Tuple{Src: q.Src, Dst: q.Dst, SrcPort: q.SrcPort, DstPort: q.DstPort, Proto: q.Proto}
	f, _ := e.Table().Lookup(tu.Reverse(), t0.UnixNano())
	if f == nil {
		t.Fatalf("no flow for %v", tu)
	}
	return f
}
