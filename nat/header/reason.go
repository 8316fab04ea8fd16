package header

// Reason is the outcome of Parsed.Decode: Ok, or the class of malformation
// that made the packet undecodable. String gives a snake_case name suitable as
// a metrics label.
type Reason uint8

// Decode outcomes.
const (
	// Ok: the packet is well formed as far as Decode checks.
	Ok Reason = iota
	// Truncated: a header (IP, extension, transport, ICMP) does not fit in the
	// bytes available.
	Truncated
	// BadVersion: the IP version nibble is neither 4 nor 6.
	BadVersion
	// BadIHL: IPv4 IHL < 5.
	BadIHL
	// BadTotalLength: IPv4 total length < IHL*4 or > the bytes available;
	// IPv6 40 + payload length > the bytes available.
	BadTotalLength
	// BadIPChecksum: the IPv4 header checksum does not verify.
	BadIPChecksum
	// IPv6ExtChain: more than MaxIPv6ExtHeaders extension headers, a
	// Hop-by-Hop header not directly after the fixed header, or more than one
	// Fragment header.
	IPv6ExtChain
	// BadTCPOffset: TCP data offset < 5 or beyond the end of the packet.
	BadTCPOffset
	// BadTCPOptions: a TCP option with length < 2, running past the option
	// space, or an MSS option whose length is not 4.
	BadTCPOptions
	// BadSACK: a SACK option whose length is not 2+8n with n in 1..4, or a
	// second SACK option.
	BadSACK
	// UDPBadLength: UDP length < 8, or (unfragmented outer packet) not equal
	// to the IP payload length.
	UDPBadLength
	// ICMPNestedError: DecodeInner found an ICMP error inside an ICMP error.
	ICMPNestedError

	numReasons // keep last
)

var reasonNames = [numReasons]string{
	Ok:              "ok",
	Truncated:       "truncated",
	BadVersion:      "bad_version",
	BadIHL:          "bad_ihl",
	BadTotalLength:  "bad_total_length",
	BadIPChecksum:   "bad_ip_checksum",
	IPv6ExtChain:    "ipv6_ext_chain",
	BadTCPOffset:    "bad_tcp_offset",
	BadTCPOptions:   "bad_tcp_options",
	BadSACK:         "bad_sack",
	UDPBadLength:    "udp_bad_length",
	ICMPNestedError: "icmp_nested_error",
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
