package conntrack

import (
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat/ipproto"
)

// benchFlow is flow k of a large table: inside host k/50000, port k%50000.
func benchFlow(k int) *Flow {
	in := netip.AddrFrom4([4]byte{198, 18, byte(k >> 16), byte(k >> 8)})
	srv := netip.AddrFrom4([4]byte{198, 19, byte(k >> 16), byte(k)})
	port := uint16(1024 + k%60000)
	o := Tuple{Src: in, Dst: srv, SrcPort: port, DstPort: 80, Proto: ipproto.TCP}
	r := Tuple{Src: srv, Dst: public, SrcPort: 80, DstPort: port, Proto: ipproto.TCP}
	return NewFlow(o, r)
}

func BenchmarkInsert(b *testing.B) {
	b.ReportAllocs()
	tb := NewTable(Config{MaxFlows: 1 << 30})
	k := 0
	for b.Loop() {
		if _, _, err := tb.Insert(benchFlow(k), 0); err != nil {
			b.Fatal(err)
		}
		k++
	}
}

// BenchmarkLookupFlows looks up random flows of tables of growing size,
// both directions: the cost of the cache misses a large table brings.
func BenchmarkLookupFlows(b *testing.B) {
	for _, n := range []int{1000, 100_000, 1_000_000} {
		b.Run(itoa(n), func(b *testing.B) {
			tb := NewTable(Config{MaxFlows: n})
			keys := make([]Tuple, 0, 2*n)
			for k := range n {
				f := benchFlow(k)
				tb.Insert(f, 0)
				keys = append(keys, f.Tuples[Original], f.Tuples[Reply])
			}
			// A fixed pseudo-random walk over the keys.
			idx := make([]int32, len(keys))
			for i := range idx {
				idx[i] = int32(uint64(i) * 2654435761 % uint64(len(keys)))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if f, _ := tb.Lookup(keys[idx[i]], 1); f == nil {
					b.Fatal("miss")
				}
				if i++; i == len(idx) {
					i = 0
				}
			}
		})
	}
}

// BenchmarkLookupParallel looks up from every GOMAXPROCS worker at once.
func BenchmarkLookupParallel(b *testing.B) {
	tb := NewTable(Config{})
	keys := make([]Tuple, 10000)
	for k := range keys {
		f := benchFlow(k)
		tb.Insert(f, 0)
		keys[k] = f.Tuples[k&1]
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if f, _ := tb.Lookup(keys[i%len(keys)], 1); f == nil {
				b.Fatal("miss")
			}
			i += 7
		}
	})
}

func BenchmarkTouchEstablished(b *testing.B) {
	f := benchFlow(1)
	to := DefaultTimeouts
	f.Touch(Original, ipproto.TCPSYN, 0, &to)
	f.Touch(Reply, ipproto.TCPSYN|ipproto.TCPACK, 0, &to)
	f.Touch(Original, ipproto.TCPACK, 0, &to)
	b.ReportAllocs()
	for b.Loop() {
		f.Touch(Original, ipproto.TCPACK, 1, &to)
	}
}

func itoa(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return string(rune('0'+n/1_000_000)) + "M"
	case n >= 1000 && n%1000 == 0:
		s := ""
		for m := n / 1000; m > 0; m /= 10 {
			s = string(rune('0'+m%10)) + s
		}
		return s + "k"
	}
	return "n"
}
