package header

import "encoding/binary"

// get16 returns the big-endian uint16 at b[off:], or 0 if out of range.
func get16(b []byte, off int) uint16 {
	if off < 0 || off > len(b)-2 {
		return 0
	}
	return binary.BigEndian.Uint16(b[off:])
}

// get32 returns the big-endian uint32 at b[off:], or 0 if out of range.
func get32(b []byte, off int) uint32 {
	if off < 0 || off > len(b)-4 {
		return 0
	}
	return binary.BigEndian.Uint32(b[off:])
}

// get8 returns b[off], or 0 if out of range.
func get8(b []byte, off int) uint8 {
	if off < 0 || off >= len(b) {
		return 0
	}
	return b[off]
}

// has reports whether b[off:off+n] is in range.
func has(b []byte, off, n int) bool {
	return off >= 0 && n >= 0 && off <= len(b)-n
}

// put16 stores v at b[off:] if in range and reports whether it did.
func put16(b []byte, off int, v uint16) bool {
	if !has(b, off, 2) {
		return false
	}
	binary.BigEndian.PutUint16(b[off:], v)
	return true
}

// put32 stores v at b[off:] if in range and reports whether it did.
func put32(b []byte, off int, v uint32) bool {
	if !has(b, off, 4) {
		return false
	}
	binary.BigEndian.PutUint32(b[off:], v)
	return true
}

// clip returns b[lo:hi] with lo and hi clamped into [0, len(b)] and lo <= hi.
func clip(b []byte, lo, hi int) []byte {
	hi = max(0, min(hi, len(b)))
	lo = max(0, min(lo, hi))
	return b[lo:hi]
}
