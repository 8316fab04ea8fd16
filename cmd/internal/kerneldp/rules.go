// Package kerneldp is natalg's kernel datapath: the nftables table natalg run
// programs over netlink (github.com/google/nftables), the FTP expectations
// it installs there as map elements, and the conntrack events
// (github.com/ti-mo/conntrack) that tell it when one was used.
//
// In split mode (natalg run's default) the kernel translates every flow but
// FTP control connections: it masquerades the inside prefixes to the public
// addresses, DNATs the forwards that are not FTP, and DNATs the data
// connections natalg's gateway announced, through a map natalg fills before
// it releases the rewritten PORT/EPRT or 227/229. The table also queues
// the inbound FTP control packets to natalg itself (control_in, at the
// input hook: the kernel does not translate them, so they are addressed to
// the router), and marks the FTP control connections, whose outbound
// packets the rules of "natalg rules" queue. In full mode the table queues
// every inbound packet of the NAT and marks every connection of the NAT;
// the kernel translates nothing.
//
// What every packet of a kernel-translated flow costs in split mode, beyond
// what the kernel's own NAT costs, is one test of the conntrack mark in the
// forward rule of "natalg rules": one base chain, as many as the kernel's
// own FTP setup has (raw PREROUTING, where its helper is assigned). The
// inbound control packets are the only forwarded traffic that crosses
// control_in, since routing delivers them to the router. Everything else
// (the ct timeout policy, the classification of outbound control
// connections, masquerade and the mark telling it the interface, the
// expectation maps) runs in NAT chains, which the kernel evaluates for a
// connection's first packet only.
package kerneldp

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

// TableName is the nftables table (family inet) natalg run owns.
const TableName = "natalg"

// Packet and conntrack mark bits. The packet marks are shared with the xt
// rules of "natalg rules"; other users of the mark keep their bits: natalg
// only ORs its bits in and tests them under a mask.
const (
	// MarkQueue: on a packet natalg sends on from the router (split mode:
	// an inbound control packet it translated, queued by control_in;
	// nfq.Options.Resend), the mark of its socket; on a packet arriving
	// for a public address, mark_in queued it to natalg, before conntrack
	// (full mode).
	MarkQueue uint32 = 0x10000000
	// MarkOutbound: "natalg rules" sets it, in a NAT chain (the first
	// packet of a connection only), on packets leaving by the outside
	// interface: the table masquerades only them.
	MarkOutbound uint32 = 0x20000000
	// CtMarkData in a connection's conntrack mark: the kernel admitted it
	// through one of natalg's FTP expectations. A firewall accepts exactly
	// these data connections with "ct mark & 0x10000000 == 0x10000000".
	CtMarkData uint32 = 0x10000000
	// CtMarkControl in a connection's conntrack mark: natalg translates
	// the connection (an FTP control connection in split mode, every
	// connection of the NAT in full mode); the forward rule of "natalg
	// rules" queues its packets from inside to outside. Set once, at the
	// connection's first packet (split: nat_pre), so a later packet costs
	// one test of the mark; it lives as long as the entry, across natalg's
	// restarts, and travels with it to the other router of an HA pair
	// (conntrackd syncs the mark).
	CtMarkControl uint32 = 0x20000000
)

// Hook priorities of the table's chains. mark_in (full mode)
// runs after the kernel's defragmentation (-400) and before raw PREROUTING
// (-300, where the hairpin rules of "natalg rules" queue) and conntrack
// (-200); control_in (split mode) before mangle INPUT (-150) and a
// firewall's filter INPUT; mark_out (full mode) before mangle FORWARD
// (-150); nat_post after the NAT chains at srcnat (100), among them the
// one of "natalg rules" that sets MarkOutbound.
const (
	prioMarkIn    = -301
	prioControlIn = -151
	prioMarkOut   = -151
	prioNatPost   = 101
)

