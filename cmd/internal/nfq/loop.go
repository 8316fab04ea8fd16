package nfq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/nat"
)

// The netlink messages of nfnetlink_queue
// (include/uapi/linux/netfilter/nfnetlink_queue.h).
const (
	nfnlSubsysQueue = 3
	msgPacket       = nfnlSubsysQueue<<8 | 0 // NFQNL_MSG_PACKET
	msgVerdict      = nfnlSubsysQueue<<8 | 1 // NFQNL_MSG_VERDICT
	msgConfig       = nfnlSubsysQueue<<8 | 2 // NFQNL_MSG_CONFIG

	attrPacketHdr  = 1  // NFQA_PACKET_HDR: be32 id, be16 hw_protocol, u8 hook
	attrVerdictHdr = 2  // NFQA_VERDICT_HDR: be32 verdict, be32 id
	attrPayload    = 10 // NFQA_PAYLOAD
	attrCapLen     = 13 // NFQA_CAP_LEN: be32 original length when truncated
	attrSkbInfo    = 14 // NFQA_SKB_INFO: be32 flags

	cfgCmd    = 1 // NFQA_CFG_CMD: u8 command, u8 pad, be16 pf
	cfgParams = 2 // NFQA_CFG_PARAMS: be32 copy_range, u8 copy_mode
	cfgMaxLen = 3 // NFQA_CFG_QUEUE_MAXLEN: be32
	cfgMask   = 4 // NFQA_CFG_MASK: be32
	cfgFlags  = 5 // NFQA_CFG_FLAGS: be32

	cmdBind   = 1
	cmdUnbind = 2

	copyPacket = 2 // NFQNL_COPY_PACKET

	verdictDrop   = 0 // NF_DROP
	verdictAccept = 1 // NF_ACCEPT

	nlmsgHdrLen = 16
	nfgenLen    = 4
	nlaHdrLen   = 4
	// verdictHeadLen is a verdict message up to its payload's bytes.
	verdictHeadLen = nlmsgHdrLen + nfgenLen + nlaHdrLen + 8 + nlaHdrLen

	recvBufSize = 1 << 20
	// flushAt sends the pending verdicts once they pass this many bytes
	// (the socket's send buffer is set well above it).
	flushAt = 1 << 20
)

func align4(n int) int { return (n + 3) &^ 3 }

// loop is the per-queue reader: receive a batch of packet messages, run each
// through the engine, and send all verdicts of the batch in one sendmsg.
// Nothing is allocated per packet: messages are parsed where they landed,
// each packet is copied once, into the verdict buffer, and translated there.
type loop struct {
	q     *queue
	fd    int
	rc    syscall.RawConn
	rbuf  []byte
	wbuf  []byte
	seq   uint32
	acked map[uint32]error // replies to config requests, by sequence number
	facts nat.CTFacts      // what the packet at hand makes true, for its conntrack entry
	ct    *ctStore         // nil: crash-only store off
	sent  int              // wbuf[:sent] was sent already (before a store)
}

func newLoop(q *queue) (*loop, error) {
	rc, err := q.nf.Con.SyscallConn()
	if err != nil {
		return nil, err
	}
	l := &loop{q: q, rc: rc, rbuf: make([]byte, recvBufSize), wbuf: make([]byte, 0, flushAt+nat.MaxPacket+4096), acked: map[uint32]error{}}
	return l, nil
}

// configure binds the queue and sets copy mode, length and flags.
func (l *loop) configure(maxLen uint32, flags uint32) error {
	num := l.q.num
	cmd := func(c byte) []byte { return []byte{c, 0, 0, 0} }
	if err := l.request(num, attr(nil, cfgCmd, cmd(cmdBind))); err != nil {
		return fmt.Errorf("bind: %w (is another process bound to queue %d?)", err, num)
	}
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, nat.MaxPacket)
	params[4] = copyPacket
	if err := l.request(num, attr(nil, cfgParams, params)); err != nil {
		return fmt.Errorf("copy mode: %w", err)
	}
	var b []byte
	b = attr(b, cfgMaxLen, be32(maxLen))
	if flags != 0 {
		b = attr(b, cfgFlags, be32(flags))
		b = attr(b, cfgMask, be32(flags))
	}
	if err := l.request(num, b); err != nil {
		return fmt.Errorf("queue length/flags: %w", err)
	}
	return nil
}

