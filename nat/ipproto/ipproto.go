// Package ipproto holds the IP protocol numbers and the TCP control bits
// used across natalg, as typed constants with String methods: the one
// vocabulary of the header parser, the connection tracker and the NAT (as
// Tailscale's types/ipproto is for its packet code). It imports nothing of
// natalg.
package ipproto

import "strconv"

// Proto is an IP protocol number (IPv4 Protocol field, RFC 791 §3.1) or an
// IPv6 Next Header value (RFC 8200 §3), from the IANA registry "Assigned
// Internet Protocol Numbers".
type Proto uint8

// Protocol numbers natalg knows. The numbers are IANA's: they are saved in
// state files and written on the wire.
const (
	HopByHop Proto = 0  // IPv6 Hop-by-Hop Options (RFC 8200 §4.3)
	ICMPv4   Proto = 1  // ICMP (RFC 792)
	TCP      Proto = 6  // TCP (RFC 9293)
	UDP      Proto = 17 // UDP (RFC 768)
	Routing  Proto = 43 // IPv6 Routing header (RFC 8200 §4.4)
	Fragment Proto = 44 // IPv6 Fragment header (RFC 8200 §4.5)
	ESP      Proto = 50 // Encapsulating Security Payload (RFC 4303)
	AH       Proto = 51 // Authentication Header (RFC 4302)
	ICMPv6   Proto = 58 // ICMPv6 (RFC 4443)
	NoNext   Proto = 59 // IPv6 No Next Header (RFC 8200 §4.7)
	DstOpts  Proto = 60 // IPv6 Destination Options (RFC 8200 §4.6)
)

// protoNames are the lower-case names String gives, as conntrack -L and
// natalg's rule syntax write them; IANA's keywords for the IPv6 extension
// headers.
var protoNames = [...]string{
	HopByHop: "hopopt",
	ICMPv4:   "icmp",
	TCP:      "tcp",
	UDP:      "udp",
	Routing:  "ipv6-route",
	Fragment: "ipv6-frag",
	ESP:      "esp",
	AH:       "ah",
	ICMPv6:   "icmpv6",
	NoNext:   "ipv6-nonxt",
	DstOpts:  "ipv6-opts",
}

// String returns the protocol's lower-case name ("tcp", "icmpv6"), or
// "proto-N" for a number without one.
func (p Proto) String() string {
	if int(p) < len(protoNames) && protoNames[p] != "" {
		return protoNames[p]
	}
	return "proto-" + strconv.Itoa(int(p))
}

// IsICMP reports whether p is ICMP or ICMPv6.
func (p Proto) IsICMP() bool { return p == ICMPv4 || p == ICMPv6 }

// TCPFlags are the TCP control bits, byte 13 of the TCP header (RFC 9293
// §3.1; ECE and CWR from RFC 3168 §23.2).
type TCPFlags uint8

// TCP control bits.
const (
	TCPFIN TCPFlags = 1 << 0
	TCPSYN TCPFlags = 1 << 1
	TCPRST TCPFlags = 1 << 2
	TCPPSH TCPFlags = 1 << 3
	TCPACK TCPFlags = 1 << 4
	TCPURG TCPFlags = 1 << 5
	TCPECE TCPFlags = 1 << 6
	TCPCWR TCPFlags = 1 << 7
)

// String returns the bits set as tcpdump's letters in bit order ("FSRPAUEC":
// a SYN+ACK is "SA"), or "." when none is.
func (f TCPFlags) String() string {
	const letters = "FSRPAUEC"
	var out [8]byte
	n := 0
	for i := range 8 {
		if f&(1<<i) != 0 {
			out[n] = letters[i]
			n++
		}
	}
	if n == 0 {
		return "."
	}
	return string(out[:n])
}
