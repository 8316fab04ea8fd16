package conntrack

import "time"

// TCPState is the simplified TCP connection state a NAT needs to pick
// timeouts (RFC 5382 §5): whether the connection is being opened, is
// established, or is closing.
type TCPState uint8

// TCP states.
const (
	TCPNone        TCPState = iota // not TCP, or picked up mid-stream before any flag
	TCPSynSent                     // SYN seen in the original direction
	TCPSynRecv                     // SYN+ACK seen in reply
	TCPEstablished                 // handshake completed (or picked up mid-stream)
	TCPFinWait                     // a FIN seen in one direction
	TCPClosing                     // FINs seen in both directions
	TCPClosed                      // RST seen
)

var tcpStateNames = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSING", "CLOSE"}

func (s TCPState) String() string {
	if int(s) < len(tcpStateNames) {
		return tcpStateNames[s]
	}
	return "UNKNOWN"
}

// TCP header flag bits (RFC 9293 §3.1).
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagACK = 0x10
)

// Timeouts are the idle timeouts of flows and expectations.
type Timeouts struct {
	// TCPEstablished applies to established TCP connections. RFC 5382 §5
	// REQ-5: at least 2 hours 4 minutes.
	TCPEstablished time.Duration
	// TCPTransitory applies to connections being opened or closed, and after
	// a RST (RFC 7857 §2.2: wait 4 minutes before deleting on RST, since a
	// RST may be spoofed or lost). RFC 5382 §5 REQ-5: at least 4 minutes.
	TCPTransitory time.Duration
	// UDP applies to UDP flows. RFC 4787 §4.3 REQ-5: at least 2 minutes, 5
	// recommended.
	UDP time.Duration
	// ICMP applies to ICMP query (echo) flows. RFC 5508 §3.1 REQ-1: at least
	// 60 seconds.
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

// nextTCPState returns the state after a packet with flags in direction dir.
func nextTCPState(s TCPState, dir Dir, flags uint8, finSeen uint8) (TCPState, uint8) {
	switch {
	case flags&FlagRST != 0:
		return TCPClosed, finSeen
	case flags&FlagSYN != 0:
		if flags&FlagACK != 0 {
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
	case flags&FlagFIN != 0:
		finSeen |= 1 << dir
		if finSeen == 3 {
			return TCPClosing, finSeen
		}
		if s == TCPClosed {
			return s, finSeen
		}
		return TCPFinWait, finSeen
	case flags&FlagACK != 0:
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

// timeout returns the idle timeout for a flow of proto in TCP state s.
func (t *Timeouts) timeout(proto uint8, s TCPState) time.Duration {
	switch proto {
	case ProtoTCP:
		if s == TCPEstablished {
			return t.TCPEstablished
		}
		return t.TCPTransitory
	case ProtoUDP:
		return t.UDP
	case ProtoICMP, ProtoICMPv6:
		return t.ICMP
	}
	return t.Other
}
