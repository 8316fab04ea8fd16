// Package nfq is natalg's NFQUEUE front end: it binds netfilter queues with
// go-nfqueue, hands each queued packet to the engine and returns the verdict
// with the translated packet. It is fail-closed: no FAIL_OPEN, and a packet
// the engine cannot translate is dropped.
package nfq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/header"
)

// NFQA_SKB_INFO bits (include/uapi/linux/netfilter/nfnetlink_queue.h).
const (
	skbCsumNotReady    = 1 << 0 // CHECKSUM_PARTIAL: the L4 checksum is a pseudo-header sum
	skbGSO             = 1 << 1 // a GSO super-packet, larger than the MTU
	skbCsumNotVerified = 1 << 2 // the kernel has not verified the checksum
)

// Options configure the queues.
type Options struct {
	// Queues are the queue numbers to serve, one reader each.
	Queues []uint16
	// MaxQueueLen is the kernel queue length per queue (default 8192).
	MaxQueueLen uint32
	// ReadBuffer is the netlink socket receive buffer in bytes (default 32 MiB).
	ReadBuffer int
	// GSO asks the kernel for GSO super-packets (NFQA_CFG_F_GSO) instead of
	// segmenting them before queueing; their checksums are completed here.
	GSO bool
	Log *slog.Logger
}

// Stats count what the front end saw.
type Stats struct {
	Received       atomic.Uint64
	Accepted       atomic.Uint64
	Dropped        atomic.Uint64
	Truncated      atomic.Uint64 // copy shorter than the packet: dropped, never rewritten
	GSO            atomic.Uint64 // super-packets received
	CsumCompleted  atomic.Uint64 // partial checksums completed before translation
	CsumUnverified atomic.Uint64 // packets the kernel had not verified
	VerdictErrors  atomic.Uint64
	ReadErrors     atomic.Uint64 // ENOBUFS, timeouts: counted, the reader goes on
}

// Run serves the queues until ctx is done. ready is called once every queue
// is bound.
func Run(ctx context.Context, eng *nat.Engine, opt Options, st *Stats, ready func()) error {
	if len(opt.Queues) == 0 {
		return errors.New("nfq: no queues")
	}
	if opt.MaxQueueLen == 0 {
		opt.MaxQueueLen = 8192
	}
	if opt.ReadBuffer == 0 {
		opt.ReadBuffer = 32 << 20
	}
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var qs []*queue
	for _, n := range opt.Queues {
		q, err := open(ctx, eng, n, opt, st, log)
		if err != nil {
			for _, q := range qs {
				q.nf.Close()
			}
			return err
		}
		qs = append(qs, q)
	}
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	var wg sync.WaitGroup
	for _, q := range qs {
		wg.Add(1)
		go func(q *queue) {
			defer wg.Done()
			q.nf.Close()
		}(q)
	}
	wg.Wait()
	return nil
}

// queue is one bound NFQUEUE with its reader's buffer.
type queue struct {
	num uint16
	nf  *nfqueue.Nfqueue
	eng *nat.Engine
	st  *Stats
	log *slog.Logger
	buf []byte
}

func open(ctx context.Context, eng *nat.Engine, num uint16, opt Options, st *Stats, log *slog.Logger) (*queue, error) {
	var flags uint32
	if opt.GSO {
		flags |= nfqueue.NfQaCfgFlagGSO
	}
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      num,
		MaxPacketLen: nat.MaxPacket,
		MaxQueueLen:  opt.MaxQueueLen,
		Copymode:     nfqueue.NfQnlCopyPacket,
		AfFamily:     unix.AF_INET,
		Flags:        flags,
		WriteTimeout: 2 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("nfqueue %d: open: %w", num, err)
	}
	// A full socket buffer must not kill the reader: drop the ENOBUFS
	// error (the kernel counts the loss in nfnetlink_queue) and go on.
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: NETLINK_NO_ENOBUFS: %w", num, err)
	}
	if err := nf.Con.SetReadBuffer(opt.ReadBuffer); err != nil {
		log.Warn("cannot set the netlink receive buffer", "queue", num, "bytes", opt.ReadBuffer, "err", err)
	}
	q := &queue{num: num, nf: nf, eng: eng, st: st, log: log, buf: make([]byte, 0, nat.MaxPacket+256)}
	if err := nf.RegisterWithErrorFunc(ctx, q.packet, q.readError(ctx)); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: bind: %w (is another process bound to it?)", num, err)
	}
	return q, nil
}

// readError keeps the reader alive across transient errors.
func (q *queue) readError(ctx context.Context) nfqueue.ErrorFunc {
	return func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		q.st.ReadErrors.Add(1)
		var op *netlink.OpError
		if errors.As(err, &op) && (op.Timeout() || errors.Is(op.Err, syscall.ENOBUFS)) {
			return 0
		}
		if errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
			return 0
		}
		if errors.Is(err, syscall.EBADF) || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
			return 1
		}
		q.log.Error("nfqueue read", "queue", q.num, "err", err)
		return 0
	}
}

// packet handles one queued packet: translate, then verdict. It runs on the
// queue's single reader goroutine, so verdicts leave in arrival order.
func (q *queue) packet(a nfqueue.Attribute) int {
	if a.PacketID == nil {
		return 0
	}
	id := *a.PacketID
	q.st.Received.Add(1)
	if a.Payload == nil {
		q.verdict(id, nfqueue.NfDrop, nil)
		return 0
	}
	payload := *a.Payload
	if a.CapLen != nil && int(*a.CapLen) != len(payload) {
		// Only part of the packet was copied: translating it would send
		// the kernel a packet with a cut-off tail.
		q.st.Truncated.Add(1)
		q.verdict(id, nfqueue.NfDrop, nil)
		return 0
	}
	var skb uint32
	if a.SkbInfo != nil && len(*a.SkbInfo) >= 4 {
		skb = binary.BigEndian.Uint32(*a.SkbInfo)
	}
	buf := append(q.buf[:0], payload...)
	if skb&skbGSO != 0 {
		q.st.GSO.Add(1)
	}
	if skb&skbCsumNotVerified != 0 {
		// The engine verifies every segment whose payload it inspects.
		q.st.CsumUnverified.Add(1)
	}
	if skb&skbCsumNotReady != 0 {
		// The checksum field holds only the pseudo-header sum and the
		// kernel takes the checksum of a mangled packet as final: complete
		// it first, so incremental updates and verification both hold.
		completeChecksum(buf)
		q.st.CsumCompleted.Add(1)
	}
	v, out := q.eng.Process(buf, time.Now())
	if v != nat.Accept {
		q.st.Dropped.Add(1)
		q.verdict(id, nfqueue.NfDrop, nil)
		return 0
	}
	q.st.Accepted.Add(1)
	q.verdict(id, nfqueue.NfAccept, out)
	return 0
}

func (q *queue) verdict(id uint32, v int, pkt []byte) {
	var err error
	if pkt != nil {
		err = q.nf.SetVerdictModPacket(id, v, pkt)
	} else {
		err = q.nf.SetVerdict(id, v)
	}
	if err != nil {
		q.st.VerdictErrors.Add(1)
		q.log.Debug("nfqueue verdict", "queue", q.num, "id", id, "err", err)
	}
}

// completeChecksum computes the full transport checksum of a packet whose
// checksum the kernel left partial.
func completeChecksum(b []byte) {
	var p header.Parsed
	if p.Decode(b) != header.Ok || p.Fragment {
		return
	}
	switch p.Proto {
	case header.ProtoTCP, header.ProtoUDP:
		p.ComputeL4Checksum()
	}
}
