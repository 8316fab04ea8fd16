package kerneldp

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	ct "github.com/ti-mo/conntrack"

	"github.com/natalg/natalg/nat/ipproto"
)

// TCP conntrack values of include/uapi/linux/netfilter/nf_conntrack_tcp.h.
const (
	tcpConntrackSynSent = 1    // TCP_CONNTRACK_SYN_SENT
	tcpFlagBeLiberal    = 0x08 // IP_CT_TCP_FLAG_BE_LIBERAL
	// ctnetlink carries a direction's flags as struct nf_ct_tcp_flags
	// {flags, mask}: ti-mo/conntrack writes the uint16 big-endian, flags
	// in the high byte.
	tcpFlagsBeLiberal = tcpFlagBeLiberal<<8 | tcpFlagBeLiberal
	// controlEntryTimeout is the entry's life until its SYN passes
	// conntrack (seconds); from then on conntrack's own TCP timeouts apply.
	controlEntryTimeout = 120
)

// ControlEntry is the conntrack entry of an FTP control connection whose
// packets natalg translates in both directions before conntrack sees them
// (one base chain for both directions, bench/README.md "one chain for both
// directions"). natalg makes it over ctnetlink while it holds the
// connection's first SYN, before it releases the translated SYN:
//
//   - the original tuple is the SYN as natalg sends it on (received
//     translated);
//   - the reply tuple is the inverse of the SYN as natalg received it,
//     which is what every packet of the other direction is once natalg has
//     translated it.
//
// The entry has no NAT status, so the kernel's NAT leaves its packets alone
// (nf_nat_setup_info makes no binding for a confirmed entry), and both
// directions' windows are tracked liberally (IP_CT_TCP_FLAG_BE_LIBERAL):
// conntrack sees the outbound sequence numbers after natalg shifted them
// and the inbound acknowledgements after natalg shifted them back, and
// natalg's multi-point ledger stays the one that adjusts them. Without the
// entry the packets of the other direction would match nothing and pass
// conntrack as INVALID.
type ControlEntry struct {
	// Received and Sent are the SYN's endpoints before and after natalg
	// translated it.
	ReceivedSrc, ReceivedDst netip.AddrPort
	SentSrc, SentDst         netip.AddrPort
	// Mark is the entry's conntrack mark (CtMarkControl and natalg's
	// stored facts).
	Mark uint32
}

func (e *ControlEntry) check() error {
	for _, ap := range []netip.AddrPort{e.ReceivedSrc, e.ReceivedDst, e.SentSrc, e.SentDst} {
		if !ap.IsValid() {
			return fmt.Errorf("kerneldp: control entry: endpoint %v", ap)
		}
	}
	is4 := e.ReceivedSrc.Addr().Is4()
	if e.ReceivedDst.Addr().Is4() != is4 || e.SentSrc.Addr().Is4() != is4 || e.SentDst.Addr().Is4() != is4 {
		return fmt.Errorf("kerneldp: control entry: %v -> %v sent as %v -> %v mixes families", e.ReceivedSrc, e.ReceivedDst, e.SentSrc, e.SentDst)
	}
	return nil
}

// flow is e as ti-mo/conntrack's Flow for IPCTNL_MSG_CT_NEW with
// NLM_F_CREATE.
func (e *ControlEntry) flow() ct.Flow {
	tuple := func(src, dst netip.AddrPort) ct.Tuple {
		return ct.Tuple{
			IP:    ct.IPTuple{SourceAddress: src.Addr().Unmap(), DestinationAddress: dst.Addr().Unmap()},
			Proto: ct.ProtoTuple{Protocol: uint8(ipproto.TCP), SourcePort: src.Port(), DestinationPort: dst.Port()},
		}
	}
	return ct.Flow{
		TupleOrig:  tuple(e.SentSrc, e.SentDst),
		TupleReply: tuple(e.ReceivedDst, e.ReceivedSrc),
		Timeout:    controlEntryTimeout,
		Mark:       e.Mark,
		ProtoInfo: ct.ProtoInfo{TCP: &ct.ProtoInfoTCP{
			State: tcpConntrackSynSent, OriginalFlags: tcpFlagsBeLiberal, ReplyFlags: tcpFlagsBeLiberal,
		}},
	}
}

// CreateControlEntry makes e in the kernel's conntrack table over c. An
// entry that exists already (a retransmitted SYN, or one an earlier natalg
// made) is left as it is.
func CreateControlEntry(c *ct.Conn, e *ControlEntry) error {
	if err := e.check(); err != nil {
		return err
	}
	err := c.Create(e.flow())
	if err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("kerneldp: create control entry %v -> %v: %w", e.SentSrc, e.SentDst, err)
	}
	return nil
}
