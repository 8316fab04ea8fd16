// Package nat is natalg's translation engine: masquerade/SNAT of inside
// prefixes with endpoint-independent mapping (RFC 4787 §4.1, RFC 5382 §2),
// DNAT port forwards, ICMP query and error translation (RFC 5508), and the
// FTP application-layer gateway with sequence-number correction. It does no
// I/O: front ends (NFQUEUE, the NAT64 TUN device, pcap replay, the in-memory
// bench device) implement Device, and Engine.Serve reads batches of packets
// from them, translates them (Engine.ProcessBatch) and writes the verdicts
// back.
package nat

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/natalg/natalg/alg"
	"github.com/natalg/natalg/conntrack"
)

// Forward is a DNAT port forward: connections of Proto to the public address
// on ports [Port, PortEnd] go to Target, at TargetPort + (port - Port). With
// TargetPort 0 the port is kept.
type Forward struct {
	Proto      uint8
	Port       uint16
	PortEnd    uint16
	Target     netip.Addr
	TargetPort uint16
}

// ParseForward parses "tcp:21=198.18.0.2:21", "tcp:8080=198.18.0.2:80",
// "udp:53=198.18.0.3" (port kept) or "tcp:40000-40999=198.18.0.2" (range,
// ports kept) or "tcp:40000-40999=198.18.0.2:50000" (range shifted). IPv6
// targets are written in brackets when a port follows: "tcp:21=[fd00::2]:21".
func ParseForward(s string) (Forward, error) {
	var f Forward
	proto, rest, ok := strings.Cut(s, ":")
	if !ok {
		return f, fmt.Errorf("forward %q: want PROTO:PORT[-PORT]=ADDR[:PORT]", s)
	}
	switch strings.ToLower(proto) {
	case "tcp":
		f.Proto = conntrack.ProtoTCP
	case "udp":
		f.Proto = conntrack.ProtoUDP
	default:
		return f, fmt.Errorf("forward %q: protocol %q is not tcp or udp", s, proto)
	}
	ports, target, ok := strings.Cut(rest, "=")
	if !ok {
		return f, fmt.Errorf("forward %q: missing '=' before the target", s)
	}
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
	return conntrack.ProtoName(f.Proto) + ":" + ports + "=" + t
}

// target returns the inside endpoint for public port p, which f covers.
func (f *Forward) target(p uint16) netip.AddrPort {
	if f.TargetPort == 0 {
		return netip.AddrPortFrom(f.Target, p)
	}
	return netip.AddrPortFrom(f.Target, f.TargetPort+(p-f.Port))
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
	// NAT64Prefix turns on stateful NAT64 (RFC 6146): IPv6 packets to an
	// address in this RFC 6052 prefix (64:ff9b::/96, or a network-specific
	// prefix of length 32, 40, 48, 56, 64 or 96) are translated to IPv4
	// (RFC 7915) from an address of NAT64Pool. Invalid (zero) means off.
	NAT64Prefix netip.Prefix
	// NAT64Pool is the IPv4 pool NAT64 translates IPv6 clients to; each
	// client keeps one pool address (paired pooling, RFC 7857 §4). Packets
	// to a pool address are inbound NAT64 packets.
	NAT64Pool netip.Prefix
}

// validate checks c and fills defaults.
func (c *Config) validate() error {
	if len(c.Public) == 0 && !c.NAT64Prefix.IsValid() {
		return fmt.Errorf("nat: no public address (and no NAT64 prefix)")
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
