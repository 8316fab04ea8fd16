package alg

import (
	"bytes"
	"net/netip"
	"strconv"
)

// AppendPORT appends the RFC 959 §4.1.2 host-port text "h1,h2,h3,h4,p1,p2"
// for addr and port to dst and returns the extended slice. The text is the
// replacement for Announcement.Start:End of a PORT command or a 227 reply.
//
// Precondition: addr is an IPv4 address; an IPv4-mapped IPv6 address is
// unmapped first. For any other addr dst is returned unchanged. AppendPORT
// does not allocate when dst has room for 23 more bytes.
func AppendPORT(dst []byte, addr netip.Addr, port uint16) []byte {
	addr = addr.Unmap()
	if !addr.Is4() {
		return dst
	}
	for _, o := range addr.As4() {
		dst = strconv.AppendUint(dst, uint64(o), 10)
		dst = append(dst, ',')
	}
	dst = strconv.AppendUint(dst, uint64(port>>8), 10)
	dst = append(dst, ',')
	return strconv.AppendUint(dst, uint64(port&0xff), 10)
}

// AppendEPRT appends the RFC 2428 §2 EPRT argument "<d>1<d>a.b.c.d<d>port<d>"
// (addr.Is4) or "<d>2<d>v6addr<d>port<d>" (addr.Is6, including IPv4-mapped
// addresses, written in the full RFC 4291 §2.2 form the kernel uses, any zone dropped) to dst
// and returns the extended slice. The text is the replacement for
// Announcement.Start:End of an EPRT command.
//
// Preconditions: addr is valid (otherwise dst is returned unchanged); d is a
// delimiter allowed by RFC 2428 §2 (ASCII 33..126, not a digit), normally the
// Delim of the parsed line. If d is not allowed, or occurs in the address
// text (for example ':' with an IPv6 address), '|' is used instead so that
// the result is always well formed. port should be non-zero; it is written
// as given. AppendEPRT does not allocate when dst has room for 55 more bytes.
func AppendEPRT(dst []byte, d byte, addr netip.Addr, port uint16) []byte {
	var af byte
	switch {
	case addr.Is4():
		af = '1'
	case addr.Is6():
		af = '2'
		addr = addr.WithZone("")
	default:
		return dst
	}
	if !isDelim(d) {
		d = '|'
	}
	mark := len(dst)
	dst = append(dst, d, af, d)
	dst = appendEPRTAddr(dst, addr)
	if d != '|' && bytes.IndexByte(dst[mark+3:], d) >= 0 {
		dst = append(dst[:mark], '|', af, '|')
		dst = appendEPRTAddr(dst, addr)
		d = '|'
	}
	dst = append(dst, d)
	dst = strconv.AppendUint(dst, uint64(port), 10)
	return append(dst, d)
}

// AppendEPSV appends the RFC 2428 §3 229-reply text "<d><d><d>port<d>" to
// dst and returns the extended slice. The text is the replacement for
// Announcement.Start:End of a 229 reply.
//
// Preconditions: d is a delimiter allowed by RFC 2428 (ASCII 33..126, not a
// digit), normally the Delim of the parsed line; otherwise '|' is used.
// port should be non-zero; it is written as given. AppendEPSV does not
// allocate when dst has room for 9 more bytes.
func AppendEPSV(dst []byte, d byte, port uint16) []byte {
	if !isDelim(d) {
		d = '|'
	}
	dst = append(dst, d, d, d)
	dst = strconv.AppendUint(dst, uint64(port), 10)
	return append(dst, d)
}

// appendEPRTAddr writes an EPRT address: IPv4 dotted decimal; IPv6 in the
// full form of RFC 4291 §2.2 (eight groups of four hex digits), which is the
// text Linux's nf_nat_ftp writes (%pI6), so that a session through natalg is
// byte-identical to one through the kernel. RFC 2428 §2 lets the receiver
// accept any RFC 4291 form.
func appendEPRTAddr(dst []byte, addr netip.Addr) []byte {
	if addr.Is4() {
		return addr.AppendTo(dst)
	}
	const hex = "0123456789abcdef"
	b := addr.As16()
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			dst = append(dst, ':')
		}
		dst = append(dst, hex[b[i]>>4], hex[b[i]&15], hex[b[i+1]>>4], hex[b[i+1]&15])
	}
	return dst
}

// AppendLPRT appends the RFC 1639 §2 long-host-port "af,hal,h1,...,pal,p1,p2"
// for addr and port to dst and returns the extended slice: "4,4,a,b,c,d,2,
// p1,p2" for an IPv4 address, "6,16,h1,...,h16,2,p1,p2" for an IPv6 one
// (an IPv4-mapped address included, any zone dropped). The text is the
// replacement for Announcement.Start:End of an LPRT command or a 228 reply.
// For an invalid addr dst is returned unchanged. AppendLPRT does not
// allocate when dst has room for 78 more bytes.
func AppendLPRT(dst []byte, addr netip.Addr, port uint16) []byte {
	var b [16]byte
	var host []byte
	switch {
	case addr.Is4():
		dst = append(dst, "4,4"...)
		a4 := addr.As4()
		host = b[:copy(b[:], a4[:])]
	case addr.Is6():
		dst = append(dst, "6,16"...)
		b = addr.As16()
		host = b[:]
	default:
		return dst
	}
	for _, o := range host {
		dst = append(dst, ',')
		dst = strconv.AppendUint(dst, uint64(o), 10)
	}
	dst = append(dst, ",2,"...)
	dst = strconv.AppendUint(dst, uint64(port>>8), 10)
	dst = append(dst, ',')
	return strconv.AppendUint(dst, uint64(port&0xff), 10)
}
