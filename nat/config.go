// Package nat is natalg's translation engine: masquerade/SNAT of inside
// prefixes with endpoint-independent mapping (RFC 4787 §4.1, RFC 5382 §2),
// DNAT port forwards, hairpinning (RFC 4787 §6, RFC 5382 §7.2, RFC 6146 §3.8), ICMP query and error translation (RFC 5508), and the
// FTP application-layer gateway with sequence-number correction. It does no
// I/O: front ends (NFQUEUE, the NAT64 TUN device, pcap replay, the in-memory
// bench device) implement Device, and Engine.Serve reads batches of packets
// from them, translates them (Engine.ProcessBatch) and writes the verdicts
// back.
package nat

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"

	"github.com/natalg/natalg/alg"
	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/frag"
	"github.com/natalg/natalg/nat/ipproto"
)

// Forward is a DNAT port forward: connections of Proto to the public address
// on ports [Port, PortEnd] go to Target, at TargetPort + (port - Port). With
// TargetPort 0 the port is kept.
type Forward struct {
	Proto      ipproto.Proto
	Port       uint16
	PortEnd    uint16
	Target     netip.Addr
	TargetPort uint16
}

// splitForward splits a forward spec "PROTO:PUBLIC=TARGET" (what is its
// name in errors, form the form they show) and reads PROTO: tcp or udp.
func splitForward(s, what, form string) (proto ipproto.Proto, public, target string, err error) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok {
		return 0, "", "", fmt.Errorf("%s %q: want %s", what, s, form)
	}
	switch strings.ToLower(name) {
	case "tcp":
		proto = ipproto.TCP
	case "udp":
		proto = ipproto.UDP
	default:
		return 0, "", "", fmt.Errorf("%s %q: protocol %q is not tcp or udp", what, s, name)
	}
	public, target, ok = strings.Cut(rest, "=")
	if !ok {
		return 0, "", "", fmt.Errorf("%s %q: missing '=' before the target", what, s)
	}
	return proto, public, target, nil
}

