// Package tun is natalg's TUN front end: a Linux TUN device (IFF_TUN |
// IFF_NO_PI, so every read and write is one bare IP packet) that implements
// nat.Device. The NAT64 datapath (RFC 6146) routes the NAT64 prefix and the
// IPv4 pool into the device; natalg reads those packets, translates them
// (RFC 7915) and writes the results back, for the kernel to route on.
//
// The descriptor is nonblocking and registered with Go's netpoller, so a
// blocked ReadBatch returns when its context is done (through a read
// deadline) or when the device is closed. A batch is one poller wait and as
// many read(2) calls as packets are ready; nothing is allocated per packet.
package tun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/nat"
)

// Stats counts what the device did; the engine's Stats count the rest (per
// verdict and per drop reason).
type Stats struct {
	Received     atomic.Uint64 // packets read from the device
	Written      atomic.Uint64 // packets written back (translated)
	Dropped      atomic.Uint64 // packets the engine dropped: not written
	Held         atomic.Uint64 // fragments the engine holds for reassembly: not written
	Untranslated atomic.Uint64 // accepted but not translated: not written (see WriteBatch)
	ReadErrors   atomic.Uint64 // read(2) failures other than EAGAIN
	WriteErrors  atomic.Uint64 // write(2) failures (the packet is lost, the loop goes on)
}

// Device is an open TUN device.
type Device struct {
	f    *os.File
	rc   syscall.RawConn
	name string

	// Stats are the device's counters.
	Stats Stats

	// the batch being read, for readFn (a method value made once, so a
	// batch allocates nothing)
	ps     []nat.Packet
	n      int
	rerr   error
	readFn func(fd uintptr) bool
	// what each packet of the batch looked like when read: its IP version
	// and destination address, to tell a translated packet from one the
	// engine passed unchanged
	in []inInfo
	// the batch being written
	wps     []nat.Packet
	wi      int
	wm      int // packets of wps[wi] written: Out, then More
	writeFn func(fd uintptr) bool

	ctxMu   sync.Mutex
	ctx     context.Context // the context whose cancellation is armed
	stopCtx func() bool

	closed atomic.Bool
}

type inInfo struct {
	ver byte
	dst [16]byte
}

// maxName is IFNAMSIZ less the terminating NUL.
const maxName = unix.IFNAMSIZ - 1

// ifreq is struct ifreq with the ifr_flags member (TUNSETIFF).
type ifreq struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// Open creates (or attaches to) the TUN device name, in IFF_TUN|IFF_NO_PI
// mode, in the network namespace of the calling thread. The device is not
// persistent: it disappears, with its addresses and routes, when the
// Device is closed or the process exits.
func Open(name string) (*Device, error) {
	if name == "" || len(name) > maxName {
		return nil, fmt.Errorf("tun: bad device name %q (1 to %d bytes)", name, maxName)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("tun: open /dev/net/tun: %w", err)
	}
	var req ifreq
	copy(req.name[:], name)
	req.flags = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("tun: TUNSETIFF %s: %w", name, errno)
	}
	// os.NewFile sees the descriptor is nonblocking and puts it in the
	// netpoller: reads wait there and honour deadlines.
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tun: %s: %w", name, err)
	}
	n := 0
	for n < len(req.name) && req.name[n] != 0 {
		n++
	}
	d := &Device{f: f, rc: rc, name: string(req.name[:n])}
	d.readFn = d.readSome
	d.writeFn = d.writeSome
	return d, nil
}

// Name returns the device's name (the kernel's, as TUNSETIFF returned it).
func (d *Device) Name() string { return d.name }

// Close closes the descriptor: the kernel removes the device (it is not
// persistent) and every route through it. A blocked ReadBatch returns
// nat.ErrClosed.
func (d *Device) Close() error {
	if !d.closed.CompareAndSwap(false, true) {
		return nil
	}
	d.ctxMu.Lock()
	if d.stopCtx != nil {
		d.stopCtx()
	}
	d.ctxMu.Unlock()
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("tun: close %s: %w", d.name, err)
	}
	return nil
}

// arm makes ctx's cancellation end blocked reads (a read deadline in the
// past). It registers once per context, so the serving loop, which passes
// the same context to every ReadBatch, allocates nothing after its first
// batch.
func (d *Device) arm(ctx context.Context) {
	d.ctxMu.Lock()
	defer d.ctxMu.Unlock()
	if d.ctx == ctx {
		return
	}
	if d.stopCtx != nil {
		d.stopCtx()
	}
	d.ctx = ctx
	d.stopCtx = nil
	if ctx.Done() == nil {
		return
	}
	_ = d.f.SetReadDeadline(time.Time{})
	d.stopCtx = context.AfterFunc(ctx, func() { _ = d.f.SetReadDeadline(time.Unix(1, 0)) })
}

