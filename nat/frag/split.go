package frag

import "encoding/binary"

// Plan returns the fragmentable-part lengths to cut a datagram whose
// fragmentable part is total bytes long into: sizes (the original
// boundaries, Datagram.Sizes) when they add up to total and every one but
// the last is a multiple of 8, with any size above maxChunk cut further;
// otherwise pieces of maxChunk. maxChunk is rounded down to a multiple of 8
// (RFC 791 §3.1 and RFC 8200 §4.5 count offsets in 8-octet units) and is
// at least 8.
func Plan(total int, sizes []int, maxChunk int) []int {
	maxChunk = max(maxChunk&^7, 8)
	sum, aligned := 0, true
	for i, s := range sizes {
		sum += s
		if s <= 0 || i < len(sizes)-1 && s%8 != 0 {
			aligned = false
		}
	}
	if sum != total || !aligned {
		sizes = []int{total}
	}
	var plan []int
	for _, s := range sizes {
		for s > maxChunk {
			plan = append(plan, maxChunk)
			s -= maxChunk
		}
		plan = append(plan, s)
	}
	return plan
}

// Split4 cuts the IPv4 datagram dgram (not a fragment: MF clear, offset 0)
// into fragments whose data lengths are plan (RFC 791 §3.2, "An Example
// Fragmentation Procedure"), with Identification id and DF as df. The
// first fragment keeps dgram's header and options; the later ones get its
// 20-byte fixed header only (natalg copies no options into them). The
// fragments are allocated together; Split4 returns nil if plan does not
// add up to dgram's data, cuts at an offset
// that is not a multiple of 8, or dgram is not a whole IPv4 datagram.
func Split4(dgram []byte, plan []int, id uint16, df bool) [][]byte {
	if len(dgram) < 20 || dgram[0]>>4 != 4 {
		return nil
	}
	ihl := int(dgram[0]&0xf) * 4
	if ihl < 20 || ihl > len(dgram) || binary.BigEndian.Uint16(dgram[6:])&0x3fff != 0 {
		return nil
	}
	data := dgram[ihl:]
	size, sum := 0, 0
	for i, n := range plan {
		if n <= 0 || i < len(plan)-1 && n%8 != 0 {
			return nil
		}
		sum += n
		size += n + 20
		if i == 0 {
			size += ihl - 20
		}
	}
	if sum != len(data) || len(plan) == 0 {
		return nil
	}
	buf := make([]byte, size)
	out := make([][]byte, 0, len(plan))
	off := 0
	for i, n := range plan {
		hl := 20
		if i == 0 {
			hl = ihl
		}
		f := buf[:hl+n]
		buf = buf[hl+n:]
		copy(f, dgram[:hl])
		f[0] = 0x40 | byte(hl/4)
		copy(f[hl:], data[off:off+n])
		ff := uint16(off / 8)
		if i < len(plan)-1 {
			ff |= 0x2000 // MF
		}
		if df {
			ff |= 0x4000
		}
		binary.BigEndian.PutUint16(f[2:], uint16(hl+n))
		binary.BigEndian.PutUint16(f[4:], id)
		binary.BigEndian.PutUint16(f[6:], ff)
		f[10], f[11] = 0, 0
		binary.BigEndian.PutUint16(f[10:], ipv4Checksum(f[:hl]))
		out = append(out, f)
		off += n
	}
	return out
}

// Unfragmentable returns the length of the unfragmentable part of the IPv6
// packet pkt (RFC 8200 §4.5): the fixed header, a Hop-by-Hop Options
// header, and a Routing header with the Destination Options header that
// may precede it; and the offset of the Next Header field that names the
// first fragmentable header. ok is false if the headers do not fit pkt.
func Unfragmentable(pkt []byte) (n, nhOff int, ok bool) {
	if len(pkt) < 40 {
		return 0, 0, false
	}
	n, nhOff = 40, 6
	for {
		nh := pkt[nhOff]
		if nh == 60 && n+8 <= len(pkt) && pkt[n] == 43 {
			// Destination Options followed by a Routing header.
		} else if nh != 0 && nh != 43 {
			return n, nhOff, true
		}
		if n+8 > len(pkt) {
			return 0, 0, false
		}
		l := (int(pkt[n+1]) + 1) * 8
		if n+l > len(pkt) {
			return 0, 0, false
		}
		nhOff, n = n, n+l
	}
}

// Split6 cuts the IPv6 packet dgram (without a Fragment header) into
// fragments whose fragmentable-part lengths are plan (RFC 8200 §4.5): each
// is the unfragmentable part, a Fragment header (Identification id, the
// offset, M set on all but the last) and its piece. The fragments are
// allocated together; Split6 returns nil if plan does not add up to the
// fragmentable part or cuts at an offset that is not a multiple of 8.
func Split6(dgram []byte, plan []int, id uint32) [][]byte {
	un, nhOff, ok := Unfragmentable(dgram)
	if !ok || len(plan) == 0 {
		return nil
	}
	data := dgram[un:]
	sum := 0
	for i, n := range plan {
		if n <= 0 || i < len(plan)-1 && n%8 != 0 {
			return nil
		}
		sum += n
	}
	if sum != len(data) {
		return nil
	}
	nextHeader := dgram[nhOff]
	buf := make([]byte, sum+len(plan)*(un+8))
	out := make([][]byte, 0, len(plan))
	off := 0
	for i, n := range plan {
		f := buf[:un+8+n]
		buf = buf[un+8+n:]
		copy(f, dgram[:un])
		f[nhOff] = 44 // Fragment
		binary.BigEndian.PutUint16(f[4:], uint16(un-40+8+n))
		fh := f[un : un+8]
		fh[0], fh[1] = nextHeader, 0
		om := uint16(off)
		if i < len(plan)-1 {
			om |= 1 // M
		}
		binary.BigEndian.PutUint16(fh[2:], om)
		binary.BigEndian.PutUint32(fh[4:], id)
		copy(f[un+8:], data[off:off+n])
		out = append(out, f)
		off += n
	}
	return out
}
