package kerneldp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

// ctaMark is the conntrack netlink attribute CTA_MARK (a top-level
// attribute of every event of an entry with a nonzero mark).
const ctaMark = 8

// dataEventFilter is a classic BPF program for the conntrack event socket.
// It passes a message only when its top-level CTA_MARK attribute has
// CtMarkData: the kernel's nla_find (the SKF_AD_NLATTR extension, as
// libnetfilter_conntrack's filters use it) finds the attribute after the
// netlink and nfnetlink headers. The events of every other connection of
// the router (several per TCP connection, on a busy router tens of
// thousands a second) are then dropped in the kernel before they reach
// natalg's receive buffer: natalg neither wakes for them nor loses its own
// events when they overrun the buffer.
func dataEventFilter() ([]bpf.RawInstruction, error) {
	const attrs = unix.NLMSG_HDRLEN + 4 // struct nlmsghdr, struct nfgenmsg
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadConstant{Dst: bpf.RegA, Val: attrs},
		bpf.LoadConstant{Dst: bpf.RegX, Val: ctaMark},
		bpf.LoadExtension{Num: bpf.ExtNetlinkAttr},           // A = offset of CTA_MARK, 0 if none
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 5}, // no mark: drop
		bpf.TAX{},                         // X = the attribute
		bpf.LoadIndirect{Off: 4, Size: 4}, // A = the mark (after the 4-byte attribute header)
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: CtMarkData},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 1}, // not a data connection of natalg's: drop
		bpf.RetConstant{Val: 0xffffffff},                     // keep the whole message
		bpf.RetConstant{Val: 0},                              // drop
	})
}

// dialEvents opens a netlink socket subscribed to conntrack's new, update
// and destroy events of natalg's data connections (dataEventFilter).
func dialEvents() (*netlink.Conn, error) {
	filter, err := dataEventFilter()
	if err != nil {
		return nil, fmt.Errorf("kerneldp: conntrack event filter: %w", err)
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("kerneldp: conntrack netlink: %w", err)
	}
	// the filter goes on before the groups are joined: no unfiltered
	// event is ever queued
	if err := c.SetBPF(filter); err != nil {
		c.Close()
		return nil, fmt.Errorf("kerneldp: conntrack event filter: %w", err)
	}
	for _, g := range []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTUpdate, netfilter.GroupCTDestroy} {
		if err := c.JoinGroup(uint32(g)); err != nil {
			c.Close()
			return nil, fmt.Errorf("kerneldp: conntrack event group %d: %w", g, err)
		}
	}
	return c, nil
}

// readEvents reads conntrack events from c until ctx is done, handing each
// to handle. An overrun of the socket's buffer (ENOBUFS: events were lost)
// calls overrun and goes on reading.
func readEvents(ctx context.Context, c *netlink.Conn, handle func(*ct.Event), overrun func()) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for {
		msgs, err := c.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, unix.ENOBUFS) {
			overrun()
			continue
		}
		if err != nil {
			return err
		}
		for _, m := range msgs {
			var ev ct.Event
			if err := ev.Unmarshal(m); err != nil {
				continue
			}
			handle(&ev)
		}
	}
}

// event handles one conntrack event of a data connection (CtMarkData).
func (d *Datapath) event(eng *nat.Engine, ev *ct.Event) {
	d.Stats.Events.Add(1)
	if ev.Flow == nil || ev.Flow.Mark&CtMarkData == 0 {
		return
	}
	o := ev.Flow.TupleOrig
	if ipproto.Proto(o.Proto.Protocol) != ipproto.TCP {
		return
	}
	inside, public, dnat := dataEndpoints(ev.Flow)
	if ev.Type == ct.EventDestroy || ev.Type == ct.EventUpdate {
		if dnat && (ev.Type == ct.EventDestroy || closed(ev.Flow)) {
			eng.ReleaseKernelData(ipproto.TCP, inside, public)
		}
		return
	}
	// the public port stays bound to the inside endpoint while the
	// connection runs (held before the expectation lets it go): the next
	// data connection from the same peer port (an active-mode server's
	// 20) must not be handed the same 5-tuple
	if dnat {
		eng.HoldKernelData(ipproto.TCP, inside, public)
	}
	d.used(eng, o.IP.SourceAddress.Unmap(), netip.AddrPortFrom(o.IP.DestinationAddress.Unmap(), o.Proto.DestinationPort))
}

// resync is what an overrun of the event socket calls: the lost events are
// read back from the kernel's table. Each data connection there has used
// its expectation (its element goes, if natalg still owns it) and holds its
// public port while it runs; a hold whose connection is gone or closed is
// released.
func (d *Datapath) resync(eng *nat.Engine) error {
	c, err := ct.Dial(nil)
	if err != nil {
		return fmt.Errorf("kerneldp: conntrack netlink: %w", err)
	}
	defer c.Close()
	flows, err := c.DumpFilter(ct.NewFilter().Mark(CtMarkData).MarkMask(CtMarkData), nil)
	if err != nil {
		return fmt.Errorf("kerneldp: conntrack dump: %w", err)
	}
	running := make(map[nat.KernelDataHold]bool)
	for i := range flows {
		f := &flows[i]
		o := f.TupleOrig
		if f.Mark&CtMarkData == 0 || ipproto.Proto(o.Proto.Protocol) != ipproto.TCP {
			continue
		}
		if inside, public, dnat := dataEndpoints(f); dnat && !closed(f) {
			eng.HoldKernelData(ipproto.TCP, inside, public)
			running[nat.KernelDataHold{Proto: ipproto.TCP, Inside: inside, Public: public}] = true
		}
		d.used(eng, o.IP.SourceAddress.Unmap(), netip.AddrPortFrom(o.IP.DestinationAddress.Unmap(), o.Proto.DestinationPort))
	}
	for _, h := range eng.KernelDataHeld() {
		if !running[h] {
			eng.ReleaseKernelData(h.Proto, h.Inside, h.Public)
		}
	}
	return nil
}
