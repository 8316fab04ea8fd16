package nfq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/nat"
)

// The netlink messages of nfnetlink_queue
// (include/uapi/linux/netfilter/nfnetlink_queue.h).
const (
	nfnlSubsysQueue = 3
	msgPacket       = nfnlSubsysQueue << 8   // NFQNL_MSG_PACKET (message 0)
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
	// maxVerdictPayload is the largest packet a verdict can carry: the
	// attribute's length field is 16 bits and counts its own header.
	maxVerdictPayload = 0xffff - nlaHdrLen

	recvBufSize = 1 << 20
	// flushAt sends the pending verdicts once they pass this many bytes
	// (the socket's send buffer is set well above it).
	flushAt = 1 << 20
)

func align4(n int) int { return (n + 3) &^ 3 }

// Queue is one bound NFQUEUE, served as a nat.Device. ReadBatch takes the
// packet messages of one recvmsg (up to 1 MiB) in order, parsing them where
// they landed and copying each packet once, into its batch slot; a recvmsg
// that brought more packets than a batch holds fills the following batches
// before the socket is read again. WriteBatch appends each packet's verdict,
// with the translated packet, to one buffer that is sent in one sendmsg once
// every packet of the recvmsg has its verdict (or the buffer passes 1 MiB).
// Nothing is allocated per packet or per batch.
//
// A Queue serves one loop: ReadBatch and WriteBatch are not called
// concurrently, and WriteBatch gets the packets of the last ReadBatch.
type Queue struct {
	num uint16
	nf  *nfqueue.Nfqueue
	rc  syscall.RawConn
	st  *Stats
	log *slog.Logger
	// send writes one buffer of netlink messages in one sendmsg.
	send func([]byte) error

	rbuf    []byte
	pending []byte    // messages of the last recvmsg not yet handed out
	now     time.Time // when the last recvmsg returned
	wbuf    []byte    // verdicts not yet sent
	seq     uint32

	// configuring: the queue is being set up; packets are dropped and
	// acknowledgments are kept in acked, by sequence number.
	configuring bool
	acked       map[uint32]error

	counts counts    // added to st once per batch
	ct     *ctStore  // nil: crash-only store off (Options.StoreCT)
	resend *resender // nil: accepted packets go back with their verdict (Options.Resend)

	// the socket calls, as method values made once so that they allocate
	// nothing: recvFn reads into rbuf, sendFn writes out
	recvFn  func(fd uintptr) bool
	sendFn  func(fd uintptr) bool
	rn      int
	rerr    error
	out     []byte
	werr    error
	ctxMu   sync.Mutex
	ctx     context.Context
	stopCtx func() bool
	closed  atomic.Bool
}

// counts are what one batch adds to Stats.
type counts struct {
	received, accepted, dropped, truncated, gso, csumCompleted, csumUnverified, verdictErrors uint64
	resent, ttlExpired, resendErrors                                                          uint64
}

func (c *counts) flush(st *Stats) {
	if c.received != 0 {
		st.Received.Add(c.received)
	}
	if c.accepted != 0 {
		st.Accepted.Add(c.accepted)
	}
	if c.dropped != 0 {
		st.Dropped.Add(c.dropped)
	}
	if c.truncated != 0 {
		st.Truncated.Add(c.truncated)
	}
	if c.gso != 0 {
		st.GSO.Add(c.gso)
	}
	if c.csumCompleted != 0 {
		st.CsumCompleted.Add(c.csumCompleted)
	}
	if c.csumUnverified != 0 {
		st.CsumUnverified.Add(c.csumUnverified)
	}
	if c.verdictErrors != 0 {
		st.VerdictErrors.Add(c.verdictErrors)
	}
	if c.resent != 0 {
		st.Resent.Add(c.resent)
	}
	if c.ttlExpired != 0 {
		st.TTLExpired.Add(c.ttlExpired)
	}
	if c.resendErrors != 0 {
		st.ResendErrors.Add(c.resendErrors)
	}
	*c = counts{}
}

