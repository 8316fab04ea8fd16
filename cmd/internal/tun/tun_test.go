package tun

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/natalg/natalg/cmd/internal/netnstest"
	"github.com/natalg/natalg/nat"
)

// openUp opens a TUN device and gives it 198.18.99.1/24, up.
func openUp(t *testing.T) *Device {
	t.Helper()
	d, err := Open("natalgtest0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	l, err := netlink.LinkByName(d.Name())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := netlink.ParseAddr("198.18.99.1/24")
	if err := netlink.AddrAdd(l, a); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	return d
}

// echoRequest builds an ICMP echo request 198.18.99.2 -> 198.18.99.1 into
// b and returns its length.
func echoRequest(b []byte, seq uint16) int {
	const n = 20 + 8 + 16
	p := b[:n]
	clear(p)
	p[0], p[8], p[9] = 0x45, 64, 1
	binary.BigEndian.PutUint16(p[2:], n)
	copy(p[12:16], []byte{198, 18, 99, 2})
	copy(p[16:20], []byte{198, 18, 99, 1})
	binary.BigEndian.PutUint16(p[10:], ^csum(p[:20]))
	p[20] = 8
	binary.BigEndian.PutUint16(p[24:], 0x4e41)
	binary.BigEndian.PutUint16(p[26:], seq)
	copy(p[28:], "natalg tun test.")
	binary.BigEndian.PutUint16(p[22:], ^csum(p[20:]))
	return n
}

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// isEchoReply reports whether p is an ICMP echo reply to 198.18.99.2 and
// returns its sequence number. The kernel may send other packets into the
// device (IPv6 router solicitations, MLD reports): they are not replies.
func isEchoReply(p []byte) (uint16, bool) {
	if len(p) < 28 || p[0]>>4 != 4 || p[9] != 1 || p[20] != 0 || !net.IP(p[16:20]).Equal(net.IPv4(198, 18, 99, 2)) {
		return 0, false
	}
	return binary.BigEndian.Uint16(p[26:]), true
}

func newBatch(n int) []nat.Packet {
	ps := make([]nat.Packet, n)
	for i := range ps {
		ps[i].Buf = make([]byte, nat.MaxPacket+256)
	}
	return ps
}

// readReplies reads until it has seen want echo replies (bounded by 5 s).
func readReplies(t *testing.T, d *Device, ps []nat.Packet, want int) map[uint16]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seen := map[uint16]bool{}
	for len(seen) < want {
		n, err := d.ReadBatch(ctx, ps)
		if err != nil {
			t.Fatalf("ReadBatch after %d replies: %v", len(seen), err)
		}
		for _, p := range ps[:n] {
			if seq, ok := isEchoReply(p.Buf[:p.N]); ok {
				seen[seq] = true
			}
		}
	}
	return seen
}

// TestDeviceEcho writes echo requests into the device as a batch, and reads
// the kernel's replies back in batches.
func TestDeviceEcho(t *testing.T) {
	netnstest.Enter(t)
	d := openUp(t)
	if d.Name() != "natalgtest0" {
		t.Errorf("Name() = %q", d.Name())
	}
	out := newBatch(8)
	for i := range out {
		out[i].N = echoRequest(out[i].Buf, uint16(i+1))
		out[i].Out = out[i].Buf[:out[i].N]
	}
	out[3].Verdict = nat.Drop // not written: no reply 4
	if err := d.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	if w, dr := d.Stats.Written.Load(), d.Stats.Dropped.Load(); w != 7 || dr != 1 {
		t.Errorf("written %d dropped %d, want 7 and 1", w, dr)
	}
	seen := readReplies(t, d, newBatch(4), 7)
	if seen[4] {
		t.Error("the dropped request was answered")
	}
	if d.Stats.Received.Load() < 7 {
		t.Errorf("Received = %d", d.Stats.Received.Load())
	}
	if e := d.Stats.WriteErrors.Load() + d.Stats.ReadErrors.Load(); e != 0 {
		t.Errorf("%d errors", e)
	}
}

// TestDeviceUntranslated: a packet read from the device and accepted
// unchanged is not written back (it would be routed into the device again).
func TestDeviceUntranslated(t *testing.T) {
	netnstest.Enter(t)
	d := openUp(t)
	req := newBatch(1)
	req[0].N = echoRequest(req[0].Buf, 1)
	req[0].Out = req[0].Buf[:req[0].N]
	if err := d.WriteBatch(req); err != nil {
		t.Fatal(err)
	}
	ps := newBatch(1)
	readReplies(t, d, ps, 1)
	ps[0].Verdict, ps[0].Out = nat.Accept, ps[0].Buf[:ps[0].N]
	w := d.Stats.Written.Load()
	if err := d.WriteBatch(ps); err != nil {
		t.Fatal(err)
	}
	if d.Stats.Written.Load() != w || d.Stats.Untranslated.Load() != 1 {
		t.Errorf("written %d -> %d, untranslated %d: want the unchanged packet held back", w, d.Stats.Written.Load(), d.Stats.Untranslated.Load())
	}
}

// TestDeviceCancel: a blocked ReadBatch returns when its context is done,
// and when the device is closed.
func TestDeviceCancel(t *testing.T) {
	netnstest.Enter(t)
	d := openUp(t)
	ps := newBatch(4)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	for {
		// the kernel may still send a router solicitation or two
		n, err := d.ReadBatch(ctx, ps)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("ReadBatch: %v, want the context's error", err)
			}
			break
		}
		if n == 0 || time.Since(t0) > 5*time.Second {
			t.Fatalf("ReadBatch returned %d, nil after %v", n, time.Since(t0))
		}
	}
	if el := time.Since(t0); el > 2*time.Second {
		t.Errorf("cancellation took %v", el)
	}
	// a new context works again after the old one ended
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := d.ReadBatch(ctx2, ps); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, nat.ErrClosed) {
			t.Errorf("ReadBatch after Close: %v, want nat.ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("ReadBatch still blocked 3 s after Close")
	}
	cancel2()
	if err := d.WriteBatch(ps[:1]); !errors.Is(err, nat.ErrClosed) {
		t.Errorf("WriteBatch after Close: %v, want nat.ErrClosed", err)
	}
	if _, err := netlink.LinkByName("natalgtest0"); err == nil {
		t.Error("the device is still there after Close")
	}
}

// TestDeviceNoAlloc: a write and read of one batch allocates nothing once the
// loop runs.
func TestDeviceNoAlloc(t *testing.T) {
	netnstest.Enter(t)
	d := openUp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, in := newBatch(1), newBatch(4)
	seq := uint16(0)
	round := func() {
		seq++
		out[0].N = echoRequest(out[0].Buf, seq)
		out[0].Verdict, out[0].Out = nat.Accept, out[0].Buf[:out[0].N]
		if err := d.WriteBatch(out); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := d.ReadBatch(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range in[:n] {
				if s, ok := isEchoReply(p.Buf[:p.N]); ok && s == seq {
					return
				}
			}
		}
	}
	round()
	if a := testing.AllocsPerRun(200, round); a != 0 {
		t.Errorf("%v allocations per write+read round, want 0", a)
	}
}

// TestOpenBadName: names the kernel cannot take are refused before the
// ioctl.
func TestOpenBadName(t *testing.T) {
	for _, n := range []string{"", "a-name-longer-than-15"} {
		if _, err := Open(n); err == nil {
			t.Errorf("Open(%q) succeeded", n)
		}
	}
}
