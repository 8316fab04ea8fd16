package alg

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAppendPORT(t *testing.T) {
	cases := []struct {
		addr string
		port uint16
		want string
	}{
		{"198.18.0.2", 50000, "198,18,0,2,195,80"},
		{"0.0.0.0", 0, "0,0,0,0,0,0"},
		{"255.255.255.255", 65535, "255,255,255,255,255,255"},
		{"10.0.0.1", 21, "10,0,0,1,0,21"},
		{"::ffff:10.0.0.1", 256, "10,0,0,1,1,0"},
		{"2001:db8::1", 21, ""},
		{"", 21, ""},
	}
	for _, c := range cases {
		var a netip.Addr
		if c.addr != "" {
			a = netip.MustParseAddr(c.addr)
		}
		if got := string(AppendPORT([]byte("x"), a, c.port)); got != "x"+c.want {
			t.Errorf("AppendPORT(%v, %d) = %q, want %q", a, c.port, got, "x"+c.want)
		}
	}
}

func TestAppendEPRT(t *testing.T) {
	cases := []struct {
		d    byte
		addr string
		port uint16
		want string
	}{
		{'|', "198.18.0.2", 50000, "|1|198.18.0.2|50000|"},
		{'!', "198.18.0.2", 50000, "!1!198.18.0.2!50000!"},
		{'|', "2001:db8::1", 50000, "|2|2001:0db8:0000:0000:0000:0000:0000:0001|50000|"},
		{'|', "2001:0DB8:0:0:0:0:0:1", 21, "|2|2001:0db8:0000:0000:0000:0000:0000:0001|21|"}, // full RFC 4291 form, as the kernel writes
		{'|', "2001:db8:0:1:1:1:1:1", 21, "|2|2001:0db8:0000:0001:0001:0001:0001:0001|21|"},
		{'|', "1:0:0:1:0:0:0:1", 21, "|2|0001:0000:0000:0001:0000:0000:0000:0001|21|"},
		{'|', "fe80::1%eth0", 21, "|2|fe80:0000:0000:0000:0000:0000:0000:0001|21|"},
		{'|', "::ffff:198.18.0.2", 21, "|2|0000:0000:0000:0000:0000:ffff:c612:0002|21|"},
		{'.', "2001:db8::1", 21, ".2.2001:0db8:0000:0000:0000:0000:0000:0001.21."},
		{'.', "198.18.0.2", 21, "|1|198.18.0.2|21|"}, // '.' collides with the address
		{':', "2001:db8::1", 21, "|2|2001:0db8:0000:0000:0000:0000:0000:0001|21|"},
		{':', "198.18.0.2", 21, ":1:198.18.0.2:21:"},
		{'d', "2001:db8::1", 21, "|2|2001:0db8:0000:0000:0000:0000:0000:0001|21|"},
		{'x', "2001:db8::1", 21, "x2x2001:0db8:0000:0000:0000:0000:0000:0001x21x"},
		{'1', "198.18.0.2", 21, "|1|198.18.0.2|21|"}, // digits are not delimiters
		{' ', "198.18.0.2", 21, "|1|198.18.0.2|21|"},
		{0x7f, "198.18.0.2", 21, "|1|198.18.0.2|21|"},
		{'|', "", 21, ""},
	}
	for _, c := range cases {
		var a netip.Addr
		if c.addr != "" {
			a = netip.MustParseAddr(c.addr)
		}
		got := string(AppendEPRT([]byte("x"), c.d, a, c.port))
		if got != "x"+c.want {
			t.Errorf("AppendEPRT(%q, %v, %d) = %q, want %q", c.d, a, c.port, got, "x"+c.want)
		}
		if c.want == "" {
			continue
		}
		// The output must be a well-formed EPRT argument.
		line := "EPRT " + c.want + "\r\n"
		p, ok := ParseClientLine([]byte(line))
		if !ok || p.Addr != a.WithZone("") || p.Port != c.port || line[p.Start:p.End] != c.want {
			t.Errorf("%q does not parse back: %+v %v", line, p, ok)
		}
	}
}

func TestAppendEPSV(t *testing.T) {
	cases := []struct {
		d    byte
		port uint16
		want string
	}{
		{'|', 50000, "|||50000|"},
		{'!', 1, "!!!1!"},
		{'(', 65535, "(((65535("},
		{'5', 21, "|||21|"},
		{0, 21, "|||21|"},
		{0xff, 21, "|||21|"},
	}
	for _, c := range cases {
		if got := string(AppendEPSV([]byte("x"), c.d, c.port)); got != "x"+c.want {
			t.Errorf("AppendEPSV(%q, %d) = %q, want %q", c.d, c.port, got, "x"+c.want)
		}
		line := "229 Entering Extended Passive Mode (" + c.want + ")\r\n"
		p, ok := ParseServerLine([]byte(line))
		if !ok || p.Kind != Kind229 || p.Port != c.port || line[p.Start:p.End] != c.want {
			t.Errorf("%q does not parse back: %+v %v", line, p, ok)
		}
	}
}

