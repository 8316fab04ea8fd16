package nfq

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/checksum"
)

// synPacket is an IPv4 TCP SYN from 198.18.0.2:40000 to 198.19.0.2:80.
func synPacket() []byte {
	b := make([]byte, 40)
	b[0], b[3], b[6], b[8], b[9] = 0x45, 40, 0x40, 64, 6
	copy(b[12:], []byte{198, 18, 0, 2, 198, 19, 0, 2})
	binary.BigEndian.PutUint16(b[20:], 40000)
	binary.BigEndian.PutUint16(b[22:], 80)
	b[32], b[33] = 0x50, 0x02
	binary.BigEndian.PutUint16(b[10:], checksum.Checksum(b[:20], 0))
	ck := checksum.Checksum(b[20:], checksum.PseudoHeader(b[12:16], b[16:20], 6, 20))
	binary.BigEndian.PutUint16(b[36:], ck)
	return b
}

// packetMsg builds the body (after nlmsghdr) of an NFQNL_MSG_PACKET.
func packetMsg(id uint32, payload []byte, capLen int) []byte {
	b := []byte{0, 0, 0, 0} // nfgenmsg
	hdr := make([]byte, 7)
	binary.BigEndian.PutUint32(hdr, id)
	b = attr(b, attrPacketHdr, hdr)
	if payload != nil {
		b = attr(b, attrPayload, payload)
	}
	if capLen >= 0 {
		b = attr(b, attrCapLen, be32(uint32(capLen)))
	}
	return b
}

// verdicts decodes the verdict messages in a buffer.
func verdicts(t *testing.T, w []byte) (ids, vs []uint32, pkts [][]byte) {
	for len(w) >= nlmsgHdrLen {
		n := int(binary.NativeEndian.Uint32(w))
		if n < nlmsgHdrLen || n > len(w) || binary.NativeEndian.Uint16(w[4:]) != msgVerdict {
			t.Fatalf("bad verdict message %x", w)
		}
		var pkt []byte
		for a := w[nlmsgHdrLen+nfgenLen : n]; len(a) >= nlaHdrLen; {
			l := int(binary.NativeEndian.Uint16(a))
			switch binary.NativeEndian.Uint16(a[2:]) {
			case attrVerdictHdr:
				vs = append(vs, binary.BigEndian.Uint32(a[4:]))
				ids = append(ids, binary.BigEndian.Uint32(a[8:]))
			case attrPayload:
				pkt = a[nlaHdrLen:l]
			}
			a = a[align4(l):]
		}
		pkts = append(pkts, pkt)
		w = w[align4(n):]
	}
	return
}

func TestLoopPacketVerdicts(t *testing.T) {
	eng, err := nat.New(nat.Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{netip.MustParseAddr("198.19.100.100")}})
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	l := &loop{q: &queue{num: 3, eng: eng, st: &st, log: slog.Default()}, wbuf: make([]byte, 0, flushAt+nat.MaxPacket+4096)}
	syn := synPacket()
	l.packet(packetMsg(7, syn, -1))             // translated
	l.packet(packetMsg(8, syn[:30], len(syn)))  // a truncated copy: dropped, never rewritten
	l.packet(packetMsg(9, nil, -1))             // no payload: dropped
	l.packet([]byte{0, 0, 0, 0, 0xff, 0xff, 1}) // malformed attributes: ignored, no verdict
	l.packet(packetMsg(10, []byte{0x45}, -1))   // garbage packet: the engine drops it
	ids, vs, pkts := verdicts(t, l.wbuf)
	want := []struct{ id, v uint32 }{{7, verdictAccept}, {8, verdictDrop}, {9, verdictDrop}, {10, verdictDrop}}
	if len(ids) != len(want) {
		t.Fatalf("verdicts for %v, want 4", ids)
	}
	for i, w := range want {
		if ids[i] != w.id || vs[i] != w.v {
			t.Errorf("verdict %d: id %d verdict %d, want %d %d", i, ids[i], vs[i], w.id, w.v)
		}
	}
	out := pkts[0]
	if len(out) != 40 || netip.AddrFrom4([4]byte(out[12:16])) != netip.MustParseAddr("198.19.100.100") {
		t.Fatalf("translated packet %x", out)
	}
	if checksum.Checksum(out[:20], 0) != 0 || checksum.Checksum(out[20:], checksum.PseudoHeader(out[12:16], out[16:20], 6, 20)) != 0 {
		t.Fatal("checksums of the translated packet are wrong")
	}
	if st.Received.Load() != 4 || st.Truncated.Load() != 1 || st.Accepted.Load() != 1 || st.Dropped.Load() != 3 {
		t.Fatalf("stats received %d truncated %d accepted %d dropped %d", st.Received.Load(), st.Truncated.Load(), st.Accepted.Load(), st.Dropped.Load())
	}
}

// FuzzLoopPacket: no message body, however malformed, panics the reader,
// and every verdict written is well formed.
func FuzzLoopPacket(f *testing.F) {
	f.Add(packetMsg(7, synPacket(), -1))
	f.Add(packetMsg(8, synPacket()[:30], 40))
	eng, _ := nat.New(nat.Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{netip.MustParseAddr("198.19.100.100")}})
	f.Fuzz(func(t *testing.T, body []byte) {
		var st Stats
		l := &loop{q: &queue{eng: eng, st: &st, log: slog.Default()}, wbuf: make([]byte, 0, flushAt+nat.MaxPacket+4096)}
		l.packet(body)
		verdicts(t, l.wbuf)
	})
}
