package xlat

import (
	"testing"

	"github.com/natalg/natalg/nat/ipproto"
)

// Packets for the allocation test and the benchmarks.
var (
	benchTCP6 = mk6("2001:db8::1", "64:ff9b::c000:221", ipproto.TCP,
		tcpSeg(40000, 443, 1, 2, ipproto.TCPACK, optTS(), seq(1200)), v6cfg{hop: 64})
	benchTCP4 = mk4("192.0.2.33", "198.51.100.2", ipproto.TCP,
		tcpSeg(443, 61000, 1, 2, ipproto.TCPACK, optTS(), seq(1200)), v4cfg{ttl: 64, flagFrag: 0x4000})
	benchErr6 = err6(1, 4, 0, mk6(q6src, q6dst, ipproto.UDP, udpDgram(80, 40000, seq(100)), v6cfg{hop: 60}))
	benchErr4 = err4(3, 3, 0, mk4(q4src, q4dst, ipproto.UDP, udpDgram(80, 61000, seq(100)), v4cfg{ttl: 60}))
	benchIn4  = innerFor(q4src, q4dst, ipproto.UDP, false)
	benchIn6  = innerFor(q6src, q6dst, ipproto.UDP, false)
)

// translate copies tmpl into buf and translates it in the direction its
// version calls for, as the tests and benchmarks do per iteration.
func translate(buf, tmpl []byte) Reason {
	n := copy(buf, tmpl)
	var r Reason
	if tmpl[0]>>4 == 6 {
		_, r = ToIPv4(buf[:n], a4src, a4dst, benchIn4)
	} else {
		_, r = ToIPv6(buf[:n], a6src, a6dst, benchIn6)
	}
	return r
}

func TestNoAllocs(t *testing.T) {
	buf := make([]byte, 2048)
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"tcp v6->v4", benchTCP6},
		{"tcp v4->v6", benchTCP4},
		{"icmp error v6->v4", benchErr6},
		{"icmp error v4->v6", benchErr4},
	} {
		var r Reason
		allocs := testing.AllocsPerRun(200, func() { r = translate(buf, c.pkt) })
		if r != Ok {
			t.Errorf("%s: %v", c.name, r)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per packet", c.name, allocs)
		}
	}
}

// The benchmarks include copying the packet into the buffer (the
// translation is in place); BenchmarkCopy measures that alone.
func benchmark(b *testing.B, pkt []byte) {
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if r := translate(buf, pkt); r != Ok {
			b.Fatal(r)
		}
	}
}

func BenchmarkToIPv4TCP(b *testing.B)       { benchmark(b, benchTCP6) }
func BenchmarkToIPv6TCP(b *testing.B)       { benchmark(b, benchTCP4) }
func BenchmarkToIPv4ICMPError(b *testing.B) { benchmark(b, benchErr6) }
func BenchmarkToIPv6ICMPError(b *testing.B) { benchmark(b, benchErr4) }

func BenchmarkCopy(b *testing.B) {
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchTCP6)))
	for b.Loop() {
		copy(buf, benchTCP6)
	}
}