// ParseForward parses "tcp:21=198.18.0.2:21", "tcp:8080=198.18.0.2:80",
// "udp:53=198.18.0.3" (port kept) or "tcp:40000-40999=198.18.0.2" (range,
// ports kept) or "tcp:40000-40999=198.18.0.2:50000" (range shifted). IPv6
// targets are written in brackets when a port follows: "tcp:21=[fd00::2]:21".
func ParseForward(s string) (Forward, error) {
	var f Forward
	proto, ports, target, err := splitForward(s, "forward", "PROTO:PORT[-PORT]=ADDR[:PORT]")
	if err != nil {
		return f, err
	}
	f.Proto = proto
	lo, hi, isRange := strings.Cut(ports, "-")
	p, err := parsePort(lo)
	if err != nil {
		return f, fmt.Errorf("forward %q: %w", s, err)
	}
	f.Port, f.PortEnd = p, p
	if isRange {
		if f.PortEnd, err = parsePort(hi); err != nil {
			return f, fmt.Errorf("forward %q: %w", s, err)
		}
		if f.PortEnd < f.Port {
			return f, fmt.Errorf("forward %q: port range is backwards", s)
		}
	}
	if ap, err := netip.ParseAddrPort(target); err == nil {
		f.Target, f.TargetPort = ap.Addr(), ap.Port()
		if f.TargetPort == 0 {
			return f, fmt.Errorf("forward %q: target port 0", s)
		}
	} else if a, err2 := netip.ParseAddr(strings.Trim(target, "[]")); err2 == nil {
		f.Target = a
	} else {
		return f, fmt.Errorf("forward %q: target %q is not ADDR or ADDR:PORT", s, target)
	}
	if f.Target.Zone() != "" {
		return f, fmt.Errorf("forward %q: zoned target address", s)
	}
	f.Target = f.Target.Unmap()
	if f.TargetPort != 0 && int(f.TargetPort)+int(f.PortEnd-f.Port) > 65535 {
		return f, fmt.Errorf("forward %q: target port range passes 65535", s)
	}
	return f, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

// String formats the forward as ParseForward reads it.
func (f Forward) String() string {
	ports := strconv.Itoa(int(f.Port))
	if f.PortEnd != f.Port {
		ports += "-" + strconv.Itoa(int(f.PortEnd))
	}
	t := f.Target.String()
	if f.TargetPort != 0 {
		t = netip.AddrPortFrom(f.Target, f.TargetPort).String()
	}
	return f.Proto.String() + ":" + ports + "=" + t
}

// target returns the inside endpoint for public port p, which f covers.
func (f *Forward) target(p uint16) netip.AddrPort {
	if f.TargetPort == 0 {
		return netip.AddrPortFrom(f.Target, p)
	}
	return netip.AddrPortFrom(f.Target, f.TargetPort+(p-f.Port))
}

// Filtering is a NAT's filtering behaviour (RFC 4787 §5): which packets
// from outside an endpoint-independent mapping X:x <-> X':x' lets in
// towards the inside endpoint X:x when they belong to no flow yet.
type Filtering uint8

// Filtering behaviours. The mapping is endpoint-independent in all of them
// (RFC 4787 REQ-1): only what comes in differs.
const (
	// FilterAddressDependent lets in packets from Y:any once X:x has sent
	// to Y ("Address-Dependent Filtering"). The default: RFC 4787 REQ-8
	// recommends it "If a more stringent filtering behavior is most
	// important".
	FilterAddressDependent Filtering = iota
	// FilterEndpointIndependent lets in packets from any Z:z once X:x has
	// sent to anyone ("Endpoint-Independent Filtering", recommended by
	// REQ-8 "If application transparency is most important").
	FilterEndpointIndependent
	// FilterAddressPortDependent lets in only packets from a Y:y that X:x
	// has sent to ("Address and Port-Dependent Filtering"): those belong to
	// that flow already.
	FilterAddressPortDependent
)

var filteringNames = [...]string{"adf", "eif", "apdf"}

// String returns the short name ParseFiltering reads.
func (f Filtering) String() string {
	if int(f) < len(filteringNames) {
		return filteringNames[f]
	}
	return "filtering(" + strconv.Itoa(int(f)) + ")"
}

// ParseFiltering reads "eif", "adf" or "apdf" (or the long names
// "endpoint-independent", "address-dependent",
// "address-and-port-dependent").
func ParseFiltering(s string) (Filtering, error) {
	switch strings.ToLower(s) {
	case "adf", "address-dependent":
		return FilterAddressDependent, nil
	case "eif", "endpoint-independent":
		return FilterEndpointIndependent, nil
	case "apdf", "address-and-port-dependent", "address-port-dependent":
		return FilterAddressPortDependent, nil
	}
	return 0, fmt.Errorf("filtering %q: want eif, adf or apdf", s)
}

// Forward64 is a static NAT64 binding, as Jool's "bib add" (RFC 6146 §3.1:
// a manually configured BIB entry): the IPv6 server Target is published on
// the IPv4 pool address Pool.Addr() at port Pool.Port(), where IPv4 clients
// reach it, seen by it from their RFC 6052 addresses. The IPv6 host's own
// outbound sessions from Target use the same pool address and port
// (endpoint-independent mapping, RFC 6146 §3.5.1.1). An invalid Pool
// address means the pool address the host gets anyway (paired pooling).
type Forward64 struct {
	Proto  ipproto.Proto
	Pool   netip.AddrPort
	Target netip.AddrPort
}

// ParseForward64 parses "tcp:2121=[fd00:64::2]:21" (published on the pool
// address the IPv6 host gets) or "tcp:198.19.64.1:21=[fd00:64::2]:21" (on
// that pool address); the protocol is tcp or udp.
func ParseForward64(s string) (Forward64, error) {
	var f Forward64
	proto, pub, target, err := splitForward(s, "NAT64 forward", "PROTO:[POOLADDR:]PORT=[IPV6]:PORT")
	if err != nil {
		return f, err
	}
	f.Proto = proto
	if ap, err := netip.ParseAddrPort(pub); err == nil {
		if !ap.Addr().Is4() || ap.Port() == 0 {
			return f, fmt.Errorf("NAT64 forward %q: want an IPv4 pool address and a port before '='", s)
		}
		f.Pool = ap
	} else {
		p, err := parsePort(pub)
		if err != nil {
			return f, fmt.Errorf("NAT64 forward %q: %w", s, err)
		}
		f.Pool = netip.AddrPortFrom(netip.Addr{}, p)
	}
	t, err := netip.ParseAddrPort(target)
	if err != nil || !t.Addr().Is6() || t.Addr().Is4In6() || t.Addr().Zone() != "" || t.Port() == 0 {
		return f, fmt.Errorf("NAT64 forward %q: target %q is not [IPV6]:PORT", s, target)
	}
	f.Target = t
	return f, nil
}

// String formats the forward as ParseForward64 reads it.
func (f Forward64) String() string {
	pub := strconv.Itoa(int(f.Pool.Port()))
	if f.Pool.Addr().IsValid() {
		pub = f.Pool.String()
	}
	return f.Proto.String() + ":" + pub + "=" + f.Target.String()
}

// Config is the engine's configuration.
type Config struct {
	// Inside lists the prefixes whose hosts are masqueraded. A packet from
	// an inside address is outbound.
	Inside []netip.Prefix
	// Public lists the public addresses, at most one per address family. A
	// packet to a public address is inbound.
	Public []netip.Addr
	// Forwards are the DNAT port forwards.
	Forwards []Forward
	// PortMin and PortMax bound the public ports chosen when an inside port
	// cannot be preserved (default 1024-65535).
	PortMin, PortMax uint16
	// StrictPorts keeps every public port in [PortMin, PortMax]: an inside
	// port outside the range is not preserved. Split mode sets it, so that
	// natalg's ports and the kernel's masquerade range never meet.
	StrictPorts bool
	// Expectations, when set, is told of every NAT44/NAT66 FTP expectation
	// as the engine installs and removes it (split mode: the kernel carries
	// the data connection). See ExpectationSink.
	Expectations ExpectationSink
	// FTPPorts are the FTP control ports the gateway inspects (default 21).
	FTPPorts []uint16
	// FTP is the FTP gateway's policy.
	FTP alg.Config
	// DisableFTP turns the FTP gateway off.
	DisableFTP bool
	// Conntrack configures the flow table.
	Conntrack conntrack.Config
	// NoPickup refuses to create flows from TCP segments other than SYN
	// (by default a mid-stream segment creates a flow, like the kernel's
	// nf_conntrack_tcp_loose, so connections survive a restart).
	NoPickup bool
	// Filtering is the filtering behaviour of NAT44/NAT66 mappings for UDP
	// and TCP (RFC 4787 §5 REQ-8, RFC 5382 §4.3 REQ-3): which inbound
	// packets without a flow of their own a mapping lets in. The zero value
	// is address-dependent filtering. NAT64 sessions are not affected: an
	// IPv4 host reaches an IPv6 client only through a session or an FTP
	// expectation.
	Filtering Filtering
	// NAT64Prefix turns on stateful NAT64 (RFC 6146): IPv6 packets to an
	// address in this RFC 6052 prefix (64:ff9b::/96, or a network-specific
	// prefix of length 32, 40, 48, 56, 64 or 96) are translated to IPv4
	// (RFC 7915) from an address of NAT64Pool. Invalid (zero) means off.
	NAT64Prefix netip.Prefix
	// NAT64Pool is the IPv4 pool NAT64 translates IPv6 clients to; each
	// client keeps one pool address (paired pooling, RFC 7857 §4). Packets
	// to a pool address are inbound NAT64 packets.
	NAT64Pool netip.Prefix
	// NAT64KeepMSS leaves the MSS option of translated SYNs alone. By
	// default the MSS an IPv4 host announces is lowered by 20 bytes on its
	// way to the IPv6 side (see nat64MSSDelta), so that the IPv6 peer's
	// full-sized segments still fit the IPv4 path once translated, and
	// connections do not depend on Packet Too Big delivery alone.
	NAT64KeepMSS bool
	// NAT64Forwards are the static NAT64 bindings.
	NAT64Forwards []Forward64
	// Log, when set, receives the rare events an operator must hear of
	// (RFC 6384 §12: a control session the FTP gateway tore down). The
	// engine does no other I/O.
	Log *slog.Logger
	// NAT64MTU6 is RFC 7915 §4.1's lowest-ipv6-mtu: an IPv4 packet with DF
	// clear whose translation is larger leaves as IPv6 fragments of at
	// most this size. Default 1280 (the IPv6 minimum MTU, RFC 8200 §5);
	// smaller values are refused.
	NAT64MTU6 int
	// Fragments bounds the reassembly of fragments of translated traffic
	// (RFC 4787 REQ-14, RFC 6146 §3.4): memory, datagrams per source and
	// the timeouts. Zero fields take package frag's defaults.
	Fragments frag.Config
	// NoReassembly drops every fragment of translated traffic (counted as
	// the drop reason "fragment") instead of reassembling it.
	NoReassembly bool
}

// validate checks c and fills defaults.
func (c *Config) validate() error {
	if len(c.Public) == 0 && !c.NAT64Prefix.IsValid() {
		return fmt.Errorf("nat: no public address (and no NAT64 prefix)")
	}
	if len(c.NAT64Forwards) > 0 && !c.NAT64Prefix.IsValid() {
		return fmt.Errorf("nat: NAT64 forwards without a NAT64 prefix")
	}
	var seen [2]bool
	for i, a := range c.Public {
		a = a.Unmap()
		c.Public[i] = a
		if !a.IsValid() || a.Zone() != "" {
			return fmt.Errorf("nat: bad public address %v", a)
		}
		fam := familyOf(a)
		if seen[fam] {
			return fmt.Errorf("nat: more than one public %s address", [2]string{"IPv4", "IPv6"}[fam])
		}
		seen[fam] = true
	}
	for i, p := range c.Inside {
		if !p.IsValid() {
			return fmt.Errorf("nat: bad inside prefix %v", p)
		}
		c.Inside[i] = p.Masked()
		if !seen[familyOf(p.Addr())] {
			return fmt.Errorf("nat: inside prefix %v has no public address of its family", p)
		}
	}
	for _, f := range c.Forwards {
		if !seen[familyOf(f.Target)] {
			return fmt.Errorf("nat: forward %v has no public address of its family", f)
		}
	}
	for i := range c.Forwards {
		for j := range i {
			a, b := c.Forwards[i], c.Forwards[j]
			if a.Proto == b.Proto && familyOf(a.Target) == familyOf(b.Target) && a.Port <= b.PortEnd && b.Port <= a.PortEnd {
				return fmt.Errorf("nat: forwards %v and %v overlap", a, b)
			}
		}
	}
	if c.PortMin == 0 {
		c.PortMin = 1024
	}
	if c.PortMax == 0 {
		c.PortMax = 65535
	}
	if c.PortMax < c.PortMin {
		return fmt.Errorf("nat: port range %d-%d is backwards", c.PortMin, c.PortMax)
	}
	if int(c.Filtering) >= len(filteringNames) {
		return fmt.Errorf("nat: unknown filtering behaviour %d", c.Filtering)
	}
	if c.NAT64MTU6 == 0 {
		c.NAT64MTU6 = 1280
	}
	if c.NAT64MTU6 < 1280 || c.NAT64MTU6 > 65535 {
		return fmt.Errorf("nat: NAT64 lowest IPv6 MTU %d: want 1280 to 65535 (RFC 7915 §4.1, RFC 8200 §5)", c.NAT64MTU6)
	}
	if len(c.FTPPorts) == 0 && !c.DisableFTP {
		c.FTPPorts = []uint16{21}
	}
	return nil
}

// familyOf returns 0 for IPv4, 1 for IPv6.
func familyOf(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 0
	}
	return 1
}
