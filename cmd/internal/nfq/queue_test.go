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

// packetMsg builds an NFQNL_MSG_PACKET (nlmsghdr and body).
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
	return appendMessage(nil, msgPacket, 0, 0, 3, b[nfgenLen:])
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
	if len(w) != 0 {
		t.Fatalf("%d bytes after the last verdict", len(w))
	}
	return
}

// testQueue is a Queue without a socket whose sendmsg calls are recorded.
func testQueue(st *Stats) (*Queue, *[][]byte) {
	q := newQueue(3, st, slog.Default())
	var sent [][]byte
	q.send = func(b []byte) error { sent = append(sent, append([]byte(nil), b...)); return nil }
	return q, &sent
}

// serveReceived runs what Engine.Serve does with one recvmsg's messages:
// batches of batch packets, read, processed and written, until every
// message is handled.
func serveReceived(q *Queue, eng *nat.Engine, msgs []byte, batch int) (batches int) {
	q.pending = append(q.rbuf[:0], msgs...)
	ps := nat.NewBatch(batch)
	for len(q.pending) > 0 {
		n := q.parse(ps)
		eng.ProcessBatch(ps[:n])
		q.WriteBatch(ps[:n])
		batches++
	}
	return batches
}

func testEngine(t testing.TB) *nat.Engine {
	eng, err := nat.New(nat.Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{netip.MustParseAddr("198.19.100.100")}})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func TestQueueBatchVerdicts(t *testing.T) {
	eng := testEngine(t)
	var st Stats
	q, sent := testQueue(&st)
	syn := synPacket()
	var msgs []byte
	msgs = append(msgs, packetMsg(7, syn, -1)...)            // translated
	msgs = append(msgs, packetMsg(8, syn[:30], len(syn))...) // a truncated copy: dropped, never rewritten
	msgs = append(msgs, packetMsg(9, nil, -1)...)            // no payload: dropped
	msgs = append(msgs, appendMessage(nil, msgPacket, 0, 0, 3, []byte{0xff, 0xff, 1, 0})...)
	msgs = append(msgs, packetMsg(10, []byte{0x45}, -1)...) // garbage packet: the engine drops it
	msgs = append(msgs, packetMsg(11, syn, -1)...)          // the same SYN again: accepted on its flow
	// Batches of 2: the three whole packets fill two batches (the others
	// are answered while reading), and every verdict goes out in one
	// sendmsg, after the last batch.
	if b := serveReceived(q, eng, msgs, 2); b != 2 {
		t.Errorf("%d batches, want 2 (ids 7 and 10, then 11)", b)
	}
	if len(*sent) != 1 {
		t.Fatalf("%d sendmsg calls, want 1 for the whole recvmsg", len(*sent))
	}
	ids, vs, pkts := verdicts(t, (*sent)[0])
	want := map[uint32]uint32{7: verdictAccept, 8: verdictDrop, 9: verdictDrop, 10: verdictDrop, 11: verdictAccept}
	if len(ids) != len(want) {
		t.Fatalf("verdicts for %v, want 5", ids)
	}
	for i, id := range ids {
		if w, ok := want[id]; !ok || vs[i] != w {
			t.Errorf("verdict for id %d: %d, want %d", id, vs[i], w)
		}
		if vs[i] == verdictAccept {
			out := pkts[i]
			if len(out) != 40 || netip.AddrFrom4([4]byte(out[12:16])) != netip.MustParseAddr("198.19.100.100") {
				t.Fatalf("translated packet %x", out)
			}
			if checksum.Checksum(out[:20], 0) != 0 || checksum.Checksum(out[20:], checksum.PseudoHeader(out[12:16], out[16:20], 6, 20)) != 0 {
				t.Fatal("checksums of the translated packet are wrong")
			}
		}
	}
	if st.Received.Load() != 5 || st.Truncated.Load() != 1 || st.Accepted.Load() != 2 || st.Dropped.Load() != 3 {
		t.Fatalf("stats received %d truncated %d accepted %d dropped %d", st.Received.Load(), st.Truncated.Load(), st.Accepted.Load(), st.Dropped.Load())
	}
	if in := eng.Stats.Snapshot().In; in != 3 {
		t.Errorf("engine saw %d packets, want 3", in)
	}
}

// TestQueueCompletesPartialChecksum: a packet the kernel marks
// CHECKSUM_PARTIAL (its TCP checksum field holds only the pseudo-header
// sum) is translated with a full, valid checksum.
func TestQueueCompletesPartialChecksum(t *testing.T) {
	eng := testEngine(t)
	var st Stats
	q, sent := testQueue(&st)
	syn := synPacket()
	binary.BigEndian.PutUint16(syn[36:], ^checksum.Checksum(nil, checksum.PseudoHeader(syn[12:16], syn[16:20], 6, 20)))
	body := []byte{0, 0, 0, 0}
	body = attr(body, attrPacketHdr, []byte{0, 0, 0, 5, 8, 0, 3})
	body = attr(body, attrPayload, syn)
	body = attr(body, attrSkbInfo, be32(skbCsumNotReady))
	serveReceived(q, eng, appendMessage(nil, msgPacket, 0, 0, 3, body[nfgenLen:]), 64)
	_, vs, pkts := verdicts(t, (*sent)[0])
	if len(vs) != 1 || vs[0] != verdictAccept {
		t.Fatalf("verdicts %v, want one accept", vs)
	}
	out := pkts[0]
	if checksum.Checksum(out[20:], checksum.PseudoHeader(out[12:16], out[16:20], 6, 20)) != 0 {
		t.Fatal("the partial checksum was not completed")
	}
	if st.CsumCompleted.Load() != 1 {
		t.Fatalf("checksum_completed %d, want 1", st.CsumCompleted.Load())
	}
}

// TestQueueAllocatesNothing: reading, translating and answering a batch of
// established packets allocates nothing.
func TestQueueAllocatesNothing(t *testing.T) {
	eng := testEngine(t)
	q, _ := testQueue(nil)
	q.send = func([]byte) error { return nil }
	var msgs []byte
	for id := range uint32(32) {
		msgs = append(msgs, packetMsg(id, synPacket(), -1)...)
	}
	ps := nat.NewBatch(64)
	run := func() {
		q.pending = append(q.rbuf[:0], msgs...)
		n := q.parse(ps)
		eng.ProcessBatch(ps[:n])
		q.WriteBatch(ps[:n])
	}
	run()
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Fatalf("%v allocations per batch, want 0", allocs)
	}
}

// FuzzQueueBatch: no receive buffer, however malformed, panics the queue,
// and every verdict written is well formed.
func FuzzQueueBatch(f *testing.F) {
	f.Add(packetMsg(7, synPacket(), -1))
	f.Add(packetMsg(8, synPacket()[:30], 40))
	f.Add(append(packetMsg(9, synPacket(), -1), packetMsg(10, []byte{0x45}, -1)...))
	eng := testEngine(f)
	f.Fuzz(func(t *testing.T, msgs []byte) {
		if len(msgs) > recvBufSize {
			return
		}
		q, sent := testQueue(nil)
		serveReceived(q, eng, msgs, 4)
		for _, b := range *sent {
			verdicts(t, b)
		}
	})
}
