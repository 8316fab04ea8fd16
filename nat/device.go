package nat

import (
	"context"
	"errors"
	"time"
)

// MaxPacket is the largest IP packet the engine handles; front ends give
// every Packet.Buf at least this capacity so gateway rewrites can grow it.
const MaxPacket = 65535

// Packet is one packet in a batch exchanged with a Device.
type Packet struct {
	// Buf holds the IP packet (from the IP header) in Buf[:N]; cap(Buf) is
	// at least MaxPacket. After processing, Out aliases Buf.
	Buf []byte
	N   int
	// Time is when the packet arrived.
	Time time.Time
	// ID is the front end's own handle (an NFQUEUE packet id, a capture
	// index); the engine does not read it.
	ID uint64
	// Verdict and Out are set by the engine; Reason says why a packet was
	// dropped.
	Verdict Verdict
	Out     []byte
	Reason  DropReason
	// More are further packets to send after Out, in order, when Verdict
	// is Accept: the engine set them when this packet completed a
	// fragmented datagram, translated it and cut it into fragments again
	// (RFC 7915 §4.1 and §5.1.1 on NAT64; the original boundaries on
	// NAT44). They live in memory of their own, valid until the packet is
	// processed again. A packet whose fragment the engine holds, waiting
	// for the rest of its datagram, gets Verdict Held and no output.
	More [][]byte
	// CT is what the front end must store in the kernel's conntrack entry
	// of the packet's connection before it sends the verdict (crash-only,
	// see ProcessCT), when the engine has a CTStore; Serve fills it.
	CT CTFacts
}

// Device is a source and sink of packet batches: the NFQUEUE front end
// (cmd/internal/nfq), the NAT64 TUN device (cmd/internal/tun), the pcap
// replay (cmd/internal/pcapreplay) and the in-memory benchmark device
// (bench) implement it, so one worker loop, Serve, drives them all (the
// shape of wireguard-go's tun.Device).
type Device interface {
	// ReadBatch fills up to len(ps) packets and returns how many. It blocks
	// until at least one is available, ctx is done or the device is closed.
	ReadBatch(ctx context.Context, ps []Packet) (int, error)
	// WriteBatch delivers the verdicts (and rewritten packets) of ps, in
	// order: for an accepted packet, Out and then every packet of More.
	WriteBatch(ps []Packet) error
}

// SingleOutput is implemented by a Device that can send at most one packet
// for each packet it read (an NFQUEUE verdict replaces one packet with one)
// and so cannot send Packet.More. Serve then leaves More empty: a
// datagram the engine reassembled leaves whole, in Out, as the verdict of
// its last fragment, and the kernel fragments it on output if it is IPv4
// with DF clear and larger than the link's MTU (the NFQUEUE datapath
// normally has the kernel's defrag in front of it: see natalg rules).
type SingleOutput interface {
	SingleOutput() bool
}

// ErrClosed is returned by a Device that has no more packets.
var ErrClosed = errors.New("nat: device closed")

// ProcessBatch translates every packet of ps in place, in order, and sets
// its Verdict, Out and Reason. Each packet is Buf[:N], from its IP header;
// bytes past the IP length (link padding) are cut off. Out, the packet to
// send, aliases Buf's array: a payload rewrite may grow the packet up to
// cap(Buf) (NewBatch's buffers are always large enough), else the packet is
// dropped as too_big. Time is the packet's arrival time.
//
// A packet from an inside address is outbound, one to a public address is
// inbound, one from an inside address to a public address is hairpinned
// (translated both ways, back inside, RFC 4787 §6) or, when nothing inside
// answers there, accepted unchanged for the router itself; with NAT64 on,
// an IPv6 packet to the NAT64 prefix is outbound and an IPv4 packet to the
// pool inbound NAT64 (the packet changes family: Out may start 20 bytes
// later in Buf's array, or be 20 bytes longer). Any other packet is
// accepted unchanged.
//
// A fragment of a packet to translate comes back with Verdict Held (kept
// for reassembly) until its datagram is whole; the fragment that completes
// it gets the datagram translated, cut into fragments again, in Out and
// More (see Packet).
//
// The counters of the fast path (Stats.In, Accepted, Translated, Passed)
// are added once per batch.
func (e *Engine) ProcessBatch(ps []Packet) { e.processBatch(ps, true) }

// processBatch is ProcessBatch; split says whether the packets may get
// More (when not, a reassembled datagram comes back whole in Out, in
// memory of its own).
func (e *Engine) processBatch(ps []Packet, split bool) {
	var c counts
	if len(ps) > 1 && e.table.Len() >= prefetchMin {
		e.prefetchBatch(ps, split, &c)
	} else {
		for i := range ps {
			p := &ps[i]
			p.Verdict, p.Out, p.Reason = e.process(p.Buf[:p.N], p.Time.UnixNano(), nil, &c, p.more(split), e.factsOf(p))
		}
	}
	c.flush(&e.Stats)
}

// more empties p.More and returns where the engine may put more output
// packets: nil when the device cannot send them.
func (p *Packet) more(split bool) *[][]byte {
	if len(p.More) != 0 {
		clear(p.More)
		p.More = p.More[:0]
	}
	if !split {
		return nil
	}
	return &p.More
}

// bufSize is the size of each packet buffer of NewBatch, bufStride the
// distance between them in its one allocation: an odd number of cache lines
// past a multiple of the 4 KiB page, so that the buffers' first lines, where
// the headers are, fall in different sets of the L1 cache (its set is picked
// by the address bits below 4 KiB). Buffers that all start on a page
// boundary would put the headers of a whole batch in one set, whose 8 or 12
// ways cannot hold them (bench/README.md, "Scaling with workers").
const (
	bufSize   = MaxPacket + 256
	bufStride = (bufSize+4095)&^4095 + 5*64
)

// NewBatch returns n packets whose buffers have room for MaxPacket bytes and
// more, as Serve uses them. The buffers are carved from one allocation; each
// is capped at its own end, so a rewrite that grows a packet never reaches
// the next one.
func NewBatch(n int) []Packet {
	ps := make([]Packet, n)
	slab := make([]byte, n*bufStride)
	for i := range ps {
		ps[i].Buf = slab[i*bufStride : i*bufStride+bufSize : i*bufStride+bufSize]
	}
	return ps
}

// Serve reads batches of up to batch packets from dev, processes them and
// writes the verdicts back, until ctx is done or the device reports
// ErrClosed (then Serve returns nil). Several Serve loops may share one
// Engine.
func (e *Engine) Serve(ctx context.Context, dev Device, batch int) error {
	if batch <= 0 {
		batch = 64
	}
	ps := NewBatch(batch)
	split := true
	if so, ok := dev.(SingleOutput); ok && so.SingleOutput() {
		split = false
	}
	for {
		n, err := dev.ReadBatch(ctx, ps)
		if n > 0 {
			e.processBatch(ps[:n], split)
			if werr := dev.WriteBatch(ps[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}
