package nat

import "time"

// processPacket runs one packet through the engine as a batch of one, the
// path Serve takes, and returns its verdict and the packet to send. A
// reassembled datagram comes back whole (as to a SingleOutput device).
func (e *Engine) processPacket(pkt []byte, now time.Time) (Verdict, []byte) {
	v, out, _ := e.processPacketReason(pkt, now)
	return v, out
}

// processPacketReason is processPacket that also says why a packet was
// dropped.
func (e *Engine) processPacketReason(pkt []byte, now time.Time) (Verdict, []byte, DropReason) {
	batch := [1]Packet{{Buf: pkt, N: len(pkt), Time: now}}
	e.processBatch(batch[:], false)
	return batch[0].Verdict, batch[0].Out, batch[0].Reason
}