// Config is what the table translates.
type Config struct {
	// Full: the engine translates every packet; the table marks them all.
	Full bool
	// Inside are the prefixes masqueraded; Public one address per family.
	Inside []netip.Prefix
	Public []netip.Addr
	// Forwards are the DNAT forwards: the kernel's unless FTP.
	Forwards []nat.Forward
	// FTPPorts are the FTP control ports (empty with the gateway off).
	FTPPorts []uint16
	// EnginePorts is natalg's public port range (nat.Config PortMin and
	// PortMax, strict in split mode); KernelPorts the range the kernel
	// masquerades TCP and UDP source ports of 1024 and up into. They must
	// not overlap.
	EnginePorts, KernelPorts [2]uint16
	// Inbound are the queues control_in (split) or mark_in (full) queues
	// to (the inbound half of natalg run's --queues, SplitQueues).
	Inbound Queues
	// CtTimeouts, when set (TCPEstablished > 0), are applied to the
	// kernel's conntrack entries through ct timeout objects (addCtTimeouts).
	CtTimeouts conntrack.Timeouts
}

// isFTPForward reports whether natalg translates forward f: a TCP forward
// with an FTP port on either side (as nat.Engine attaches its gateway).
func (c *Config) isFTPForward(f nat.Forward) bool {
	if f.Proto != ipproto.TCP {
		return false
	}
	for _, p := range c.FTPPorts {
		lo, hi := targetPort(f, f.Port), targetPort(f, f.PortEnd)
		if p >= f.Port && p <= f.PortEnd || p >= lo && p <= hi {
			return true
		}
	}
	return false
}

// targetPort is the inside port forward f sends public port p to.
func targetPort(f nat.Forward, p uint16) uint16 {
	if f.TargetPort == 0 {
		return p
	}
	return f.TargetPort + (p - f.Port)
}

// check validates c.
func (c *Config) check() error {
	if c.Full {
		return nil
	}
	e, k := c.EnginePorts, c.KernelPorts
	if e[0] > e[1] || k[0] > k[1] || k[0] < 1024 {
		return fmt.Errorf("kerneldp: bad port ranges: natalg %d-%d, kernel %d-%d (the kernel's starts at 1024 or above)", e[0], e[1], k[0], k[1])
	}
	if e[0] <= k[1] && k[0] <= e[1] {
		return fmt.Errorf("kerneldp: natalg's ports %d-%d and the kernel's %d-%d overlap", e[0], e[1], k[0], k[1])
	}
	for _, f := range c.Forwards {
		if !c.isFTPForward(f) && f.TargetPort != 0 && f.PortEnd != f.Port && f.TargetPort != f.Port && int(f.PortEnd-f.Port) >= 1024 {
			return fmt.Errorf("kerneldp: forward %v shifts more than 1024 ports; use --datapath full", f)
		}
	}
	return nil
}

// family is what differs between IPv4 and IPv6 in the rules.
type family struct {
	nfproto  byte
	addrLen  uint32
	srcOff   uint32
	dstOff   uint32
	natFam   uint32
	addrType nftables.SetDatatype
	expect   string // name of the expectation map
}

var families = [2]family{
	{nfproto: unix.NFPROTO_IPV4, addrLen: 4, srcOff: 12, dstOff: 16, natFam: unix.NFPROTO_IPV4, addrType: nftables.TypeIPAddr, expect: "expect4"},
	{nfproto: unix.NFPROTO_IPV6, addrLen: 16, srcOff: 8, dstOff: 24, natFam: unix.NFPROTO_IPV6, addrType: nftables.TypeIP6Addr, expect: "expect6"},
}

func famOf(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 0
	}
	return 1
}

// Registers: nft's 16-byte NFT_REG_1 and NFT_REG_2, and the 4-byte
// NFT_REG32_01 and _02 inside NFT_REG_1 (for the IPv4 concatenations).
const (
	reg1   = 1
	reg2   = 2
	reg3   = 3
	reg32a = 9
	reg32b = 10
)

func ne32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }
func be16(v uint16) []byte { return binaryutil.BigEndian.PutUint16(v) }

// padded16 is a port as a concatenation holds it: big-endian, padded to
// four bytes.
func padded16(v uint16) []byte { b := make([]byte, 4); binary.BigEndian.PutUint16(b, v); return b }

func matchNFProto(fam *family) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{fam.nfproto}},
	}
}

func matchL4(proto ipproto.Proto) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(proto)}},
	}
}

