package checksum

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// naiveSum is the byte-at-a-time RFC 1071 reference: 16-bit big-endian words,
// odd trailing byte padded with zero, 32-bit accumulator folded at the end.
func naiveSum(b []byte, initial uint32) uint32 {
	s := uint64(initial)
	for i := 0; i < len(b); i += 2 {
		w := uint64(b[i]) << 8
		if i+1 < len(b) {
			w |= uint64(b[i+1])
		}
		s += w
	}
	for s>>16 != 0 {
		s = (s >> 16) + (s & 0xffff)
	}
	return uint32(s)
}

// naiveChecksum is the complemented, folded naive sum.
func naiveChecksum(b []byte, initial uint32) uint16 {
	return ^uint16(naiveSum(b, initial))
}

// same reports whether two accumulators denote the same ones'-complement value
// and the same zero-ness (Fold keeps the distinction between +0 and -0 only
// for the all-zero input).
func sameAcc(a, b uint32) bool { return Fold(a) == Fold(b) }

func TestSumKnownVectors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want uint16 // Fold(Sum(b,0))
	}{
		{"empty", nil, 0},
		{"rfc1071 example", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0xddf2},
		{"odd", []byte{0x01}, 0x0100},
		{"odd3", []byte{0x01, 0x02, 0x03}, 0x0402},
		{"all ones", []byte{0xff, 0xff, 0xff, 0xff}, 0xffff},
		{"carry", []byte{0xff, 0xff, 0x00, 0x01}, 0x0001},
		// 20-byte IPv4 header example (checksum field zeroed); checksum 0xb861.
		{"ipv4 header", []byte{
			0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, ^uint16(0xb861)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fold(Sum(tt.b, 0)); got != tt.want {
				t.Errorf("Fold(Sum) = %#04x, want %#04x", got, tt.want)
			}
			if got := Fold(naiveSum(tt.b, 0)); got != tt.want {
				t.Errorf("naive = %#04x, want %#04x (reference is wrong)", got, tt.want)
			}
		})
	}
	if got := Checksum([]byte{
		0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
		0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, 0); got != 0xb861 {
		t.Errorf("Checksum(ipv4 header) = %#04x, want 0xb861", got)
	}
	// Verification of a header with its checksum in place yields 0.
	if got := Checksum([]byte{
		0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
		0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, 0); got != 0 {
		t.Errorf("verify = %#04x, want 0", got)
	}
}

func TestSumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	inits := []uint32{0, 1, 0xffff, 0x1_0000, 0xfffe_ffff, 0xffff_ffff}
	// Every length and every alignment up to 300, plus a few large ones.
	for n := 0; n <= 300; n++ {
		for off := 0; off < 8; off++ {
			b := buf[off : off+n]
			for _, in := range inits {
				if got, want := Sum(b, in), naiveSum(b, in); !sameAcc(got, want) {
					t.Fatalf("len %d off %d init %#x: Sum %#x (fold %#04x), naive %#x (fold %#04x)",
						n, off, in, got, Fold(got), want, Fold(want))
				}
			}
		}
	}
	for _, n := range []int{1023, 1500, 4000} {
		if got, want := Sum(buf[:n], 7), naiveSum(buf[:n], 7); !sameAcc(got, want) {
			t.Fatalf("len %d: %#x vs %#x", n, got, want)
		}
	}
	// Adversarial: all 0xff maximises carries in every lane.
	ff := make([]byte, 65536)
	for i := range ff {
		ff[i] = 0xff
	}
	for _, n := range []int{8, 32, 33, 1000, 65535, 65536} {
		if got, want := Sum(ff[:n], 0xffffffff), naiveSum(ff[:n], 0xffffffff); !sameAcc(got, want) {
			t.Fatalf("ff len %d: %#x vs %#x", n, got, want)
		}
	}
}

func TestSumChaining(t *testing.T) {
	b := []byte("the quick brown fox jumps over the lazy dog!")
	for split := 0; split <= len(b); split += 2 {
		got := Sum(b[split:], Sum(b[:split], 0))
		if want := Sum(b, 0); !sameAcc(got, want) {
			t.Fatalf("split %d: %#x vs %#x", split, got, want)
		}
	}
}

func TestSumZeroness(t *testing.T) {
	// A non-zero input never sums to +0; an all-zero input always does.
	if Sum(make([]byte, 100), 0) != 0 {
		t.Error("Sum(zeros) != 0")
	}
	if Fold(Sum([]byte{0xff, 0xff}, 0)) != 0xffff {
		t.Error("Sum(ffff) should fold to 0xffff (negative zero), not 0")
	}
	if Fold(Sum([]byte{0x80, 0x00, 0x7f, 0xff}, 0)) != 0xffff {
		t.Error("0x8000+0x7fff should fold to 0xffff")
	}
}