// unbind releases the queue; packets still queued are dropped by the kernel.
func (l *loop) unbind() {
	l.write(l.message(nil, msgConfig, unix.NLM_F_REQUEST, l.q.num, attr(nil, cfgCmd, []byte{cmdUnbind, 0, 0, 0})))
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// attr appends a netlink attribute.
func attr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(nlaHdrLen+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// message appends a netlink message of nfnetlink_queue to b.
func (l *loop) message(b []byte, typ, flags uint16, queue uint16, attrs []byte) []byte {
	l.seq++
	b = binary.NativeEndian.AppendUint32(b, uint32(nlmsgHdrLen+nfgenLen+len(attrs)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, l.seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, unix.AF_UNSPEC, 0 /* NFNETLINK_V0 */, byte(queue>>8), byte(queue))
	return append(b, attrs...)
}

// request sends a config message and waits for its acknowledgment, handling
// any packets that arrive meanwhile.
func (l *loop) request(queue uint16, attrs []byte) error {
	m := l.message(nil, msgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, queue, attrs)
	seq := l.seq
	if err := l.write(m); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err, ok := l.acked[seq]; ok {
			delete(l.acked, seq)
			return err
		}
		l.q.nf.Con.SetReadDeadline(deadline)
		if err := l.receive(); err != nil {
			return err
		}
	}
	return errors.New("no answer from the kernel")
}

// write sends b in one sendmsg.
func (l *loop) write(b []byte) error {
	var werr error
	err := l.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), b)
		return werr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return werr
}

// run serves the queue until ctx is done.
func (l *loop) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { l.q.nf.Con.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	l.q.nf.Con.SetReadDeadline(time.Time{})
	for ctx.Err() == nil {
		if err := l.receive(); err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
				return
			}
			l.q.st.ReadErrors.Add(1)
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EINTR) || errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return
			}
			l.q.log.Error("nfqueue receive", "queue", l.q.num, "err", err)
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
		}
	}
}

// receive reads one batch of messages and answers every packet in it.
func (l *loop) receive() error {
	var n int
	var rerr error
	err := l.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), l.rbuf, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	if rerr != nil {
		return rerr
	}
	l.wbuf, l.sent = l.wbuf[:0], 0
	b := l.rbuf[:n]
	for len(b) >= nlmsgHdrLen {
		mlen := int(binary.NativeEndian.Uint32(b[0:4]))
		if mlen < nlmsgHdrLen || mlen > len(b) {
			break
		}
		typ := binary.NativeEndian.Uint16(b[4:6])
		seq := binary.NativeEndian.Uint32(b[8:12])
		body := b[nlmsgHdrLen:mlen]
		switch typ {
		case msgPacket:
			l.packet(body)
		case unix.NLMSG_ERROR:
			var err error
			if len(body) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(body[0:4])); code != 0 {
					err = syscall.Errno(-code)
				}
			}
			l.acked[seq] = err
		}
		b = b[min(align4(mlen), len(b)):]
		if len(l.wbuf) >= flushAt {
			l.flush()
		}
	}
	l.flush()
	return nil
}

// flush sends the verdicts gathered so far (but those sent already).
func (l *loop) flush() {
	if len(l.wbuf) > l.sent {
		if err := l.write(l.wbuf[l.sent:]); err != nil {
			l.q.st.VerdictErrors.Add(1)
			l.q.log.Warn("nfqueue verdicts", "queue", l.q.num, "err", err)
		}
	}
	l.wbuf = l.wbuf[:0]
	l.sent = 0
}

