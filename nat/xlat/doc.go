// Package xlat translates packets between IPv6 and IPv4 headers, in place and
// without allocating, as the stateless IP/ICMP translation algorithm (SIIT,
// RFC 7915) describes, with the IPv4-embedded IPv6 address formats of
// RFC 6052. It is the header-translation half of a stateful NAT64
// (RFC 6146): the caller owns the state, chooses the addresses of the
// translated packet (and, for an ICMP error, of the packet it quotes) and
// rewrites ports afterwards with the header.Parsed setters.
//
// ToIPv4 (RFC 7915 §5) and ToIPv6 (RFC 7915 §4) translate TCP, UDP and
// ICMP/ICMPv6 packets. Transport checksums are adjusted incrementally for the
// pseudo-header change (RFC 1624, RFC 7915 §4.5 and §5.5); ICMP error
// messages, whose quoted packet is rebuilt in the other family, get a full
// checksum. Anything that cannot be translated yields a Reason other than
// Ok; no input makes the package panic.
//
// Deliberate differences from RFC 7915, for a NAT that sits behind a TUN
// device in a host that routes:
//   - The TTL and Hop Limit are copied, not decremented (RFC 7915 §4.1 and
//     §5.1 decrement them): the kernel decrements when it routes the packet
//     into and out of the device.
//   - Fragments are not translated (Reason Fragment), nor are IPv6 packets
//     carrying a Fragment header at all, atomic fragments included.
//   - Only TCP, UDP and ICMP are translated (the protocols a stateful NAT64
//     keeps state for, RFC 6146 §1); other protocols yield Unsupported.
//   - ICMP extensions (RFC 4884) are removed: the quote is cut at the length
//     attribute and the attribute is set to 0.
//   - The translator does not know next-hop MTUs, so the MTU of a Packet
//     Too Big / Fragmentation Needed message is only adjusted by the header
//     size difference (see icmp.go).
//   - ICMP errors that the translator itself should send (for instance
//     RFC 7915 §5.1 for a Routing header with Segments Left non-zero) are
//     left to the caller: the Reason says which one.
package xlat
