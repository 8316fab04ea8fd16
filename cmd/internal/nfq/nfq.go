// Package nfq is natalg's NFQUEUE front end. Each bound queue is a
// nat.Device (Queue): ReadBatch fills a batch from the packet messages of one
// recvmsg, the engine's Serve loop translates the batch, and WriteBatch
// answers it with verdicts that carry the translated packets, sent together
// in one sendmsg. It is fail-closed: no FAIL_OPEN, and a packet the engine
// cannot translate is dropped.
package nfq

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
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
	// Batch is the number of packets Engine.Serve handles per batch
	// (default 64).
	Batch int
	// StoreCT stores in the kernel's conntrack entries what the engine
	// asks (nat.Packet.CT: natalg's crash-only state), over ctnetlink,
	// before the packet's verdict.
	StoreCT bool
	// Resend are the queues whose packets were queued at the input hook,
	// addressed to the router: an accepted packet is sent on from the
	// router through a raw socket carrying ResendMark (resender), and the
	// queued copy dropped.
	Resend     []uint16
	ResendMark uint32
	Log        *slog.Logger
}

// Stats count what the front end saw. The queues add to them once per
// batch.
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
	Resent         atomic.Uint64 // accepted packets sent on from the router (Options.Resend)
	TTLExpired     atomic.Uint64 // packets to be sent on whose TTL or hop limit ran out: dropped
	ResendErrors   atomic.Uint64 // raw socket sends that failed: the packet is lost
}

// Run binds the queues and serves each with eng.Serve until ctx is done.
// ready is called once every queue is bound.
func Run(ctx context.Context, eng *nat.Engine, opt Options, st *Stats, ready func()) error {
	if len(opt.Queues) == 0 {
		return errors.New("nfq: no queues")
	}
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	var qs []*Queue
	for _, num := range opt.Queues {
		q, err := Open(num, opt, st)
		if err != nil {
			for _, q := range qs {
				q.Close()
			}
			return err
		}
		qs = append(qs, q)
	}
	if ready != nil {
		ready()
	}
	var wg sync.WaitGroup
	for _, q := range qs {
		wg.Add(1)
		go func(q *Queue) {
			defer wg.Done()
			defer q.Close()
			if err := eng.Serve(ctx, q, opt.Batch); err != nil {
				log.Error("nfqueue loop stopped", "queue", q.num, "err", err)
			}
		}(q)
	}
	wg.Wait()
	return nil
}

// completeChecksum computes the full transport checksum of a packet whose
// checksum the kernel left partial.
func completeChecksum(b []byte) {
	var p header.Parsed
	if p.Decode(b) != header.Ok || p.Fragment {
		return
	}
	switch p.Proto {
	case ipproto.TCP, ipproto.UDP:
		p.ComputeL4Checksum()
	}
}