// matchAddr matches the source (src) or destination address against p.
func matchAddr(fam *family, src bool, p netip.Prefix) []expr.Any {
	off := fam.dstOff
	if src {
		off = fam.srcOff
	}
	e := []expr.Any{&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: fam.addrLen}}
	p = p.Masked()
	if p.Bits() < p.Addr().BitLen() {
		m := make([]byte, fam.addrLen)
		for i := 0; i < p.Bits(); i++ {
			m[i/8] |= 0x80 >> (i % 8)
		}
		e = append(e, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: fam.addrLen, Mask: m, Xor: make([]byte, fam.addrLen)})
	}
	return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: p.Addr().AsSlice()})
}

// matchPort matches the source (src) or destination port in [lo, hi].
func matchPort(src bool, lo, hi uint16) []expr.Any {
	off := uint32(2)
	if src {
		off = 0
	}
	e := []expr.Any{&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}}
	if lo == hi {
		return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(lo)})
	}
	return append(e, &expr.Range{Op: expr.CmpOpEq, Register: reg1, FromData: be16(lo), ToData: be16(hi)})
}

// matchPortSet matches the source (src) or destination port against set.
func matchPortSet(src bool, set *nftables.Set) []expr.Any {
	off := uint32(2)
	if src {
		off = 0
	}
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
		&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID},
	}
}

// testMark matches packets whose mark has bit (set) or lacks it.
func testMark(bit uint32, set bool) []expr.Any {
	op := expr.CmpOpEq
	if set {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(bit), Xor: ne32(0)},
		&expr.Cmp{Op: op, Register: reg1, Data: ne32(0)},
	}
}

// testCtMark matches connections whose conntrack mark has bit.
func testCtMark(bit uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(bit), Xor: ne32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: ne32(0)},
	}
}

// setMark ORs bit into the packet's mark.
func setMark(bit uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(^bit), Xor: ne32(bit)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}
}

// setCtMark ORs bit into the connection's conntrack mark.
func setCtMark(bit uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(^bit), Xor: ne32(bit)},
		&expr.Ct{Key: expr.CtKeyMARK, SourceRegister: true, Register: reg1},
	}
}

var accept = &expr.Verdict{Kind: expr.VerdictAccept}

// ctStatusDstNAT is IPS_DST_NAT, the conntrack status bit of a connection
// whose destination was translated.
const ctStatusDstNAT uint32 = 1 << 5

