// Package checksum implements the Internet checksum (RFC 1071) with a fast
// accumulator, the IPv4 and IPv6 pseudo-headers, and the RFC 1624 incremental
// update used when a NAT rewrites a field in place.
//
// The package works on a 32-bit "accumulator": a running ones'-complement
// sum whose value only matters modulo 0xffff. Sum produces one, PseudoHeader
// produces one, Fold reduces one to 16 bits and Checksum complements the
// result into the value a header carries.
//
// Nothing in this package panics or allocates, whatever its input.
package checksum

import (
	"encoding/binary"
	"math/bits"

	"github.com/natalg/natalg/nat/ipproto"
)

// Sum adds the 16-bit big-endian words of b to the running ones'-complement
// accumulator initial and returns the new accumulator (RFC 1071 §4.1).
//
// If len(b) is odd, b is treated as if padded with one zero byte, so its last
// byte is the high-order byte of a final word (RFC 1071 §4.1, RFC 793 §3.1).
// Consequently, when a buffer is summed in several calls, every chunk but the
// last must have even length.
//
// Sum processes 8 bytes per step with a 64-bit end-around-carry accumulator
// (RFC 1071 §2(C): the sum may be computed with wider words and folded).
func Sum(b []byte, initial uint32) uint32 {
	var acc, carry uint64
	// 32 bytes per iteration: four independent 64-bit loads chained through
	// the carry flag.
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[:8]), carry)
		b = b[8:]
	}
	// Fold the final carry back in (end-around carry). Adding 0 with carry can
	// only overflow when acc is all ones; the second add then cannot.
	acc, carry = bits.Add64(acc, 0, carry)
	acc += carry

	// The tail (0..7 bytes) fits in 32 bits per word pair; place each 16-bit
	// word so that its weight is a multiple of 2^16 (≡ 1 mod 0xffff).
	var tail uint64
	if len(b) >= 4 {
		tail += uint64(binary.BigEndian.Uint32(b[:4]))
		b = b[4:]
	}
	if len(b) >= 2 {
		tail += uint64(binary.BigEndian.Uint16(b[:2]))
		b = b[2:]
	}
	if len(b) == 1 {
		tail += uint64(b[0]) << 8
	}
	acc, carry = bits.Add64(acc, tail, 0)
	acc += carry

	// 64 -> 32 bits with end-around carry. Both steps preserve "non-zero".
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)

	s, c := bits.Add32(uint32(acc), initial, 0)
	return s + c
}

// Fold folds the accumulator sum to 16 bits with end-around carry
// (RFC 1071 §4.1, "fold 32-bit sum to 16 bits"). The result is not
// complemented. Fold returns 0 only for sum == 0; a non-zero sum congruent to
// 0 mod 0xffff folds to 0xffff (ones'-complement "negative zero").
func Fold(sum uint32) uint16 {
	sum = (sum >> 16) + (sum & 0xffff)
	sum = (sum >> 16) + (sum & 0xffff)
	return uint16(sum)
}

// Checksum returns ^Fold(Sum(b, initial)): the value to store in a header's
// checksum field when b covers the header (with the checksum field zero) and
// initial is, for example, a PseudoHeader accumulator.
//
// Verification: Checksum over the received bytes, checksum field included,
// is 0 exactly when the stored checksum is correct.
func Checksum(b []byte, initial uint32) uint16 {
	return ^Fold(Sum(b, initial))
}

// PseudoHeader returns the accumulator for the transport pseudo-header of
// IPv4 (RFC 793 §3.1, RFC 768) or IPv6 (RFC 8200 §8.1): the source and
// destination addresses, the upper-layer protocol number proto and the
// upper-layer packet length.
//
// Preconditions: src and dst are both 4 bytes (IPv4) or both 16 bytes (IPv6),
// and length is the transport header plus data length (at most 0xffff for
// IPv4). Other inputs are summed as given and never cause a panic.
func PseudoHeader(src, dst []byte, proto ipproto.Proto, length uint32) uint32 {
	s := Sum(src, 0)
	s = Sum(dst, s)
	// proto and the two 16-bit halves of length are each < 2^16; three of them
	// plus the accumulator cannot lose a carry after folding below.
	acc := uint64(s) + uint64(proto) + uint64(length>>16) + uint64(length&0xffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	return uint32(acc)
}

// Update16 returns the checksum cksum updated for a 16-bit field of the
// covered data changing from old to new, using RFC 1624 §3 eqn. 3:
//
//	HC' = ~(~HC + ~m + m')
//
// If cksum was correct for the old data, the result equals a full recompute
// over the new data, unless the new data sums to zero (all zero words), in
// which case a full recompute gives 0xffff and eqn. 3 gives 0x0000 - two
// representations of the same ones'-complement value (RFC 1624 §3 and §5).
func Update16(cksum, old, new uint16) uint16 {
	s := uint32(^cksum) + uint32(^old) + uint32(new)
	return ^Fold(s)
}

// Update32 is Update16 for a 32-bit field (for example a TCP sequence number),
// treated as two adjacent 16-bit words (RFC 1624 §3 eqn. 3).
func Update32(cksum uint16, old, new uint32) uint16 {
	s := uint32(^cksum) +
		uint32(^uint16(old>>16)) + uint32(^uint16(old)) +
		(new >> 16) + (new & 0xffff)
	return ^Fold(s)
}

// UpdateBytes is Update16 for a field of several 16-bit words changing from
// old to new, such as an IPv4 (4 bytes) or IPv6 (16 bytes) address
// (RFC 1624 §3 eqn. 3 applied word by word).
//
// Preconditions: len(old) == len(new) and the length is even. Otherwise only
// the first min(len(old), len(new)) bytes rounded down to an even count are
// taken into account; UpdateBytes never panics.
func UpdateBytes(cksum uint16, old, new []byte) uint16 {
	n := min(len(old), len(new)) &^ 1
	old, new = old[:n], new[:n]
	s := uint64(^cksum)
	for len(old) >= 8 && len(new) >= 8 {
		o := ^binary.BigEndian.Uint64(old)
		w := binary.BigEndian.Uint64(new)
		s += (o >> 48) + (o >> 32 & 0xffff) + (o >> 16 & 0xffff) + (o & 0xffff)
		s += (w >> 48) + (w >> 32 & 0xffff) + (w >> 16 & 0xffff) + (w & 0xffff)
		old, new = old[8:], new[8:]
	}
	for len(old) >= 2 && len(new) >= 2 {
		s += uint64(^binary.BigEndian.Uint16(old)) + uint64(binary.BigEndian.Uint16(new))
		old, new = old[2:], new[2:]
	}
	// s < 2^16 * (1 + 2*n/2) which is far below 2^48; fold to 32 bits.
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	return ^Fold(uint32(s))
}