// newQueue returns a Queue with its buffers, not bound to a socket.
func newQueue(num uint16, st *Stats, log *slog.Logger) *Queue {
	if st == nil {
		st = new(Stats)
	}
	if log == nil {
		log = slog.Default()
	}
	q := &Queue{num: num, st: st, log: log, rbuf: make([]byte, recvBufSize),
		wbuf: make([]byte, 0, flushAt+nat.MaxPacket+4096), acked: map[uint32]error{}}
	q.recvFn = q.recvSome
	q.sendFn = q.sendAll
	q.send = q.sendmsg
	return q
}

// Open binds NFQUEUE num in the current network namespace and configures
// it from opt (copy mode, queue length, GSO); the counters go to st.
func Open(num uint16, opt Options, st *Stats) (*Queue, error) {
	if opt.MaxQueueLen == 0 {
		opt.MaxQueueLen = 8192
	}
	if opt.ReadBuffer == 0 {
		opt.ReadBuffer = 32 << 20
	}
	q := newQueue(num, st, opt.Log)
	// go-nfqueue opens the netlink socket; binding, configuration and the
	// packet path are natalg's own.
	nf, err := nfqueue.Open(&nfqueue.Config{NfQueue: num, AfFamily: unix.AF_INET})
	if err != nil {
		return nil, fmt.Errorf("nfqueue %d: open: %w", num, err)
	}
	q.nf = nf
	// A full socket buffer must not kill the reader: no ENOBUFS errors (the
	// kernel counts the loss in /proc/net/netfilter/nfnetlink_queue).
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: NETLINK_NO_ENOBUFS: %w", num, err)
	}
	if q.rc, err = nf.Con.SyscallConn(); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: %w", num, err)
	}
	// The FORCE options pass net.core.rmem_max/wmem_max (root); netlink
	// refuses a sendmsg larger than the send buffer.
	q.rc.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opt.ReadBuffer); err != nil {
			q.log.Warn("cannot set the netlink receive buffer", "queue", num, "bytes", opt.ReadBuffer, "err", err)
		}
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4*flushAt); err != nil {
			q.log.Warn("cannot set the netlink send buffer", "queue", num, "err", err)
		}
	})
	resend := slices.Contains(opt.Resend, num)
	var flags uint32
	if opt.GSO && !resend {
		// (a queue whose packets are sent on through a raw socket gets
		// them segmented: the socket sends no packet above the MTU)
		flags |= nfqueue.NfQaCfgFlagGSO
	}
	if err := q.configure(opt.MaxQueueLen, flags); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: %w", num, err)
	}
	if opt.StoreCT {
		if q.ct, err = openCTStore(); err != nil {
			nf.Close()
			return nil, fmt.Errorf("nfqueue %d: %w", num, err)
		}
	}
	if resend {
		if q.resend, err = openResender(opt.ResendMark); err != nil {
			if q.ct != nil {
				q.ct.close()
			}
			nf.Close()
			return nil, fmt.Errorf("nfqueue %d: %w", num, err)
		}
	}
	return q, nil
}

// Num returns the queue number.
func (q *Queue) Num() uint16 { return q.num }

// Close unbinds the queue (the kernel drops what is still queued) and
// closes the socket. A blocked ReadBatch returns nat.ErrClosed.
func (q *Queue) Close() error {
	if !q.closed.CompareAndSwap(false, true) {
		return nil
	}
	q.ctxMu.Lock()
	if q.stopCtx != nil {
		q.stopCtx()
	}
	q.ctxMu.Unlock()
	if q.nf == nil {
		return nil
	}
	// Its own write, not send's buffer: Close may run beside the loop.
	unbind := appendMessage(nil, msgConfig, unix.NLM_F_REQUEST, 0, q.num, attr(nil, cfgCmd, []byte{cmdUnbind, 0, 0, 0}))
	var werr error
	if err := q.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), unbind)
		return werr != unix.EAGAIN
	}); err != nil || werr != nil {
		q.log.Debug("nfqueue unbind", "queue", q.num, "err", errors.Join(err, werr))
	}
	if q.ct != nil {
		q.ct.close()
	}
	if q.resend != nil {
		q.resend.close()
	}
	if err := q.nf.Close(); err != nil {
		return fmt.Errorf("nfqueue %d: close: %w", q.num, err)
	}
	return nil
}

