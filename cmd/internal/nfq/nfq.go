// Package nfq is natalg's NFQUEUE front end: it binds netfilter queues with
// go-nfqueue, hands each queued packet to the engine and returns the verdict
// with the translated packet. It is fail-closed: no FAIL_OPEN, and a packet
// the engine cannot translate is dropped.
package nfq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

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
	// StoreCT stores in the kernel's conntrack entries what the engine
	// asks (nat.Engine.ProcessCT: natalg's crash-only state), over
	// ctnetlink, before the packet's verdict.
	StoreCT bool
	Log     *slog.Logger
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
	CTStored       atomic.Uint64 // facts stored in a conntrack entry before the packet's verdict
	CTStoreErrors  atomic.Uint64 // stores the kernel refused (no entry yet: the next packet tries again)
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
			<-q.done
			q.nf.Close()
		}(q)
	}
	wg.Wait()
	return nil
}

// queue is one bound NFQUEUE.
type queue struct {
	done chan struct{} // closed when the reader has unbound
	num  uint16
	nf   *nfqueue.Nfqueue
	eng  *nat.Engine
	st   *Stats
	log  *slog.Logger
}

func open(ctx context.Context, eng *nat.Engine, num uint16, opt Options, st *Stats, log *slog.Logger) (*queue, error) {
	// go-nfqueue opens the netlink socket (in this network namespace);
	// binding, configuration and the packet path are natalg's own loop.
	nf, err := nfqueue.Open(&nfqueue.Config{NfQueue: num, AfFamily: unix.AF_INET})
	if err != nil {
		return nil, fmt.Errorf("nfqueue %d: open: %w", num, err)
	}
	// A full socket buffer must not kill the reader: no ENOBUFS errors (the
	// kernel counts the loss in /proc/net/netfilter/nfnetlink_queue).
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: NETLINK_NO_ENOBUFS: %w", num, err)
	}
	q := &queue{num: num, nf: nf, eng: eng, st: st, log: log, done: make(chan struct{})}
	l, err := newLoop(q)
	if err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: %w", num, err)
	}
	if opt.StoreCT {
		if l.ct, err = openCTStore(); err != nil {
			nf.Close()
			return nil, fmt.Errorf("nfqueue %d: %w", num, err)
		}
	}
	// The FORCE options pass net.core.rmem_max/wmem_max (root); netlink
	// refuses a sendmsg larger than the send buffer.
	l.rc.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opt.ReadBuffer); err != nil {
			log.Warn("cannot set the netlink receive buffer", "queue", num, "bytes", opt.ReadBuffer, "err", err)
		}
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4*flushAt); err != nil {
			log.Warn("cannot set the netlink send buffer", "queue", num, "err", err)
		}
	})
	var flags uint32
	if opt.GSO {
		flags |= nfqueue.NfQaCfgFlagGSO
	}
	if err := l.configure(opt.MaxQueueLen, flags); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue %d: %w", num, err)
	}
	go func() {
		defer close(q.done)
		l.run(ctx)
		l.unbind()
		if l.ct != nil {
			l.ct.close()
		}
	}()
	return q, nil
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