// ReadBatch waits for at least one packet, then reads as many as are ready,
// up to len(ps). It returns ctx.Err() once ctx is done and nat.ErrClosed
// once the device is closed. A Device serves one loop: ReadBatch and
// WriteBatch are not called concurrently, and WriteBatch gets the packets
// of the last ReadBatch, in their places.
func (d *Device) ReadBatch(ctx context.Context, ps []nat.Packet) (int, error) {
	if len(ps) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d.arm(ctx)
	if cap(d.in) < len(ps) {
		d.in = make([]inInfo, len(ps))
	}
	d.in = d.in[:len(ps)]
	d.ps, d.n, d.rerr = ps, 0, nil
	err := d.rc.Read(d.readFn)
	n := d.n
	d.ps = nil
	if n > 0 {
		now := time.Now()
		for i := range ps[:n] {
			ps[i].Time = now
		}
		d.Stats.Received.Add(uint64(n))
		return n, nil
	}
	switch {
	case d.closed.Load():
		return 0, nat.ErrClosed
	case err == nil:
		err = d.rerr
	case errors.Is(err, os.ErrDeadlineExceeded):
		if cerr := ctx.Err(); cerr != nil {
			return 0, cerr
		}
	}
	if err != nil {
		return 0, fmt.Errorf("tun: read %s: %w", d.name, err)
	}
	return 0, nil
}

// readSome is the RawConn read callback: it reads packets until the batch
// is full or none is ready. Returning false makes the poller wait for the
// descriptor to become readable.
func (d *Device) readSome(fd uintptr) bool {
	for d.n < len(d.ps) {
		p := &d.ps[d.n]
		buf := p.Buf[:cap(p.Buf)]
		n, err := unix.Read(int(fd), buf)
		if err != nil {
			switch err {
			case unix.EAGAIN:
				return d.n > 0
			case unix.EINTR:
				continue
			}
			d.Stats.ReadErrors.Add(1)
			if d.n > 0 {
				return true
			}
			d.rerr = err
			return true
		}
		if n == 0 {
			continue
		}
		p.N = n
		in := &d.in[d.n]
		in.ver, in.dst = ipDst(buf[:n])
		d.n++
	}
	return true
}

// ipDst returns an IP packet's version and destination address (IPv4 in the
// first 4 bytes).
func ipDst(b []byte) (ver byte, dst [16]byte) {
	if len(b) == 0 {
		return 0, dst
	}
	ver = b[0] >> 4
	switch {
	case ver == 4 && len(b) >= 20:
		copy(dst[:4], b[16:20])
	case ver == 6 && len(b) >= 40:
		copy(dst[:], b[24:40])
	}
	return ver, dst
}

// WriteBatch writes back the packets the engine translated. Dropped packets
// are not written; neither are packets the engine accepted unchanged (same
// IP version and destination as read): routing put them into the device, so
// writing them back would have the kernel route them into it again, a loop
// that ends only when the hop limit does (a router solicitation of the
// device itself, say, or a packet to the prefix the engine does not
// handle). A packet the kernel refuses is counted in Stats.WriteErrors and
// the rest of the batch is still written; WriteBatch fails only when the
// device is closed.
func (d *Device) WriteBatch(ps []nat.Packet) error {
	d.wps, d.wi, d.wm = ps, 0, 0
	err := d.rc.Write(d.writeFn)
	d.wps = nil
	if err != nil {
		if d.closed.Load() {
			return nat.ErrClosed
		}
		return fmt.Errorf("tun: write %s: %w", d.name, err)
	}
	return nil
}

func (d *Device) writeSome(fd uintptr) bool {
	for d.wi < len(d.wps) {
		i := d.wi
		p := &d.wps[i]
		if p.Verdict != nat.Accept {
			if p.Verdict == nat.Held {
				d.Stats.Held.Add(1)
			} else {
				d.Stats.Dropped.Add(1)
			}
			d.wi++
			continue
		}
		if i < len(d.in) {
			if ver, dst := ipDst(p.Out); ver == d.in[i].ver && dst == d.in[i].dst {
				d.Stats.Untranslated.Add(1)
				d.wi++
				continue
			}
		}
		// Out, then the fragments of More (nat.Packet): d.wm counts
		// those of this packet already written.
		for d.wm <= len(p.More) {
			b := p.Out
			if d.wm > 0 {
				b = p.More[d.wm-1]
			}
			_, err := unix.Write(int(fd), b)
			switch err {
			case nil:
				d.Stats.Written.Add(1)
			case unix.EAGAIN:
				return false // wait until writable, then retry this packet
			case unix.EINTR:
				continue
			default:
				d.Stats.WriteErrors.Add(1)
			}
			d.wm++
		}
		d.wm = 0
		d.wi++
	}
	return true
}