// configure binds the queue and sets copy mode, length and flags.
func (q *Queue) configure(maxLen uint32, flags uint32) error {
	q.configuring = true
	defer func() { q.configuring = false }()
	cmd := func(c byte) []byte { return []byte{c, 0, 0, 0} }
	if err := q.request(attr(nil, cfgCmd, cmd(cmdBind))); err != nil {
		return fmt.Errorf("bind: %w (is another process bound to queue %d?)", err, q.num)
	}
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, nat.MaxPacket)
	params[4] = copyPacket
	if err := q.request(attr(nil, cfgParams, params)); err != nil {
		return fmt.Errorf("copy mode: %w", err)
	}
	var b []byte
	b = attr(b, cfgMaxLen, be32(maxLen))
	if flags != 0 {
		b = attr(b, cfgFlags, be32(flags))
		b = attr(b, cfgMask, be32(flags))
	}
	if err := q.request(b); err != nil {
		return fmt.Errorf("queue length/flags: %w", err)
	}
	return nil
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

// appendMessage appends a netlink message of nfnetlink_queue to b.
func appendMessage(b []byte, typ, flags uint16, seq uint32, queue uint16, attrs []byte) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(nlmsgHdrLen+nfgenLen+len(attrs)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, unix.AF_UNSPEC, 0 /* NFNETLINK_V0 */, byte(queue>>8), byte(queue))
	return append(b, attrs...)
}

// request sends a config message and waits for its acknowledgment,
// dropping any packet that arrives meanwhile (the queue is not served yet).
func (q *Queue) request(attrs []byte) error {
	q.seq++
	seq := q.seq
	if err := q.send(appendMessage(nil, msgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, q.num, attrs)); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	q.nf.Con.SetReadDeadline(deadline)
	defer q.nf.Con.SetReadDeadline(time.Time{})
	for time.Now().Before(deadline) {
		if err, ok := q.acked[seq]; ok {
			delete(q.acked, seq)
			return err
		}
		if err := q.recv(); err != nil {
			return err
		}
		q.parse(nil)
		q.flush()
	}
	return errors.New("no answer from the kernel")
}

// sendmsg writes b to the socket in one call.
func (q *Queue) sendmsg(b []byte) error {
	q.out = b
	err := q.rc.Write(q.sendFn)
	q.out = nil
	if err != nil {
		return err
	}
	return q.werr
}

// sendAll is the RawConn write callback.
func (q *Queue) sendAll(fd uintptr) bool {
	_, q.werr = unix.Write(int(fd), q.out)
	return q.werr != unix.EAGAIN
}

// recv reads one recvmsg's worth of messages into rbuf; they become
// pending.
func (q *Queue) recv() error {
	q.rn, q.rerr = 0, nil
	if err := q.rc.Read(q.recvFn); err != nil {
		return err
	}
	if q.rerr != nil {
		return q.rerr
	}
	q.pending = q.rbuf[:q.rn]
	q.now = time.Now()
	return nil
}

// recvSome is the RawConn read callback; returning false makes the poller
// wait for the socket to become readable.
func (q *Queue) recvSome(fd uintptr) bool {
	q.rn, q.rerr = unix.Read(int(fd), q.rbuf)
	return q.rerr != unix.EAGAIN
}

// arm makes ctx's cancellation end a blocked recvmsg (a read deadline in
// the past). It registers once per context, so the serving loop, which
// passes the same context to every ReadBatch, allocates nothing after its
// first batch.
func (q *Queue) arm(ctx context.Context) {
	q.ctxMu.Lock()
	defer q.ctxMu.Unlock()
	if q.ctx == ctx {
		return
	}
	if q.stopCtx != nil {
		q.stopCtx()
	}
	q.ctx, q.stopCtx = ctx, nil
	if ctx.Done() == nil {
		return
	}
	q.nf.Con.SetReadDeadline(time.Time{})
	q.stopCtx = context.AfterFunc(ctx, func() { q.nf.Con.SetReadDeadline(time.Unix(1, 0)) })
}

