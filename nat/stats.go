package nat

import (
	"fmt"
	"io"
	"math/bits"
	"sync/atomic"

	"github.com/natalg/natalg/alg"
	"github.com/natalg/natalg/nat/frag"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/promtext"
	"github.com/natalg/natalg/nat/xlat"
)

// Verdict is what a front end does with a packet.
type Verdict uint8

// Verdicts.
const (
	Accept Verdict = iota // send the (possibly rewritten) packet on
	Drop                  // drop it
	// Held: the engine keeps a copy of this fragment until its datagram is
	// whole; the front end sends nothing for it (as for Drop).
	Held
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Held:
		return "held"
	}
	return "drop"
}

// DropReason says why the engine dropped a packet (beyond malformation,
// which header.Reason covers).
type DropReason uint8

// Drop reasons.
const (
	DropNone                DropReason = iota
	DropMalformed                      // see the header.Reason counters
	DropFragment                       // a fragment reassembly refused (see the frag counters), or reassembly off
	DropUnsupported                    // a protocol the NAT cannot translate
	DropNoFlow                         // inbound with no flow, forward or expectation
	DropTableFull                      // flow table at its maximum
	DropPortsExhausted                 // no public port free
	DropClash                          // translated tuple already in use
	DropBadL4Checksum                  // transport checksum wrong on a segment to inspect
	DropALGMapFailed                   // gateway could not map an announced endpoint
	DropALGHeld                        // partial command held back (released later)
	DropALGOutOfOrder                  // control segment beyond a gap
	DropALGRetransMismatch             // retransmission differs from what was rewritten
	DropTooBig                         // rewrite would pass 65535 bytes or the buffer
	DropICMPErrorNoFlow                // ICMP error about no known flow
	DropBadUDPZeroChecksum             // IPv6 UDP with checksum 0 (RFC 8200 §8.1)
	DropNoPickup                       // TCP non-SYN with no flow, pickup disabled
	DropNAT64Untranslatable            // NAT64: no RFC 7915 translation (see the xlat counters)
	DropFiltered                       // inbound to a mapping whose filtering (RFC 4787 §5) refuses its source
	DropNAT64NonGlobal                 // NAT64: the well-known prefix with a non-global IPv4 address (RFC 6052 §3.1)
	DropNAT64SrcInPrefix               // NAT64: an IPv6 source inside the NAT64 prefix (RFC 6146 §3.5)
	DropALGTornDown                    // a segment of an FTP control session the NAT64 gateway tore down (RFC 6384 §12)
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"none", "malformed", "fragment", "unsupported_protocol", "no_flow", "table_full",
	"ports_exhausted", "clash", "bad_l4_checksum", "alg_map_failed", "alg_held",
	"alg_out_of_order", "alg_retrans_mismatch", "too_big", "icmp_error_no_flow",
	"udp6_zero_checksum", "no_pickup", "nat64_untranslatable", "filtered",
	"nat64_non_global", "nat64_src_in_prefix", "alg_torn_down",
}

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop_%d", r)
}

// Stats are the engine's cumulative counters. Read them with Snapshot.
//
// The counters of the fast path (In, Accepted, Passed, Translated) are
// added once per batch (counts.flush); the others as their event happens.
type Stats struct {
	In          atomic.Uint64
	Accepted    atomic.Uint64
	Passed      atomic.Uint64 // neither inside nor public: forwarded unchanged
	Translated  atomic.Uint64
	Dropped     [numDropReasons]atomic.Uint64
	Malformed   [32]atomic.Uint64 // by header.Reason
	ALGEvents   [32]atomic.Uint64
	Rewrites    atomic.Uint64 // ALG payload rewrites (segments)
	ICMPErrors  atomic.Uint64 // ICMP errors translated
	FlowsMade   atomic.Uint64
	DataFlows   atomic.Uint64     // flows created from an expectation
	SeqAdjusted atomic.Uint64     // segments whose SEQ, ACK or SACK moved
	Hairpinned  atomic.Uint64     // hairpinned flows created (NAT64 ones included)
	Xlat        [16]atomic.Uint64 // NAT64 translation failures by xlat.Reason
	MSSClamped  atomic.Uint64     // NAT64 SYNs whose MSS option was lowered
	// Reassembled counts datagrams made whole from fragments and
	// translated; FragmentsOut the fragments sent for them (and for
	// NAT64's RFC 7915 §4.1 fragmentation).
	Reassembled  atomic.Uint64
	FragmentsOut atomic.Uint64

	frag      *frag.Stats   // the reassembler's outcomes; nil without reassembly
	ALGResets atomic.Uint64 // server segments of torn-down NAT64 FTP sessions sent back as resets (RFC 6384 §12)
}

