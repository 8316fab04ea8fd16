package xlat

import (
	"net/netip"
	"testing"
)

// RFC 6052 §2.4, "Text Representation of IPv4-Embedded IPv6 Address", with
// 192.0.2.33, and the same prefixes with 198.51.100.2 (c6.33.64.02) worked
// out by hand from the §2.2 layout.
var embedCases = []struct {
	prefix, v4, v6 string
}{
	{"2001:db8::/32", "192.0.2.33", "2001:db8:c000:221::"},
	{"2001:db8:100::/40", "192.0.2.33", "2001:db8:1c0:2:21::"},
	{"2001:db8:122::/48", "192.0.2.33", "2001:db8:122:c000:2:2100::"},
	{"2001:db8:122:300::/56", "192.0.2.33", "2001:db8:122:3c0:0:221::"},
	{"2001:db8:122:344::/64", "192.0.2.33", "2001:db8:122:344:c0:2:2100:0"},
	{"2001:db8:122:344::/96", "192.0.2.33", "2001:db8:122:344::192.0.2.33"},
	{"64:ff9b::/96", "192.0.2.33", "64:ff9b::c000:221"},
	{"2001:db8::/32", "198.51.100.2", "2001:db8:c633:6402::"},
	{"2001:db8:100::/40", "198.51.100.2", "2001:db8:1c6:3364:2::"},
	{"2001:db8:122::/48", "198.51.100.2", "2001:db8:122:c633:64:200::"},
	{"2001:db8:122:300::/56", "198.51.100.2", "2001:db8:122:3c6:33:6402::"},
	{"2001:db8:122:344::/64", "198.51.100.2", "2001:db8:122:344:c6:3364:200:0"},
	{"64:ff9b::/96", "198.51.100.2", "64:ff9b::c633:6402"},
}

func TestEmbedExtractRFC6052(t *testing.T) {
	for _, c := range embedCases {
		p := netip.MustParsePrefix(c.prefix)
		v4 := netip.MustParseAddr(c.v4)
		want := netip.MustParseAddr(c.v6)
		if !ValidPrefix(p) {
			t.Errorf("ValidPrefix(%v) = false", p)
		}
		if got := Embed(p, v4); got != want {
			t.Errorf("Embed(%v, %v) = %v, want %v", p, v4, got, want)
		}
		if got := Embed(p, netip.AddrFrom16(v4.As16())); got != want {
			t.Errorf("Embed(%v, mapped %v) = %v, want %v", p, v4, got, want)
		}
		got, ok := Extract(p, want)
		if !ok || got != v4 {
			t.Errorf("Extract(%v, %v) = %v, %v, want %v, true", p, want, got, ok, v4)
		}
	}
}

func TestEmbedExtractRejects(t *testing.T) {
	for _, s := range []string{"2001:db8::/33", "2001:db8::/128", "::/0", "192.0.2.0/24", "::ffff:0:0/96"} {
		p := netip.MustParsePrefix(s)
		if ValidPrefix(p) {
			t.Errorf("ValidPrefix(%v) = true", p)
		}
		if a := Embed(p, netip.MustParseAddr("192.0.2.33")); a.IsValid() {
			t.Errorf("Embed(%v) = %v, want the zero Addr", p, a)
		}
		if a, ok := Extract(p, netip.MustParseAddr("2001:db8::1")); ok || a.IsValid() {
			t.Errorf("Extract(%v) = %v, %v", p, a, ok)
		}
	}
	if ValidPrefix(netip.Prefix{}) {
		t.Error("ValidPrefix(zero Prefix) = true")
	}
	p := netip.MustParsePrefix("2001:db8:122:344::/64")
	if a := Embed(p, netip.MustParseAddr("2001:db8::1")); a.IsValid() {
		t.Errorf("Embed(IPv6 address) = %v", a)
	}
	if a := Embed(p, netip.Addr{}); a.IsValid() {
		t.Errorf("Embed(zero Addr) = %v", a)
	}
	for _, s := range []string{
		"2001:db8:122:345:c0:2:2100:0",  // outside the prefix
		"2001:db8:122:344:1c0:2:2100:0", // u octet (bits 64-71) not zero
		"192.0.2.33",
	} {
		if a, ok := Extract(p, netip.MustParseAddr(s)); ok {
			t.Errorf("Extract(%v, %v) = %v, true", p, s, a)
		}
	}
	// Host bits in the prefix are ignored by Embed; the suffix by Extract.
	if got := Embed(netip.MustParsePrefix("64:ff9b::2:3/96"), netip.MustParseAddr("192.0.2.33")); got != netip.MustParseAddr("64:ff9b::192.0.2.33") {
		t.Errorf("Embed with host bits = %v", got)
	}
	if got, ok := Extract(p, netip.MustParseAddr("2001:db8:122:344:c0:2:21ff:ffff")); !ok || got != netip.MustParseAddr("192.0.2.33") {
		t.Errorf("Extract with a suffix = %v, %v", got, ok)
	}
	// Zones are ignored.
	if got, ok := Extract(p, netip.MustParseAddr("2001:db8:122:344:c0:2:2100:0%eth0")); !ok || got != netip.MustParseAddr("192.0.2.33") {
		t.Errorf("Extract with a zone = %v, %v", got, ok)
	}
}

func TestEmbedExtractAllLengths(t *testing.T) {
	v4s := []string{"0.0.0.0", "255.255.255.255", "10.1.2.3", "203.0.113.255"}
	for _, bits := range []int{32, 40, 48, 56, 64, 96} {
		p := netip.PrefixFrom(netip.MustParseAddr("2001:db8:aaaa:bbbb::"), bits).Masked()
		for _, s := range v4s {
			v4 := netip.MustParseAddr(s)
			a := Embed(p, v4)
			if !p.Contains(a) {
				t.Errorf("/%d: Embed(%v) = %v outside the prefix", bits, v4, a)
			}
			if b := a.As16(); b[8] != 0 {
				t.Errorf("/%d: Embed(%v) = %v: u octet not zero", bits, v4, a)
			}
			if got, ok := Extract(p, a); !ok || got != v4 {
				t.Errorf("/%d: Extract(Embed(%v)) = %v, %v", bits, v4, got, ok)
			}
		}
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("Reason %d: name %q", r, s)
		}
		seen[s] = true
	}
	if Reasons()[0] != Ok || Ok.String() != "ok" {
		t.Error("Ok is not first or not named ok")
	}
	if Reason(200).String() != "unknown" {
		t.Error("out of range Reason not unknown")
	}
}