// ReadBatch fills ps with the next queued packets: those left from the
// last recvmsg, else those of a new one, which it waits for. It returns
// ctx.Err() once ctx is done and nat.ErrClosed once the queue is closed.
// Receive errors (ENOBUFS, EINTR) are counted in Stats.ReadErrors and the
// queue reads on. A packet the kernel copied only in part, or not at all,
// gets a drop verdict here and never reaches the engine.
func (q *Queue) ReadBatch(ctx context.Context, ps []nat.Packet) (int, error) {
	if len(ps) == 0 {
		return 0, nil
	}
	q.arm(ctx)
	for {
		if len(q.pending) == 0 {
			// Every packet of the last recvmsg has its verdict: send them
			// before waiting for more.
			q.flush()
			q.counts.flush(q.st)
			if q.closed.Load() {
				return 0, nat.ErrClosed
			}
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			if err := q.recv(); err != nil {
				switch {
				case q.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF):
					return 0, nat.ErrClosed
				case ctx.Err() != nil:
					return 0, ctx.Err()
				}
				q.st.ReadErrors.Add(1)
				if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EINTR) && !errors.Is(err, os.ErrDeadlineExceeded) {
					q.log.Error("nfqueue receive", "queue", q.num, "err", err)
					time.Sleep(10 * time.Millisecond) // never spin on a persistent error
				}
				continue
			}
		}
		if n := q.parse(ps); n > 0 {
			return n, nil
		}
	}
}

// parse hands out pending messages until ps is full or none is left: a
// packet message fills the next slot of ps, an NLMSG_ERROR is an
// acknowledgment of a config request or a refused verdict. While the queue
// is being configured (ps empty), packets are dropped. It returns the
// number of slots filled.
func (q *Queue) parse(ps []nat.Packet) int {
	n := 0
	for len(q.pending) >= nlmsgHdrLen && (n < len(ps) || q.configuring) {
		b := q.pending
		mlen := int(binary.NativeEndian.Uint32(b[0:4]))
		if mlen < nlmsgHdrLen || mlen > len(b) {
			q.pending = nil
			break
		}
		q.pending = b[min(align4(mlen), len(b)):]
		typ := binary.NativeEndian.Uint16(b[4:6])
		seq := binary.NativeEndian.Uint32(b[8:12])
		body := b[nlmsgHdrLen:mlen]
		switch typ {
		case msgPacket:
			var slot *nat.Packet
			if !q.configuring {
				slot = &ps[n]
			}
			if q.packet(body, slot) {
				n++
			}
		case unix.NLMSG_ERROR:
			var err error
			if len(body) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(body[0:4])); code != 0 {
					err = syscall.Errno(-code)
				}
			}
			if q.configuring {
				q.acked[seq] = err
			} else if err != nil {
				q.counts.verdictErrors++
			}
		}
	}
	if len(q.pending) < nlmsgHdrLen {
		q.pending = nil // a tail too short for a message
	}
	return n
}

// packet parses one packet message. A whole packet is copied into slot
// (if not nil) and packet reports true; anything else is answered with a
// drop verdict at once.
func (q *Queue) packet(body []byte, slot *nat.Packet) bool {
	if len(body) < nfgenLen {
		return false
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
		return false
	}
	c := &q.counts
	c.received++
	if payload == nil || capLen >= 0 && capLen != len(payload) || slot == nil || len(payload) > cap(slot.Buf) {
		// No copy, only part of the packet, or no slot: never translate it.
		if payload != nil && capLen >= 0 && capLen != len(payload) {
			c.truncated++
		}
		c.dropped++
		q.appendVerdict(id, verdictDrop, -1)
		return false
	}
	if skb&skbGSO != 0 {
		c.gso++
	}
	if skb&skbCsumNotVerified != 0 {
		c.csumUnverified++
	}
	slot.N = copy(slot.Buf[:len(payload)], payload)
	slot.ID = uint64(id)
	slot.Time = q.now
	if skb&skbCsumNotReady != 0 {
		completeChecksum(slot.Buf[:slot.N])
		c.csumCompleted++
	}
	return true
}

// SingleOutput says that a verdict carries one packet: a datagram the
// engine reassembled goes whole as the verdict of its last fragment, and a
// held fragment (nat.Held) gets NF_DROP, the engine keeping its own copy.
func (q *Queue) SingleOutput() bool { return true }

