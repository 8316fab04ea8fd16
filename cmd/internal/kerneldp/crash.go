package kerneldp

import (
	"fmt"
	"log/slog"
	"time"

	ct "github.com/ti-mo/conntrack"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

// The kernel's TCP conntrack states (enum tcp_conntrack,
// include/uapi/linux/netfilter/nf_conntrack_tcp.h).
const (
	ctTCPSynSent     = 1
	ctTCPSynRecv     = 2
	ctTCPEstablished = 3
	ctTCPFinWait     = 4
	ctTCPCloseWait   = 5
	ctTCPLastAck     = 6
	ctTCPTimeWait    = 7
	ctTCPClose       = 8
	ctTCPSynSent2    = 9
)

// Rebuild rebuilds eng's flow table from the kernel: every conntrack entry
// carrying natalg's connection mark (eng's CTStore.MarkMask) becomes the
// flow natalg had made for it (its kind and public port from the mark, an
// FTP control connection's sequence offsets from its labels), and in the
// split datapath every expectation element in natalg's maps is adopted by
// the control connection that announced it, or withdrawn when that
// connection is not there (d.Sync). Flows the engine has already are kept.
//
// natalg run calls it at start, after the table is installed and before
// any packet is translated; a router that becomes master (keepalived's
// notify) calls it again (natalg run does on SIGUSR1, and "natalg
// rebuild" asks it over the control socket) to take over the connections
// conntrackd synced to it. d may be nil (no expectation maps).
func Rebuild(eng *nat.Engine, d *Datapath, log *slog.Logger) (nat.AdoptStats, error) {
	t0 := time.Now()
	c, err := ct.Dial(nil)
	if err != nil {
		return nat.AdoptStats{}, fmt.Errorf("kerneldp: conntrack netlink: %w", err)
	}
	defer c.Close()
	dump, err := c.Dump(nil)
	if err != nil {
		return nat.AdoptStats{}, fmt.Errorf("kerneldp: conntrack dump: %w", err)
	}
	mask := eng.CTStore().MarkMask
	var flows []nat.KernelFlow
	for i := range dump {
		f := &dump[i]
		if f.Mark&mask == 0 {
			continue
		}
		flows = append(flows, kernelFlow(f))
	}
	var exps []nat.KernelExpectation
	if d != nil && !d.cfg.Full {
		els, err := d.Elements()
		if err != nil {
			return nat.AdoptStats{}, err
		}
		now := time.Now()
		for _, el := range els {
			exps = append(exps, nat.KernelExpectation{Peer: el.Peer, Public: el.Public, Target: el.Target, Expires: now.Add(el.Expires)})
		}
	}
	st := eng.Adopt(flows, exps, time.Now())
	held := holdDataConnections(eng, dump)
	if d != nil {
		if _, err := d.Sync(eng); err != nil {
			return st, err
		}
	}
	log.Info("crash-only: table rebuilt from the kernel's conntrack entries", "entries", len(dump), "natalg_entries", len(flows),
		"flows", st.Flows, "ftp_control", st.FTP, "expectations", st.Expectations, "kernel_expectations", len(exps),
		"refreshed_ftp", st.Refreshed, "skipped_config", st.Misfit, "skipped_present", st.Clash, "skipped_full", st.Full, "skipped_orphan", st.Orphans,
		"skipped_labels", st.LabelsMissing, "data_ports_held", held, "took", time.Since(t0).Round(time.Microsecond))
	return st, nil
}

// kernelFlow converts a conntrack entry. The inside view nat.Adopt reads
// is the original tuple's destination and the reply tuple's destination as
// the source: the original tuple itself, for conntrack sees natalg's
// connections untranslated (natalg translates outbound packets after it,
// inbound ones before it meets them in the control connection's entry).
func kernelFlow(f *ct.Flow) nat.KernelFlow {
	o, r := f.TupleOrig, f.TupleReply
	kf := nat.KernelFlow{
		Tuple: conntrack.Tuple{Src: r.IP.DestinationAddress.Unmap(), Dst: o.IP.DestinationAddress.Unmap(),
			SrcPort: r.Proto.DestinationPort, DstPort: o.Proto.DestinationPort, Proto: ipproto.Proto(o.Proto.Protocol)},
		Mark:   f.Mark,
		Labels: f.Labels,
	}
	if f.ProtoInfo.TCP != nil {
		switch f.ProtoInfo.TCP.State {
		case ctTCPSynSent:
			kf.TCP = conntrack.TCPSynSent
		case ctTCPSynRecv, ctTCPSynSent2:
			kf.TCP = conntrack.TCPSynRecv
		case ctTCPEstablished:
			kf.TCP = conntrack.TCPEstablished
		case ctTCPFinWait:
			kf.TCP, kf.FINs = conntrack.TCPFinWait, 1
		case ctTCPCloseWait:
			kf.TCP, kf.FINs = conntrack.TCPFinWait, 2
		case ctTCPLastAck, ctTCPTimeWait:
			kf.TCP, kf.FINs = conntrack.TCPClosing, 3
		case ctTCPClose:
			kf.TCP = conntrack.TCPClosed
		default:
			kf.TCP = conntrack.TCPEstablished
		}
	}
	return kf
}