// loadExpectKey loads "saddr . daddr . tcp dport", the key of the
// expectation maps.
func loadExpectKey(fam *family) []expr.Any {
	if fam.addrLen == 4 {
		return []expr.Any{
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.srcOff, Len: 4},
			&expr.Payload{DestRegister: reg32a, Base: expr.PayloadBaseNetworkHeader, Offset: fam.dstOff, Len: 4},
			&expr.Payload{DestRegister: reg32b, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		}
	}
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.srcOff, Len: 16},
		&expr.Payload{DestRegister: reg2, Base: expr.PayloadBaseNetworkHeader, Offset: fam.dstOff, Len: 16},
		&expr.Payload{DestRegister: reg3, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// objects are the table's sets and chains, made by build.
type objects struct {
	table  *nftables.Table
	expect [2]*nftables.Set
}

// build queues, on cc, the commands that replace natalg's table with one
// for cfg (not flushed: the caller adds elements and flushes it all as one
// transaction). A table from an earlier run is deleted in the same
// transaction, so the kernel never runs without one.
//
// keep are the expectation elements of the table being replaced (by
// family): they are added to the new maps in the same transaction, so an
// expectation installed by an earlier natalg (that crashed) is neither
// lost nor ever absent; Sync then adopts them.
//
// nftQueue: the kernel has nft's queue expression (else control_in and
// mark_in queue with xt's NFQUEUE target, see queueTo).
func build(cc *nftables.Conn, cfg *Config, exists bool, keep [2][]nftables.SetElement, nftQueue bool) (*objects, error) {
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	if exists {
		cc.DelTable(t)
	}
	cc.AddTable(t)
	o := &objects{table: t}
	filter := nftables.ChainTypeFilter
	rule := func(c *nftables.Chain, e ...[]expr.Any) {
		cc.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: cat(e...)})
	}
	// Connection labels: the kernel gives a new conntrack entry room for
	// labels only while some rule uses them (nf_connlabels_get, which an
	// nft "ct label set" rule takes when it is added). natalg stores FTP
	// control connections' sequence offsets there (nat.Engine.ProcessCT).
	// The rule sits in a chain no hook or rule jumps to: it never runs.
	labels := cc.AddChain(&nftables.Chain{Name: "ct_labels", Table: t})
	rule(labels, []expr.Any{&expr.Immediate{Register: 1, Data: make([]byte, 16)},
		&expr.Ct{Register: 1, SourceRegister: true, Key: expr.CtKeyLABELS}})

	if cfg.Full {
		// Every packet to a public address is queued (from any interface:
		// one from the inside is hairpinned, or accepted unchanged for the
		// router itself), and every connection from an inside prefix is
		// marked. No NAT chain: the kernel translates nothing here (a NAT
		// chain would have it bind every connection, and choose other
		// ports on a clash). The kernel's entries get natalg's
		// timeouts in a filter chain after conntrack.
		if cfg.CtTimeouts.TCPEstablished > 0 {
			timeouts := cc.AddChain(&nftables.Chain{Name: "ct_timeout", Table: t, Type: filter, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle})
			if err := addCtTimeouts(cc, t, cfg.CtTimeouts, timeouts); err != nil {
				return nil, err
			}
		}
		markIn := cc.AddChain(&nftables.Chain{Name: "mark_in", Table: t, Type: filter, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(prioMarkIn)})
		queueIn := cat(setMark(MarkQueue), queueTo(cfg.Inbound, nftQueue))
		for _, a := range cfg.Public {
			fam := &families[famOf(a)]
			rule(markIn, matchNFProto(fam), matchAddr(fam, false, netip.PrefixFrom(a, a.BitLen())), queueIn)
		}
		markOut := cc.AddChain(&nftables.Chain{Name: "mark_out", Table: t, Type: filter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(prioMarkOut)})
		for _, p := range cfg.Inside {
			fam := &families[famOf(p.Addr())]
			rule(markOut, matchNFProto(fam), matchAddr(fam, true, p), setCtMark(CtMarkControl))
		}
		return o, nil
	}

	ftpPorts := &nftables.Set{Table: t, Name: "ftp_ports", KeyType: nftables.TypeInetService}
	var elems []nftables.SetElement
	for _, p := range cfg.FTPPorts {
		elems = append(elems, nftables.SetElement{Key: be16(p)})
	}
	if err := cc.AddSet(ftpPorts, elems); err != nil {
		return nil, fmt.Errorf("kerneldp: set ftp_ports: %w", err)
	}
	for i := range families {
		fam := &families[i]
		key, err := nftables.ConcatSetType(fam.addrType, fam.addrType, nftables.TypeInetService)
		if err != nil {
			return nil, err
		}
		val, err := nftables.ConcatSetType(fam.addrType, nftables.TypeInetService)
		if err != nil {
			return nil, err
		}
		s := &nftables.Set{Table: t, Name: fam.expect, IsMap: true, HasTimeout: true, Concatenation: true, KeyType: key, DataType: val}
		if err := cc.AddSet(s, keep[i]); err != nil {
			return nil, fmt.Errorf("kerneldp: map %s: %w", fam.expect, err)
		}
		o.expect[i] = s
	}

	public := [2]netip.Addr{}
	for _, a := range cfg.Public {
		public[famOf(a)] = a.Unmap()
	}
	tcp := matchL4(ipproto.TCP)
	// Inbound FTP control packets are queued at the input hook. The kernel
	// leaves them untranslated, so they are addressed to the router (the
	// public address) and routing delivers them locally, where only the
	// router's own traffic goes: a packet of a kernel-translated flow,
	// whose destination nf_nat has rewritten by then (or which is
	// outbound), never crosses this chain. Conntrack has seen such a
	// packet untranslated and made an entry for it, which is dropped with
	// the packet: natalg drops the queued copy and sends the translated
	// packet on from the router (nfq.Options.Resend, with MarkQueue on its
	// socket), so conntrack meets it in the output path, where it finds the
	// control connection's entry (nat_out marks the entry of a new
	// connection to a forwarded FTP port). Before mangle and filter INPUT:
	// a firewall's input policy never sees these packets. Queued: to the
	// public address of their family, from an FTP port to natalg's port
	// range (the replies of outbound control connections; the kernel
	// masquerades below that range), or to a forwarded FTP port (from the
	// inside too: natalg hairpins them).
	controlIn := cc.AddChain(&nftables.Chain{Name: "control_in", Table: t, Type: filter, Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(prioControlIn)})
	rule(controlIn, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{byte(ipproto.TCP)}},
		accept,
	})
	queueIn := cat([]expr.Any{&expr.Counter{}}, queueTo(cfg.Inbound, nftQueue))
	for i, a := range public {
		if !a.IsValid() {
			continue
		}
		fam := &families[i]
		host := netip.PrefixFrom(a, a.BitLen())
		rule(controlIn, matchNFProto(fam), matchAddr(fam, false, host), matchPortSet(true, ftpPorts),
			matchPort(false, cfg.EnginePorts[0], cfg.EnginePorts[1]), queueIn)
		for _, f := range cfg.Forwards {
			if cfg.isFTPForward(f) && famOf(f.Target) == i {
				rule(controlIn, matchNFProto(fam), matchAddr(fam, false, host), matchPort(false, f.Port, f.PortEnd), queueIn)
			}
		}
	}

	// The NAT chains: the kernel evaluates them for the first packet of a
	// connection only (nf_nat_inet_fn, until the entry has its binding).
	natPre := cc.AddChain(&nftables.Chain{Name: "nat_pre", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	natPost := cc.AddChain(&nftables.Chain{Name: "nat_post", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(prioNatPost)})
	// nat_out: the output path's NAT chain, for the packets natalg sends
	// on from the router (control_in). The router's own connections are
	// left alone: the packets natalg sends carry MarkQueue
	// (nfq.Options.Resend).
	natOut := cc.AddChain(&nftables.Chain{Name: "nat_out", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	rule(natOut, testMark(MarkQueue, false), []expr.Any{accept})
	// natalg's timeouts for the entries of every connection entering the
	// router (after conntrack made the entry, before it is confirmed: see
	// addCtTimeouts), the queued ones too, and of the connections natalg
	// starts from the router (nat_out).
	if cfg.CtTimeouts.TCPEstablished > 0 {
		if err := addCtTimeouts(cc, t, cfg.CtTimeouts, natPre, natOut); err != nil {
			return nil, err
		}
	}
	// The FTP control connections natalg translates get CtMarkControl,
	// for the forward rule of "natalg rules" that queues their outbound
	// packets, and the kernel leaves them untranslated: an inside client's
	// connection to an FTP port (here), and a connection to a forwarded
	// FTP port, whose first packet natalg sends on from the router (the
	// output path: nat_out).
	control := cat(setCtMark(CtMarkControl), []expr.Any{accept})
	rule(natOut, control)
	for _, p := range cfg.Inside {
		fam := &families[famOf(p.Addr())]
		rule(natPre, tcp, matchNFProto(fam), matchAddr(fam, true, p), matchPortSet(false, ftpPorts), control)
	}
	rule(natPost, testCtMark(CtMarkControl), []expr.Any{accept})
	for i := range families {
		fam := &families[i]
		if !public[i].IsValid() {
			continue
		}
		// The data connections natalg's gateway announced: marked, then
		// translated to the announcing endpoint.
		rule(natPre, matchNFProto(fam), tcp, loadExpectKey(fam),
			[]expr.Any{&expr.Lookup{SourceRegister: reg1, SetName: fam.expect, SetID: o.expect[i].ID}}, setCtMark(CtMarkData))
		portReg := uint32(reg32a)
		if fam.addrLen == 16 {
			portReg = reg2
		}
		rule(natPre, matchNFProto(fam), tcp, loadExpectKey(fam), []expr.Any{
			&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: fam.expect, SetID: o.expect[i].ID},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam.natFam, RegAddrMin: reg1, RegProtoMin: portReg, Specified: true},
		})
	}
	// The forwards that are not FTP. From any interface: from the inside
	// they would need hairpin SNAT, which the table does not do, and fail
	// as they would without the rule.
	for _, f := range cfg.Forwards {
		if cfg.isFTPForward(f) {
			continue
		}
		i := famOf(f.Target)
		fam := &families[i]
		pub := public[i]
		head := cat(matchNFProto(fam), matchAddr(fam, false, netip.PrefixFrom(pub, pub.BitLen())), matchL4(f.Proto))
		dnat := func(lo, hi uint16, port uint16) {
			e := cat(head, matchPort(false, lo, hi), []expr.Any{&expr.Immediate{Register: reg1, Data: f.Target.AsSlice()}})
			n := &expr.NAT{Type: expr.NATTypeDestNAT, Family: fam.natFam, RegAddrMin: reg1}
			if port != 0 {
				e = append(e, &expr.Immediate{Register: reg2, Data: be16(port)})
				n.RegProtoMin, n.Specified = reg2, true
			}
			rule(natPre, append(e, n))
		}
		switch {
		case f.TargetPort == 0 || f.TargetPort == f.Port:
			dnat(f.Port, f.PortEnd, 0) // ports kept
		case f.Port == f.PortEnd:
			dnat(f.Port, f.Port, f.TargetPort)
		default:
			for p := uint32(f.Port); p <= uint32(f.PortEnd); p++ {
				dnat(uint16(p), uint16(p), targetPort(f, uint16(p)))
			}
		}
	}
	// Hairpinning (RFC 4787 §6 REQ-9, RFC 5382 §7.2 REQ-8): an inside host
	// reaching a forward through the public address. The forward's DNAT
	// sends the connection back inside; SNAT to the public address makes
	// the server answer through the router and shows it the external
	// source address (REQ-8 a). The port is the kernel's choice (the
	// client's, when free), not necessarily the client's outbound mapping.
	for _, p := range cfg.Inside {
		i := famOf(p.Addr())
		fam := &families[i]
		for _, q := range cfg.Inside {
			if famOf(q.Addr()) != i {
				continue
			}
			rule(natPost, []expr.Any{
				&expr.Ct{Key: expr.CtKeySTATUS, Register: reg1},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(ctStatusDstNAT), Xor: ne32(0)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: ne32(0)},
			}, matchNFProto(fam), matchAddr(fam, true, p), matchAddr(fam, false, q), []expr.Any{
				&expr.Immediate{Register: reg1, Data: public[i].AsSlice()},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam.natFam, RegAddrMin: reg1},
			})
		}
	}
	// Masquerade to the public address, of packets leaving by the outside
	// interface (MarkOutbound, which "natalg rules" sets in a NAT chain
	// that runs just before this one): TCP and UDP source ports from 1024
	// into the kernel's range (natalg's lies above it), lower ones and
	// other protocols as the kernel chooses (it keeps a port below 1024
	// below 1024).
	for _, p := range cfg.Inside {
		i := famOf(p.Addr())
		fam := &families[i]
		pub := public[i]
		head := cat(testMark(MarkOutbound, true), matchNFProto(fam), matchAddr(fam, true, p))
		for _, proto := range []ipproto.Proto{ipproto.TCP, ipproto.UDP} {
			rule(natPost, head, matchL4(proto), matchPort(true, 1024, 65535), []expr.Any{
				&expr.Immediate{Register: reg1, Data: pub.AsSlice()},
				&expr.Immediate{Register: reg2, Data: be16(cfg.KernelPorts[0])},
				&expr.Immediate{Register: reg3, Data: be16(cfg.KernelPorts[1])},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam.natFam, RegAddrMin: reg1, RegProtoMin: reg2, RegProtoMax: reg3, Specified: true},
			})
		}
		rule(natPost, head, []expr.Any{
			&expr.Immediate{Register: reg1, Data: pub.AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam.natFam, RegAddrMin: reg1},
		})
	}
	return o, nil
}

// expectElement is x as an element of its family's expectation map:
// {peer . public address . public port : inside address . inside port}.
func expectElement(x *conntrack.Expectation) (int, nftables.SetElement) {
	i := famOf(x.Dst)
	var key, val []byte
	key = append(key, x.Src.Unmap().AsSlice()...)
	key = append(key, x.Dst.Unmap().AsSlice()...)
	key = append(key, padded16(x.DstPort)...)
	val = append(val, x.Target.Addr().Unmap().AsSlice()...)
	val = append(val, padded16(x.Target.Port())...)
	return i, nftables.SetElement{Key: key, Val: val}
}
