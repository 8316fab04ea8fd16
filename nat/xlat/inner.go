package xlat

import "net/netip"

// Inner describes how to translate the packet quoted in an ICMP error
// message (RFC 7915 §4.3 and §5.3): the addresses and ports it is to carry
// after translation. The caller, a stateful NAT64, looks the quoted packet's
// flow up (the quoted packet travels in the opposite direction to the error)
// and fills Inner in.
//
// Src and Dst must be of the target family: IPv4 for ToIPv4 (IPv4-mapped
// IPv6 addresses are unmapped), IPv6 for ToIPv6. SrcPort and DstPort are the
// TCP or UDP ports; for a quoted ICMP echo request the identifier is SrcPort
// and for an echo reply DstPort, the other being ignored, as header.Parsed
// reports them. Ports are written even when equal to the quoted ones (a
// no-op).
type Inner struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}
