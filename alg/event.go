package alg

import (
	"math/bits"
	"strconv"
	"strings"
)

// NumEvents is the number of Event bits: EvRewrite is bit 0, the last event
// bit NumEvents-1 (TestEventNames checks that EvAll has exactly these).
const NumEvents = len(eventNames)

// eventNames names each Event bit, in bit order, as metrics label values.
var eventNames = [...]string{
	"rewrite",                   // EvRewrite
	"bounce_refused",            // EvBounce
	"low_port_refused",          // EvLowPort
	"map_failed",                // EvMapFailed
	"held",                      // EvHeld
	"merged",                    // EvMerged
	"abandoned",                 // EvAbandoned
	"retransmission_rewritten",  // EvRetransRewrite
	"retransmission_mismatch",   // EvRetransMismatch
	"out_of_order",              // EvOutOfOrder
	"tls_detected",              // EvTLS
	"untranslated_announcement", // EvUntranslated
	"release_truncated",         // EvTruncated
	"duplicate_held",            // EvDupHeld
	"rewrite_limit",             // EvRewriteLimit
	"tls_ended",                 // EvTLSEnded
	"nat64_epsv_to_pasv",        // EvEPSVToPASV
	"nat64_refused",             // EvRefused
	"nat64_algs",                // EvALGS
	"nat64_reply_substituted",   // EvReplySubstituted
	"nat64_queue_full",          // EvQueueFull
	"nat64_torn_down",           // EvTornDown
	"nat64_telnet_refused",      // EvTelnetRefused
	"ledger_full",               // EvLedgerFull
}

// Index returns the bit index of a single event (0 for EvRewrite), the
// index counters keep it under.
func (e Event) Index() int { return bits.TrailingZeros32(uint32(e)) }

// String returns the metrics name of a single event ("rewrite",
// "nat64_torn_down", ...), the names of a set of events joined by "|", "0"
// for no event, and "Event(0x...)" for bits no event has.
func (e Event) String() string {
	if e == 0 {
		return "0"
	}
	if e&^EvAll == 0 && e&(e-1) == 0 {
		return eventNames[e.Index()]
	}
	var b strings.Builder
	for rest := e & EvAll; rest != 0; rest &= rest - 1 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString(eventNames[bits.TrailingZeros32(uint32(rest))])
	}
	if unknown := e &^ EvAll; unknown != 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString("Event(0x" + strconv.FormatUint(uint64(unknown), 16) + ")")
	}
	return b.String()
}
