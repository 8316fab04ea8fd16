package kerneldp

import (
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
)

// In the split datapath the kernel's conntrack times out the flows the
// kernel NATs, and Linux's defaults are shorter than the MUSTs natalg
// implements in its own engine (conntrack.Timeouts). ctTimeoutPolicies
// turns natalg's configured timeouts into the kernel's per-state policies:
//
//   - TCP: RFC 5382 §5 REQ-5: "the value of the \"established connection
//     idle-timeout\" MUST NOT be less than 2 hours 4 minutes. The value of
//     the \"transitory connection idle-timeout\" MUST NOT be less than 4
//     minutes." RFC 7857 §2 Figure 1 leaves a half-closed connection (one
//     FIN) under TCP_EST T.O. and moves it to TCP_TRANS T.O. only after both
//     FINs, so established, fin_wait and close_wait get the established
//     timeout; RFC 7857 §2.2: after a RST "the NAT SHOULD wait for 4
//     minutes before deleting the session", so close (the kernel's state
//     after RST) gets the transitory timeout, as do syn_sent, syn_recv,
//     last_ack and time_wait.
//   - UDP: RFC 4787 §4.3 REQ-5: "A NAT UDP mapping timer MUST NOT expire in
//     less than two minutes", unreplied and replied alike.
//   - ICMP: RFC 5508 §3.2 REQ-2: "An ICMP Query session timer MUST NOT
//     expire in less than 60 seconds".
type ctTimeoutPolicy struct {
	name   string
	l3     uint16 // NFPROTO_IPV4 or NFPROTO_IPV6
	nfam   int    // index in families
	l4     ipproto.Proto
	policy expr.CtStatePolicyTimeout
}

// ctICMPTimeout is the kernel's only ICMP/ICMPv6 policy attribute
// (CTA_TIMEOUT_ICMP_TIMEOUT = 1, key 0 here since the library sends key+1).
const ctICMPTimeout = 0

func seconds(d time.Duration) uint32 { return uint32((d + time.Second - 1) / time.Second) }

func ctTimeoutPolicies(to conntrack.Timeouts) []ctTimeoutPolicy {
	est, trans := seconds(to.TCPEstablished), seconds(to.TCPTransitory)
	tcp := expr.CtStatePolicyTimeout{
		expr.CtStateTCPSYNSENT: trans, expr.CtStateTCPSYNRECV: trans,
		expr.CtStateTCPESTABLISHED: est, expr.CtStateTCPFINWAIT: est, expr.CtStateTCPCLOSEWAIT: est,
		expr.CtStateTCPLASTACK: trans, expr.CtStateTCPTIMEWAIT: trans, expr.CtStateTCPCLOSE: trans,
		expr.CtStateTCPSYNSENT2: trans,
		// retrans and unack: the kernel caps an entry with retransmissions
		// or unacknowledged data at these; keep them at the established
		// timeout so an idle flow with a lost segment is not cut short.
		expr.CtStateTCPRETRANS: est, expr.CtStateTCPUNACK: est,
	}
	udp := expr.CtStatePolicyTimeout{expr.CtStateUDPUNREPLIED: seconds(to.UDP), expr.CtStateUDPREPLIED: seconds(to.UDP)}
	icmp := expr.CtStatePolicyTimeout{ctICMPTimeout: seconds(to.ICMP)}
	var out []ctTimeoutPolicy
	for i, sfx := range []string{"4", "6"} {
		l3 := uint16(families[i].nfproto)
		icmpProto := ipproto.ICMPv4
		if i == 1 {
			icmpProto = ipproto.ICMPv6
		}
		out = append(out,
			ctTimeoutPolicy{"timeout_tcp" + sfx, l3, i, ipproto.TCP, copyPolicy(tcp)},
			ctTimeoutPolicy{"timeout_udp" + sfx, l3, i, ipproto.UDP, copyPolicy(udp)},
			ctTimeoutPolicy{"timeout_icmp" + sfx, l3, i, icmpProto, copyPolicy(icmp)})
	}
	return out
}

func copyPolicy(p expr.CtStatePolicyTimeout) expr.CtStatePolicyTimeout {
	c := expr.CtStatePolicyTimeout{}
	for k, v := range p {
		c[k] = v
	}
	return c
}

// addCtTimeouts adds the timeout objects to t and one "ct timeout set" rule
// per object to chain: a prerouting chain after conntrack (-200), so the
// flow's first packet already has its entry, and before the entry is
// confirmed, which the kernel's ct timeout requires: it attaches the policy
// only to an unconfirmed entry (at priority raw it does nothing, checked
// with nft in a namespace). In split mode that is nat_pre (-100), which
// the kernel evaluates for a connection's first packet only, so the later
// packets pay nothing for it; in full mode, which has no NAT chain, a
// filter chain at priority mangle. Every flow entering the router is
// covered: inbound, outbound from the inside (its first packet arrives on
// the inside interface), the FTP data connections DNATed from the
// expectation maps (new entries), and the FTP control connections natalg
// queues (natalg's engine times those out itself with the same timeouts;
// the kernel's entry then lives as long).
//
// google/nftables v0.3.0's CtTimeout fills in its defaults from a shared
// map (and writes into it), so every TCP and UDP key is set here; for ICMP
// it also sends the TCP keys above 1, which the kernel's ICMP policy
// (one attribute) ignores.
func addCtTimeouts(cc *nftables.Conn, t *nftables.Table, to conntrack.Timeouts, chains ...*nftables.Chain) error {
	if to.TCPEstablished <= 0 || to.TCPTransitory <= 0 || to.UDP <= 0 || to.ICMP <= 0 {
		return fmt.Errorf("kerneldp: ct timeouts: every timeout must be positive: %+v", to)
	}
	for _, p := range ctTimeoutPolicies(to) {
		cc.AddObject(&nftables.NamedObj{Table: t, Name: p.name, Type: nftables.ObjTypeCtTimeout,
			Obj: &expr.CtTimeout{L3Proto: p.l3, L4Proto: uint8(p.l4), Policy: p.policy}})
		for _, chain := range chains {
			cc.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: cat(matchNFProto(&families[p.nfam]), matchL4(p.l4),
				[]expr.Any{&expr.Objref{Type: int(unix.NFT_OBJECT_CT_TIMEOUT), Name: p.name}})})
		}
	}
	return nil
}
