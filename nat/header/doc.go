// Package header provides zero-copy views of IPv4, IPv6, TCP, UDP, ICMPv4
// and ICMPv6 headers and a Parsed type that decodes one IP packet in place,
// without allocating, for the NAT and its application-level gateways.
//
// A view (IPv4, IPv6, TCP, UDP, ICMPv4, ICMPv6) is a named []byte starting at
// the header. Getters read fields in place; setters write in place and, where
// the field is covered by a checksum, update that checksum incrementally
// (RFC 1624) so that no call site can forget to. Views never panic: if a view
// is shorter than the field it is asked for, getters return zero and setters
// do nothing. Use Parsed.Decode first to know that the fields are present.
//
// Parsed.Decode validates a whole packet (lengths, IPv4 header checksum,
// IPv6 extension header chain, TCP options, UDP length) and reports a Reason
// for anything malformed. Hostile input never causes a panic; it yields a
// Reason. Parsed's setters (SetSrcAddr, SetSrcPort, SetTCPSeq, ...) rewrite the
// packet keeping every checksum it carries correct: the IPv4 header checksum,
// and the transport checksum including its pseudo-header.
package header
