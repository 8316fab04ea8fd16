package xlat

import "net/netip"

// ValidPrefix reports whether p is usable as an RFC 6052 §2.2 IPv6 prefix
// for IPv4-embedded addresses: a valid IPv6 prefix (not IPv4-mapped) of
// length 32, 40, 48, 56, 64 or 96.
func ValidPrefix(p netip.Prefix) bool {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
		return false
	}
	switch p.Bits() {
	case 32, 40, 48, 56, 64, 96:
		return true
	}
	return false
}

// Embed returns the IPv4-embedded IPv6 address that represents v4 under
// prefix p (RFC 6052 §2.2): the prefix, then the 32 bits of v4 placed after
// it, skipping bits 64 to 71 (the "u" octet), which are zero, and a zero
// suffix. Bits of p.Addr() past p.Bits() are ignored.
//
// Preconditions: ValidPrefix(p) and v4 is an IPv4 address (an IPv4-mapped
// IPv6 address is unmapped). Otherwise Embed returns the zero Addr.
func Embed(p netip.Prefix, v4 netip.Addr) netip.Addr {
	v4 = v4.Unmap()
	if !ValidPrefix(p) || !v4.Is4() {
		return netip.Addr{}
	}
	a := p.Masked().Addr().As16()
	b := v4.As4()
	j := p.Bits() / 8
	for i := range 4 {
		if j == 8 {
			j++ // RFC 6052 §2.2: bits 64-71 must be zero
		}
		a[j] = b[i]
		j++
	}
	return netip.AddrFrom16(a)
}

// Extract returns the IPv4 address embedded in v6 under prefix p (RFC 6052
// §2.2), the reverse of Embed. ok is false if p is not ValidPrefix, v6 is not
// an IPv6 address inside p, or bits 64 to 71 of v6 are not zero (RFC 6052
// §2.2: they "MUST be set to zero"; refusing others keeps the mapping one to
// one). The suffix bits are ignored, as RFC 6052 §2.2 allows.
func Extract(p netip.Prefix, v6 netip.Addr) (v4 netip.Addr, ok bool) {
	if !ValidPrefix(p) || !v6.Is6() || !p.Contains(v6.WithZone("")) {
		return netip.Addr{}, false
	}
	a := v6.As16()
	if p.Bits() < 96 && a[8] != 0 {
		return netip.Addr{}, false
	}
	var b [4]byte
	j := p.Bits() / 8
	for i := range 4 {
		if j == 8 {
			j++
		}
		b[i] = a[j]
		j++
	}
	return netip.AddrFrom4(b), true
}
