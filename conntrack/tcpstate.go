package conntrack

import (
	"time"

	"github.com/natalg/natalg/nat/ipproto"
)

// TCPState is the simplified TCP connection state a NAT needs to pick
// timeouts: the state machine of RFC 6146 §3.5.2.2, which RFC 7857 §2
// ("The TCP state machine depicted in Figure 1, adapted from [RFC6146],
// SHOULD be implemented by a NAT for TCP session tracking purposes") makes
// the one of NAT44 too. RFC 5382 §5 puts a connection in one of three
// phases: partially open (SYN_SENT, SYN_RECV), established (ESTABLISHED and
// the half-closed FIN_WAIT, "TCP states: ESTABLISHED, FIN_WAIT_1,
// FIN_WAIT_2, and CLOSE_WAIT") and closing (CLOSING, once "FIN packets are
// seen in both directions"). CLOSE is RFC 6146's TRANS after a RST.
type TCPState uint8

// TCP states. The numbers are saved in state files: never renumber them.
const (
	TCPNone        TCPState = iota // not TCP, or picked up mid-stream before any flag
	TCPSynSent                     // SYN seen in the original direction
	TCPSynRecv                     // SYN+ACK seen in reply
	TCPEstablished                 // handshake completed (or picked up mid-stream)
	TCPFinWait                     // a FIN seen in one direction only: half-closed, still established (RFC 6146 "V4/V6 FIN RCV")
	TCPClosing                     // FINs seen in both directions (RFC 6146 "V4 FIN + V6 FIN RCV")
	TCPClosed                      // RST seen (RFC 6146 "TRANS"): kept for the transitory timeout
)

var tcpStateNames = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSING", "CLOSE"}

func (s TCPState) String() string {
	if int(s) < len(tcpStateNames) {
		return tcpStateNames[s]
	}
	return "UNKNOWN"
}

// Timeouts are the idle timeouts of flows and expectations.
type Timeouts struct {
	// TCPEstablished applies to established TCP connections, half-closed
	// ones (a FIN seen in one direction only) included. RFC 5382 §5 REQ-5:
	// at least 2 hours 4 minutes.
	TCPEstablished time.Duration
	// TCPTransitory applies to connections being opened, closed (FINs seen
	// in both directions), and after
	// a RST (RFC 7857 §2.2: wait 4 minutes before deleting on RST, since a
	// RST may be spoofed or lost). RFC 5382 §5 REQ-5: at least 4 minutes.
	TCPTransitory time.Duration
	// UDP applies to UDP flows. RFC 4787 §4.3 REQ-5: at least 2 minutes, 5
	// recommended.
	UDP time.Duration
	// ICMP applies to ICMP query (echo) flows. RFC 5508 §3.2 REQ-2: "An
	// ICMP Query session timer MUST NOT expire in less than 60 seconds".
	ICMP time.Duration
	// Other applies to any other protocol.
	Other time.Duration
	// Expectation is how long an expectation waits for its connection (the
	// kernel's FTP helper uses 300 s).
	Expectation time.Duration
}

// DefaultTimeouts are the RFC minimums or recommendations quoted on each field.
var DefaultTimeouts = Timeouts{
	TCPEstablished: 2*time.Hour + 4*time.Minute,
	TCPTransitory:  4 * time.Minute,
	UDP:            5 * time.Minute,
	ICMP:           60 * time.Second,
	Other:          5 * time.Minute,
	Expectation:    300 * time.Second,
}

// nextTCPState returns the state and FINs seen after a packet with flags in
// direction dir (RFC 6146 §3.5.2.2):
//   - a RST moves any state to CLOSE (TRANS): "The lifetime is set to
//     TCP_TRANS and the state is moved to TRANS" (RFC 7857 §2.2: "the NAT
//     SHOULD wait for 4 minutes before deleting the session");
//   - in CLOSE, "If a packet other than a RST packet is received [...] The
//     state is moved to ESTABLISHED": natalg returns to the state the FINs
//     seen before the RST give (ESTABLISHED, FIN_WAIT or CLOSING), so a
//     closed connection's stray ACK does not buy it 2 hours;
//   - a FIN in one direction moves to FIN_WAIT ("V4 FIN RCV"), which keeps
//     the established timeout; FINs in both directions move to CLOSING
//     ("The lifetime is set to TCP_TRANS");
//   - a SYN in the original direction on a new, closed or closing tuple
//     (re)opens it (port reuse);
//   - a flow picked up mid-stream (no SYN seen) is ESTABLISHED on an ACK,
//     but CLOSING on a FIN.
func nextTCPState(s TCPState, dir Dir, flags ipproto.TCPFlags, finSeen uint8) (TCPState, uint8) {
	switch {
	case flags&ipproto.TCPRST != 0:
		return TCPClosed, finSeen
	case flags&ipproto.TCPSYN != 0:
		if flags&ipproto.TCPACK != 0 {
			if dir == Reply && (s == TCPSynSent || s == TCPSynRecv) {
				return TCPSynRecv, finSeen
			}
			return s, finSeen
		}
		if dir == Original && (s == TCPNone || s == TCPSynSent || s == TCPClosed || s == TCPClosing) {
			// A new SYN on a closed or closing tuple reopens it (port reuse).
			return TCPSynSent, 0
		}
		return s, finSeen
	case flags&ipproto.TCPFIN != 0:
		finSeen |= 1 << dir
		if s == TCPNone {
			// A flow picked up at a FIN (a late retransmission after the
			// flow was removed, or a restart mid-close) shows nothing of an
			// open connection: it gets the transitory timeout, not 2 hours
			// (RFC 6146 §3.5.2.2 creates no session for it at all).
			return TCPClosing, finSeen
		}
		return finState(finSeen), finSeen
	case s == TCPClosed:
		// RFC 6146 §3.5.2.2, TRANS: packets keep flowing, so the peer did
		// not accept the RST (it was spoofed or lost).
		return finState(finSeen), finSeen
	case flags&ipproto.TCPACK != 0:
		if s == TCPSynRecv && dir == Original {
			return TCPEstablished, finSeen
		}
		if s == TCPNone {
			// Picked up mid-stream (like the kernel's nf_conntrack_tcp_loose).
			return TCPEstablished, finSeen
		}
	}
	return s, finSeen
}

// finState is the state of a connection past its handshake with the FINs
// seen (bit 0: original direction, bit 1: reply).
func finState(finSeen uint8) TCPState {
	switch finSeen & 3 {
	case 0:
		return TCPEstablished
	case 3:
		return TCPClosing
	}
	return TCPFinWait
}

// timeout returns the idle timeout for a flow of proto in TCP state s.
func (t *Timeouts) timeout(proto ipproto.Proto, s TCPState) time.Duration {
	switch proto {
	case ipproto.TCP:
		// RFC 5382 §5 REQ-5: the established phase (ESTABLISHED, and
		// FIN_WAIT, where one side may still send) has the established
		// connection idle-timeout; the partially open and closing phases,
		// and TRANS after a RST (RFC 6146 §3.5.2.2), the transitory one.
		if s == TCPEstablished || s == TCPFinWait {
			return t.TCPEstablished
		}
		return t.TCPTransitory
	case ipproto.UDP:
		return t.UDP
	case ipproto.ICMPv4, ipproto.ICMPv6:
		return t.ICMP
	}
	return t.Other
}