// WriteBatch appends the verdict of every packet of ps, an accepted one
// carrying the packet the engine returned. The verdicts go out in one
// sendmsg once no packet of the last recvmsg is left (the next ReadBatch
// would wait) or the buffer passes flushAt. A failed sendmsg is counted in
// Stats.VerdictErrors and logged; the queue goes on.
func (q *Queue) WriteBatch(ps []nat.Packet) error {
	c := &q.counts
	for i := range ps {
		p := &ps[i]
		id := uint32(p.ID)
		if p.Verdict != nat.Accept || len(p.Out) > maxVerdictPayload {
			c.dropped++
			q.appendVerdict(id, verdictDrop, -1)
			continue
		}
		if q.ct != nil && p.CT.Pending() {
			// Crash-only: the flow's new facts go into its conntrack
			// entry before the packet that makes them true leaves. The
			// verdicts before it go first: a packet of this batch may be
			// what puts the entry in the kernel's table.
			q.flush()
			if err := q.ct.put(&p.CT); err != nil {
				q.st.CTStoreErrors.Add(1)
				p.CT.Failed()
			} else {
				p.CT.Done()
				q.st.CTStored.Add(1)
			}
		}
		if q.resend != nil {
			// The packet leaves from the router (resender); the queued
			// copy is dropped.
			switch err := q.resend.send(p.Out); {
			case err == nil:
				c.accepted++
				c.resent++
			case err == errTTLExpired:
				c.dropped++
				c.ttlExpired++
			default:
				c.dropped++
				c.resendErrors++
			}
			q.appendVerdict(id, verdictDrop, -1)
			continue
		}
		if cap(q.wbuf)-len(q.wbuf) < verdictHeadLen+len(p.Out)+3 {
			q.flush()
		}
		c.accepted++
		q.appendVerdict(id, verdictAccept, len(p.Out))
		q.wbuf = append(q.wbuf, p.Out...)
		for len(q.wbuf)%4 != 0 {
			q.wbuf = append(q.wbuf, 0)
		}
	}
	if len(q.pending) == 0 || len(q.wbuf) >= flushAt {
		q.flush()
	}
	c.flush(q.st)
	return nil
}

// flush sends the verdicts gathered so far.
func (q *Queue) flush() {
	if len(q.wbuf) == 0 {
		return
	}
	if err := q.send(q.wbuf); err != nil {
		q.counts.verdictErrors++
		q.log.Warn("nfqueue verdicts", "queue", q.num, "err", err)
	}
	q.wbuf = q.wbuf[:0]
}

// appendVerdict appends an NFQNL_MSG_VERDICT for packet id; with n >= 0 the
// message announces an NFQA_PAYLOAD attribute of n bytes, which the caller
// appends next.
func (q *Queue) appendVerdict(id uint32, v uint32, n int) {
	if cap(q.wbuf)-len(q.wbuf) < verdictHeadLen {
		q.flush()
	}
	size := nlmsgHdrLen + nfgenLen + nlaHdrLen + 8
	if n >= 0 {
		size = verdictHeadLen + n
	}
	w := q.wbuf
	w = binary.NativeEndian.AppendUint32(w, uint32(size))
	w = binary.NativeEndian.AppendUint16(w, msgVerdict)
	w = binary.NativeEndian.AppendUint16(w, unix.NLM_F_REQUEST)
	q.seq++
	w = binary.NativeEndian.AppendUint32(w, q.seq)
	w = binary.NativeEndian.AppendUint32(w, 0)
	w = append(w, unix.AF_UNSPEC, 0, byte(q.num>>8), byte(q.num))
	w = binary.NativeEndian.AppendUint16(w, nlaHdrLen+8)
	w = binary.NativeEndian.AppendUint16(w, attrVerdictHdr)
	w = binary.BigEndian.AppendUint32(w, v)
	w = binary.BigEndian.AppendUint32(w, id)
	if n >= 0 {
		w = binary.NativeEndian.AppendUint16(w, uint16(nlaHdrLen+n))
		w = binary.NativeEndian.AppendUint16(w, attrPayload)
	}
	q.wbuf = w
}