// packet parses one packet message, translates the packet in the verdict
// buffer and appends the verdict.
func (l *loop) packet(body []byte) {
	if len(body) < nfgenLen {
		return
	}
	var (
		id      uint32
		haveID  bool
		payload []byte
		capLen  = -1
		skb     uint32
	)
	for a := body[nfgenLen:]; len(a) >= nlaHdrLen; {
		alen := int(binary.NativeEndian.Uint16(a[0:2]))
		if alen < nlaHdrLen || alen > len(a) {
			break
		}
		data := a[nlaHdrLen:alen]
		switch binary.NativeEndian.Uint16(a[2:4]) & 0x3fff {
		case attrPacketHdr:
			if len(data) >= 4 {
				id, haveID = binary.BigEndian.Uint32(data[0:4]), true
			}
		case attrPayload:
			payload = data
		case attrCapLen:
			if len(data) >= 4 {
				capLen = int(binary.BigEndian.Uint32(data[0:4]))
			}
		case attrSkbInfo:
			if len(data) >= 4 {
				skb = binary.BigEndian.Uint32(data[0:4])
			}
		}
		a = a[min(align4(alen), len(a)):]
	}
	if !haveID {
		return
	}
	st := l.q.st
	st.Received.Add(1)
	if payload == nil || capLen >= 0 && capLen != len(payload) {
		// No copy, or only part of the packet: never translate it.
		if payload != nil {
			st.Truncated.Add(1)
		}
		st.Dropped.Add(1)
		l.verdict(id, verdictDrop)
		return
	}
	if skb&skbGSO != 0 {
		st.GSO.Add(1)
	}
	if skb&skbCsumNotVerified != 0 {
		st.CsumUnverified.Add(1)
	}
	// Lay the verdict header down, copy the packet after it, translate it
	// where it lies (with room to grow), then fill in the lengths.
	start := len(l.wbuf)
	if cap(l.wbuf)-start < verdictHeadLen+nat.MaxPacket+4 {
		l.flush()
		start = 0
	}
	w := l.wbuf[:start+verdictHeadLen]
	pkt := w[start+verdictHeadLen : start+verdictHeadLen+len(payload) : start+verdictHeadLen+nat.MaxPacket]
	copy(pkt, payload)
	if skb&skbCsumNotReady != 0 {
		completeChecksum(pkt)
		st.CsumCompleted.Add(1)
	}
	var v nat.Verdict
	var out []byte
	if l.ct == nil {
		v, out = l.q.eng.Process(pkt, time.Now())
	} else {
		v, out = l.q.eng.ProcessCT(pkt, time.Now(), &l.facts)
		if l.facts.Pending() {
			// Crash-only: the flow's new facts go into its conntrack
			// entry before the packet that makes them true leaves.
			if start > l.sent {
				// The verdicts before it go first: a packet of this
				// batch may be what puts the entry in the kernel's table.
				if err := l.write(l.wbuf[l.sent:start]); err != nil {
					st.VerdictErrors.Add(1)
				}
				l.sent = start
			}
			if err := l.ct.put(&l.facts); err != nil {
				st.CTStoreErrors.Add(1)
				l.facts.Failed()
			} else {
				l.facts.Done()
				st.CTStored.Add(1)
			}
		}
	}
	if v != nat.Accept {
		st.Dropped.Add(1)
		l.wbuf = l.wbuf[:start]
		l.verdict(id, verdictDrop)
		return
	}
	st.Accepted.Add(1)
	if len(out) > 0 && &out[0] != &pkt[:1][0] {
		// Not translated in place: a datagram the engine reassembled
		// (from fragments the kernel's defrag did not see) lies in
		// memory of its own. It goes in the verdict, whole.
		out = pkt[:copy(pkt[:cap(pkt)], out)]
	}
	l.wbuf = l.wbuf[:start]
	l.verdictHeader(id, verdictAccept, len(out))
	l.wbuf = l.wbuf[:start+verdictHeadLen+len(out)]
	for len(l.wbuf)%4 != 0 {
		l.wbuf = append(l.wbuf, 0)
	}
}

// verdict appends a verdict without a packet.
func (l *loop) verdict(id uint32, v uint32) { l.appendVerdict(id, v, -1) }

// verdictHeader appends the header of a verdict carrying a packet of n
// bytes, which the caller places right after it.
func (l *loop) verdictHeader(id uint32, v uint32, n int) { l.appendVerdict(id, v, n) }

// appendVerdict appends an NFQNL_MSG_VERDICT for packet id; with n >= 0 the
// message announces an NFQA_PAYLOAD attribute of n bytes, to follow.
func (l *loop) appendVerdict(id uint32, v uint32, n int) {
	size := nlmsgHdrLen + nfgenLen + nlaHdrLen + 8
	if n >= 0 {
		size = verdictHeadLen + n
	}
	w := l.wbuf
	w = binary.NativeEndian.AppendUint32(w, uint32(size))
	w = binary.NativeEndian.AppendUint16(w, msgVerdict)
	w = binary.NativeEndian.AppendUint16(w, unix.NLM_F_REQUEST)
	l.seq++
	w = binary.NativeEndian.AppendUint32(w, l.seq)
	w = binary.NativeEndian.AppendUint32(w, 0)
	w = append(w, unix.AF_UNSPEC, 0, byte(l.q.num>>8), byte(l.q.num))
	w = binary.NativeEndian.AppendUint16(w, nlaHdrLen+8)
	w = binary.NativeEndian.AppendUint16(w, attrVerdictHdr)
	w = binary.BigEndian.AppendUint32(w, v)
	w = binary.BigEndian.AppendUint32(w, id)
	if n >= 0 {
		w = binary.NativeEndian.AppendUint16(w, uint16(nlaHdrLen+n))
		w = binary.NativeEndian.AppendUint16(w, attrPayload)
	}
	l.wbuf = w
}