func TestAppendLPRT(t *testing.T) {
	cases := []struct {
		addr string
		port uint16
		want string
	}{
		{"198.19.100.100", 50000, "4,4,198,19,100,100,2,195,80"},
		{"0.0.0.0", 0, "4,4,0,0,0,0,2,0,0"},
		{"2001:db8:19::100", 1, "6,16,32,1,13,184,0,25,0,0,0,0,0,0,0,0,1,0,2,0,1"},
		{"::ffff:198.18.0.2", 21, "6,16,0,0,0,0,0,0,0,0,0,0,255,255,198,18,0,2,2,0,21"},
		{"fe80::1%eth0", 65535, "6,16,254,128,0,0,0,0,0,0,0,0,0,0,0,0,0,1,2,255,255"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "6,16" + strings.Repeat(",255", 16) + ",2,255,255"},
	}
	for _, c := range cases {
		addr := netip.MustParseAddr(c.addr)
		if got := string(AppendLPRT([]byte("x"), addr, c.port)); got != "x"+c.want {
			t.Errorf("AppendLPRT(%v, %d) = %q, want %q", addr, c.port, got, "x"+c.want)
		}
		if len(c.want) > maxLongText {
			t.Errorf("%q is longer than maxLongText %d", c.want, maxLongText)
		}
		line := "LPRT " + c.want + "\r\n"
		p, ok := ParseClientLine([]byte(line))
		if !ok || p.Kind != KindLPRT || p.Addr != addr.WithZone("") || p.Port != c.port || line[p.Start:p.End] != c.want {
			t.Errorf("%q does not parse back: %+v %v", line, p, ok)
		}
	}
	if got := AppendLPRT([]byte("x"), netip.Addr{}, 21); string(got) != "x" {
		t.Errorf("invalid address: %q", got)
	}
}

func TestFormatAllocs(t *testing.T) {
	buf := make([]byte, 0, 80)
	v4 := netip.MustParseAddr("198.18.0.2")
	v6 := netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")
	v6z := netip.MustParseAddr("fe80::1%eth0")
	checks := []struct {
		name string
		f    func()
	}{
		{"AppendPORT", func() { buf = AppendPORT(buf[:0], v4, 65535) }},
		{"AppendEPRT v4", func() { buf = AppendEPRT(buf[:0], '|', v4, 65535) }},
		{"AppendEPRT v6", func() { buf = AppendEPRT(buf[:0], '|', v6, 65535) }},
		{"AppendEPRT v6 zone", func() { buf = AppendEPRT(buf[:0], '|', v6z, 65535) }},
		{"AppendEPRT fallback", func() { buf = AppendEPRT(buf[:0], 'f', v6, 65535) }},
		{"AppendEPSV", func() { buf = AppendEPSV(buf[:0], '|', 65535) }},
		{"AppendLPRT v4", func() { buf = AppendLPRT(buf[:0], v4, 65535) }},
		{"AppendLPRT v6", func() { buf = AppendLPRT(buf[:0], v6, 65535) }},
	}
	for _, c := range checks {
		if n := testing.AllocsPerRun(100, c.f); n != 0 {
			t.Errorf("%s: %v allocs", c.name, n)
		}
	}
	if cap(buf) != 80 {
		t.Errorf("buffer reallocated")
	}
}

var sinkBuf []byte

func BenchmarkAppendPORT(b *testing.B) {
	buf := make([]byte, 0, 64)
	a := netip.MustParseAddr("198.18.0.2")
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPORT(buf[:0], a, 50000)
	}
	sinkBuf = buf
}

func BenchmarkAppendEPRT4(b *testing.B) {
	buf := make([]byte, 0, 64)
	a := netip.MustParseAddr("198.18.0.2")
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEPRT(buf[:0], '|', a, 50000)
	}
	sinkBuf = buf
}

func BenchmarkAppendEPRT6(b *testing.B) {
	buf := make([]byte, 0, 64)
	a := netip.MustParseAddr("2001:db8:1234:5678::1")
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEPRT(buf[:0], '|', a, 50000)
	}
	sinkBuf = buf
}

func BenchmarkAppendEPSV(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEPSV(buf[:0], '|', 50000)
	}
	sinkBuf = buf
}