func TestFold(t *testing.T) {
	for _, tc := range []struct {
		in   uint32
		want uint16
	}{
		{0, 0}, {1, 1}, {0xffff, 0xffff}, {0x10000, 1}, {0x1fffe, 0xffff},
		{0xffffffff, 0xffff}, {0xfffeffff, 0xfffe}, {0x12345678, 0x68ac},
	} {
		if got := Fold(tc.in); got != tc.want {
			t.Errorf("Fold(%#x) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
}

func TestPseudoHeader(t *testing.T) {
	// IPv4 pseudo-header laid out explicitly (RFC 793 §3.1).
	src := []byte{192, 168, 0, 1}
	dst := []byte{10, 0, 0, 2}
	ph := []byte{192, 168, 0, 1, 10, 0, 0, 2, 0, 6, 0x05, 0xdc}
	if got, want := PseudoHeader(src, dst, 6, 1500), naiveSum(ph, 0); !sameAcc(got, want) {
		t.Errorf("v4: %#x vs %#x", got, want)
	}
	// IPv6 pseudo-header (RFC 8200 §8.1): 32-bit length, 24 zero bits, next header.
	s6 := make([]byte, 16)
	d6 := make([]byte, 16)
	for i := range s6 {
		s6[i], d6[i] = byte(0x20+i), byte(0xf0-i)
	}
	ph6 := append(append(append([]byte{}, s6...), d6...), 0, 1, 0x23, 0x45, 0, 0, 0, 58)
	if got, want := PseudoHeader(s6, d6, 58, 0x12345), naiveSum(ph6, 0); !sameAcc(got, want) {
		t.Errorf("v6: %#x vs %#x", got, want)
	}
	// Worst case for internal carries.
	f := []byte{0xff, 0xff, 0xff, 0xff}
	if got, want := PseudoHeader(f, f, 0xff, 0xffffffff),
		naiveSum([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0xff}, 0); !sameAcc(got, want) {
		t.Errorf("ff: %#x vs %#x", got, want)
	}
}

// checkUpdate rewrites data[off:off+len(new)] and checks the incremental
// update against a full recompute. data's checksum field is not part of data
// (it is kept separately), so the full checksum is naiveChecksum(data).
//
// RFC 1624 eqn. 3 yields exactly the full recompute whenever the new data
// does not sum to zero; when it does (all-zero data) the two differ only in
// the representation of zero (0x0000 vs 0xffff), and both must verify.
func checkUpdate(t testing.TB, data []byte, off int, newField []byte, upd func(old uint16, oldField []byte) uint16) {
	t.Helper()
	old := naiveChecksum(data, 0)
	oldField := append([]byte(nil), data[off:off+len(newField)]...)
	copy(data[off:], newField)
	got := upd(old, oldField)
	want := naiveChecksum(data, 0)
	if naiveSum(data, 0) == 0 {
		// All-zero data: accept either representation of zero.
		if got != 0 && got != 0xffff {
			t.Fatalf("zero data: got %#04x", got)
		}
		return
	}
	if got != want {
		t.Fatalf("incremental %#04x != full %#04x (data %x, field at %d %x -> %x)",
			got, want, data, off, oldField, newField)
	}
	// Whole-message verification: data plus the checksum word sums to 0xffff.
	var w [2]byte
	binary.BigEndian.PutUint16(w[:], got)
	if v := Fold(naiveSum(w[:], naiveSum(data, 0))); v != 0xffff {
		t.Fatalf("verification sum %#04x, want 0xffff", v)
	}
}

func TestUpdateRFC1624Example(t *testing.T) {
	// RFC 1624 §4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285, HC' = 0x0000.
	if got := Update16(0xdd2f, 0x5555, 0x3285); got != 0x0000 {
		t.Errorf("Update16 = %#04x, want 0x0000", got)
	}
}

func TestUpdateMatchesRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	special := []uint16{0, 1, 0x7fff, 0x8000, 0xfffe, 0xffff}
	for i := 0; i < 20000; i++ {
		data := randBytes(2 * (2 + r.IntN(30)))
		// Occasionally make the data sparse to hit zero/negative-zero cases.
		if i%7 == 0 {
			clear(data)
			data[r.IntN(len(data))] = byte(r.Uint32())
		}
		words := len(data) / 2
		switch i % 3 {
		case 0:
			off := 2 * r.IntN(words)
			nv := uint16(r.Uint32())
			if i%5 == 0 {
				nv = special[r.IntN(len(special))]
			}
			var nb [2]byte
			binary.BigEndian.PutUint16(nb[:], nv)
			checkUpdate(t, data, off, nb[:], func(old uint16, of []byte) uint16 {
				return Update16(old, binary.BigEndian.Uint16(of), nv)
			})
		case 1:
			if words < 2 {
				continue
			}
			off := 2 * r.IntN(words-1)
			nv := r.Uint32()
			var nb [4]byte
			binary.BigEndian.PutUint32(nb[:], nv)
			checkUpdate(t, data, off, nb[:], func(old uint16, of []byte) uint16 {
				return Update32(old, binary.BigEndian.Uint32(of), nv)
			})
		case 2:
			n := 4
			if r.IntN(2) == 0 {
				n = 16
			}
			if len(data) < n {
				continue
			}
			off := 2 * r.IntN((len(data)-n)/2+1)
			nb := randBytes(n)
			checkUpdate(t, data, off, nb, func(old uint16, of []byte) uint16 {
				return UpdateBytes(old, of, nb)
			})
		}
	}
}

func TestUpdateBytesMismatchedLengths(t *testing.T) {
	// Defined, non-panicking behaviour on precondition violations.
	if got := UpdateBytes(0x1234, []byte{1, 2, 3}, []byte{1, 2}); got != Update16(0x1234, 0x0102, 0x0102) {
		t.Errorf("got %#04x", got)
	}
	if got := UpdateBytes(0x1234, nil, []byte{1, 2}); got != 0x1234 {
		t.Errorf("empty update changed checksum to %#04x", got)
	}
}

func FuzzSum(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Add([]byte{0xff}, uint32(0xffffffff))
	f.Add([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7, 0x42}, uint32(7))
	f.Add(make([]byte, 65), uint32(0xffff))
	f.Fuzz(func(t *testing.T, b []byte, initial uint32) {
		got, want := Sum(b, initial), naiveSum(b, initial)
		if !sameAcc(got, want) {
			t.Fatalf("Sum %#x (fold %#04x) != naive %#x (fold %#04x)", got, Fold(got), want, Fold(want))
		}
		if Checksum(b, initial) != naiveChecksum(b, initial) {
			t.Fatal("Checksum mismatch")
		}
	})
}

func FuzzUpdate(f *testing.F) {
	f.Add([]byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00}, uint8(2), []byte{0xab, 0xcd, 0xef, 0x01})
	f.Add([]byte{0x00, 0x00, 0x00, 0x00}, uint8(0), []byte{0x00, 0x00})
	f.Add(make([]byte, 40), uint8(8), make([]byte, 16))
	f.Fuzz(func(t *testing.T, data []byte, off uint8, newField []byte) {
		// The fuzzing engine may hand out arguments that share memory; work on
		// private copies so that rewriting data cannot change newField.
		data = append([]byte(nil), data[:len(data)&^1]...)
		newField = append([]byte(nil), newField[:len(newField)&^1]...)
		o := int(off) &^ 1
		if len(newField) == 0 || o+len(newField) > len(data) {
			return
		}
		switch len(newField) {
		case 2:
			nv := binary.BigEndian.Uint16(newField)
			checkUpdate(t, data, o, newField, func(old uint16, of []byte) uint16 {
				return Update16(old, binary.BigEndian.Uint16(of), nv)
			})
		case 4:
			nv := binary.BigEndian.Uint32(newField)
			d2 := append([]byte(nil), data...)
			checkUpdate(t, data, o, newField, func(old uint16, of []byte) uint16 {
				return Update32(old, binary.BigEndian.Uint32(of), nv)
			})
			checkUpdate(t, d2, o, newField, func(old uint16, of []byte) uint16 {
				return UpdateBytes(old, of, newField)
			})
		default:
			checkUpdate(t, data, o, newField, func(old uint16, of []byte) uint16 {
				return UpdateBytes(old, of, newField)
			})
		}
	})
}

var sink uint32

func BenchmarkSum(b *testing.B) {
	for _, n := range []int{20, 40, 64, 576, 1500, 9000} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				sink += Sum(buf, 0)
			}
		})
		b.Run(itoa(n)+"/naive", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				sink += naiveSum(buf, 0)
			}
		})
	}
}

func BenchmarkUpdate(b *testing.B) {
	old16 := make([]byte, 16)
	new16 := []byte{0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	b.Run("Update16", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink += uint32(Update16(uint16(sink), 0x1234, 0x4321))
		}
	})
	b.Run("Update32", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink += uint32(Update32(uint16(sink), 0x12345678, 0x87654321))
		}
	})
	b.Run("UpdateBytes16", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink += uint32(UpdateBytes(uint16(sink), old16, new16))
		}
	})
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

func TestNoAllocs(t *testing.T) {
	buf := make([]byte, 1500)
	a4, b4 := []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8}
	if n := testing.AllocsPerRun(100, func() {
		sink += Sum(buf, 0)
		sink += uint32(Checksum(buf, PseudoHeader(a4, b4, 6, 1480)))
		sink += uint32(UpdateBytes(1, a4, b4))
	}); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}