func (s *Stats) xlat(r xlat.Reason) { s.Xlat[r&15].Add(1) }

func (s *Stats) drop(r DropReason) (Verdict, DropReason) {
	s.Dropped[r].Add(1)
	return Drop, r
}

func (s *Stats) algEvents(ev alg.Event) {
	for ev != 0 {
		i := bits.TrailingZeros32(uint32(ev))
		s.ALGEvents[i].Add(1)
		ev &^= 1 << i
	}
}

// Summary is a plain copy of the counters, with the non-zero reasons named.
type Summary struct {
	In, Accepted, Passed, Translated, Rewrites, ICMPErrors uint64
	FlowsMade, DataFlows, SeqAdjusted, Hairpinned          uint64
	Drops                                                  map[string]uint64
	ALG                                                    map[string]uint64
	DroppedTotal                                           uint64
	// Fragments are the reassembler's outcomes by frag.Reason name
	// (held, complete, and every discard: overlap, timeout, ...).
	Fragments    map[string]uint64 `json:",omitempty"`
	Reassembled  uint64            `json:",omitempty"`
	FragmentsOut uint64            `json:",omitempty"`
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() Summary {
	sum := Summary{
		In: s.In.Load(), Accepted: s.Accepted.Load(), Passed: s.Passed.Load(),
		Translated: s.Translated.Load(), Rewrites: s.Rewrites.Load(), ICMPErrors: s.ICMPErrors.Load(),
		FlowsMade: s.FlowsMade.Load(), DataFlows: s.DataFlows.Load(), SeqAdjusted: s.SeqAdjusted.Load(),
		Hairpinned: s.Hairpinned.Load(),
		Drops:      map[string]uint64{}, ALG: map[string]uint64{},
		Reassembled: s.Reassembled.Load(), FragmentsOut: s.FragmentsOut.Load(),
	}
	if s.frag != nil {
		for _, r := range frag.Reasons() {
			if n := s.frag.Count[r].Load(); n != 0 {
				if sum.Fragments == nil {
					sum.Fragments = map[string]uint64{}
				}
				sum.Fragments[r.String()] = n
			}
		}
	}
	for r := DropReason(1); r < numDropReasons; r++ {
		if n := s.Dropped[r].Load(); n != 0 && r != DropMalformed {
			sum.Drops[r.String()] = n
			sum.DroppedTotal += n
		}
	}
	for _, r := range header.Reasons() {
		if n := s.Malformed[r].Load(); n != 0 {
			sum.Drops["malformed_"+r.String()] = n
			sum.DroppedTotal += n
		}
	}
	for i := 0; i < alg.NumEvents; i++ {
		if n := s.ALGEvents[i].Load(); n != 0 {
			sum.ALG[(alg.Event(1) << i).String()] = n
		}
	}
	return sum
}

// The engine's metric families.
var (
	metricPackets      = promtext.Family{Name: "natalg_packets_total", Type: promtext.Counter, Help: "Packets by verdict."}
	metricDrops        = promtext.Family{Name: "natalg_drops_total", Type: promtext.Counter, Help: "Dropped packets by reason."}
	metricALGEvents    = promtext.Family{Name: "natalg_alg_events_total", Type: promtext.Counter, Help: "FTP gateway events."}
	metricRewrites     = promtext.Family{Name: "natalg_alg_rewrites_total", Type: promtext.Counter, Help: "Segments whose payload the FTP gateway rewrote."}
	metricICMPErrors   = promtext.Family{Name: "natalg_icmp_errors_translated_total", Type: promtext.Counter, Help: "ICMP errors translated with their embedded packet."}
	metricXlatFailures = promtext.Family{Name: "natalg_nat64_xlat_failures_total", Type: promtext.Counter, Help: "NAT64 packets RFC 7915 could not translate, by reason."}
	metricMSSClamped   = promtext.Family{Name: "natalg_nat64_mss_clamped_total", Type: promtext.Counter, Help: "NAT64 SYNs from the IPv4 side whose MSS option was lowered by the header size difference."}
	metricHairpinned   = promtext.Family{Name: "natalg_hairpinned_flows_total", Type: promtext.Counter, Help: "Flows from an inside host back inside through a public endpoint (RFC 4787 §6)."}
	metricFragments    = promtext.Family{Name: "natalg_fragments_total", Type: promtext.Counter, Help: "Fragments of translated traffic by reassembly outcome (timeout and evicted count datagrams)."}
	metricReassembled  = promtext.Family{Name: "natalg_fragments_reassembled_total", Type: promtext.Counter, Help: "Datagrams reassembled from fragments and translated."}
	metricFragmentsOut = promtext.Family{Name: "natalg_fragments_sent_total", Type: promtext.Counter, Help: "Fragments sent for reassembled datagrams and NAT64 fragmentation (RFC 7915 §4.1)."}
	metricALGResets    = promtext.Family{Name: "natalg_nat64_ftp_resets_total", Type: promtext.Counter, Help: "Segments of NAT64 FTP servers whose session the gateway tore down, sent back to them as resets (RFC 6384 §12)."}
	metricSeqAdjusted  = promtext.Family{Name: "natalg_seq_adjusted_total", Type: promtext.Counter, Help: "Segments whose SEQ, ACK or SACK edges were shifted."}
)

// WriteMetrics writes the counters in the Prometheus text exposition format,
// through a promtext.Writer on w (w itself when it is one).
func (s *Stats) WriteMetrics(w io.Writer) {
	pw := promtext.New(w)
	pw.Uint(metricPackets, s.Accepted.Load(), "verdict", "accept")
	pw.Uint(metricPackets, s.Passed.Load(), "verdict", "pass")
	var dropped uint64
	for r := range s.Dropped {
		dropped += s.Dropped[r].Load()
	}
	pw.Uint(metricPackets, dropped, "verdict", "drop")
	pw.Declare(metricDrops)
	for r := DropReason(1); r < numDropReasons; r++ {
		if r == DropMalformed {
			continue
		}
		pw.Uint(metricDrops, s.Dropped[r].Load(), "reason", r.String())
	}
	for _, r := range header.Reasons() {
		pw.Uint(metricDrops, s.Malformed[r].Load(), "reason", "malformed_"+r.String())
	}
	pw.Declare(metricALGEvents)
	for i := 0; i < alg.NumEvents; i++ {
		pw.Uint(metricALGEvents, s.ALGEvents[i].Load(), "event", (alg.Event(1) << i).String())
	}
	pw.Uint(metricRewrites, s.Rewrites.Load())
	pw.Uint(metricICMPErrors, s.ICMPErrors.Load())
	pw.Declare(metricXlatFailures)
	for i := range s.Xlat {
		if n := s.Xlat[i].Load(); n != 0 {
			pw.Uint(metricXlatFailures, n, "reason", xlat.Reason(i).String())
		}
	}
	pw.Uint(metricMSSClamped, s.MSSClamped.Load())
	pw.Uint(metricHairpinned, s.Hairpinned.Load())
	if s.frag != nil {
		pw.Declare(metricFragments)
		for _, r := range frag.Reasons() {
			pw.Uint(metricFragments, s.frag.Count[r].Load(), "outcome", r.String())
		}
	}
	pw.Uint(metricReassembled, s.Reassembled.Load())
	pw.Uint(metricFragmentsOut, s.FragmentsOut.Load())
	pw.Uint(metricALGResets, s.ALGResets.Load())
	pw.Uint(metricSeqAdjusted, s.SeqAdjusted.Load())
}
