package xlat

// Reason is the outcome of ToIPv4 and ToIPv6: Ok, or why the packet was not
// translated. String gives a snake_case name suitable as a metrics label.
// Every Reason other than Ok means "drop the packet"; the packet's bytes may
// have been partly rewritten and must not be forwarded.
type Reason uint8

// Translation outcomes.
const (
	// Ok: the packet was translated.
	Ok Reason = iota
	// Malformed: the packet (or the packet quoted in an ICMP error) does not
	// decode with header.Parsed, or is not of the expected IP version.
	Malformed
	// Unsupported: a transport protocol other than TCP, UDP and ICMP, an
	// IPv6 Authentication Header (RFC 7915 §5.1: it cannot survive
	// translation), or an ICMP informational message that has no
	// counterpart (RFC 7915 §4.2 and §5.2: Neighbor Discovery, MLD,
	// timestamp, address mask, router messages, unknown types).
	Unsupported
	// Fragment: an IPv4 fragment (MF set or offset non-zero), an IPv6
	// packet with a Fragment header, or an ICMP error quoting a fragment.
	Fragment
	// TooBig: the translated packet does not fit: more than 65535 bytes of
	// IPv4 total length, or (ToIPv6) more than cap(pkt).
	TooBig
	// BadAddress: an address given for the translated packet (or its
	// quoted packet) is not of the target family.
	BadAddress
	// SourceRoute: an IPv6 Routing header with Segments Left non-zero. RFC
	// 7915 §5.1: do not translate; the caller may send an ICMPv6 Parameter
	// Problem (type 4, code 0) pointing at the Segments Left field.
	SourceRoute
	// ICMPNoMapping: an ICMP error type or code, or a Parameter Problem
	// pointer, that RFC 7915 §4.2 or §5.2 says to silently drop.
	ICMPNoMapping
	// InnerMissing: an ICMP error was given without the *Inner describing
	// its quoted packet.
	InnerMissing

	numReasons // keep last
)

var reasonNames = [numReasons]string{
	Ok:            "ok",
	Malformed:     "malformed",
	Unsupported:   "unsupported",
	Fragment:      "fragment",
	TooBig:        "too_big",
	BadAddress:    "bad_address",
	SourceRoute:   "source_route",
	ICMPNoMapping: "icmp_no_mapping",
	InnerMissing:  "inner_missing",
}

// String returns the snake_case name of r, or "unknown" for a value that is
// not one of the constants.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons returns every Reason, Ok first, in declaration order; for example
// to pre-register one counter per reason. The caller owns the slice.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}
