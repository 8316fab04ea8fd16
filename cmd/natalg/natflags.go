package main

import (
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/frag"
)

// natFlags are the translation flags every front end shares.
type natFlags struct {
	inside        prefixList
	public        addrList
	forwards      forwardList
	ftpPorts      portList
	allowLowPorts bool
	noPickup      bool
	noFTP         bool
	maxFlows      int
	timeouts      conntrack.Timeouts
	// nonconforming lets timeouts below the RFC minimums through.
	nonconforming bool
	filtering     filteringFlag
	// nat64Prefix and nat64Pool turn on stateful NAT64 (RFC 6146).
	nat64Prefix prefixFlag
	nat64Pool   prefixFlag
	// nat64KeepEPRT and nat64EPSVProbe are the RFC 6384 gateway's options.
	nat64KeepEPRT  bool
	nat64EPSVProbe bool
	// nat64MSSClamp lowers the MSS of SYNs from the IPv4 side by 20.
	nat64MSSClamp bool
	// nat64Forwards are static NAT64 bindings (RFC 6146 §3.1).
	nat64Forwards forward64List
	// nat64MTU6 is RFC 7915 §4.1's lowest-ipv6-mtu; frag* bound the
	// reassembly of fragments (RFC 4787 REQ-14, RFC 6146 §3.4).
	nat64MTU6     int
	fragTimeout4  time.Duration
	fragTimeout6  time.Duration
	fragMaxBytes  int
	fragPerSource int
	noReassembly  bool
}

func (f *natFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.inside, "inside", "inside prefix to masquerade (repeatable)")
	fs.Var(&f.public, "public", "public address, one per family (repeatable)")
	fs.Var(&f.forwards, "forward", "DNAT forward PROTO:PORT[-PORT]=ADDR[:PORT] (repeatable)")
	fs.Var(&f.ftpPorts, "ftp-port", "FTP control port (repeatable; default 21)")
	fs.BoolVar(&f.allowLowPorts, "allow-low-ports", false, "let FTP announce data ports below 1024")
	fs.BoolVar(&f.noPickup, "no-pickup", false, "TCP: only a SYN opens a flow; a mid-stream segment of a connection natalg does not know is dropped (no_pickup) instead of opening one (a router pair: until natalg rebuild has taken the connection over from the synced conntrack entry)")
	fs.BoolVar(&f.noFTP, "no-ftp", false, "turn the FTP gateway off")
	fs.IntVar(&f.maxFlows, "max-flows", conntrack.DefaultMaxFlows, "flow table size, at least 1")
	d := conntrack.DefaultTimeouts
	fs.DurationVar(&f.timeouts.TCPEstablished, "timeout-tcp-established", d.TCPEstablished, "idle timeout of established and half-closed TCP (RFC 5382 REQ-5: at least 2h4m)")
	fs.DurationVar(&f.timeouts.TCPTransitory, "timeout-tcp-transitory", d.TCPTransitory, "idle timeout of TCP being opened, closed (both FINs seen) or reset (RFC 5382 REQ-5, RFC 7857 §2.2: at least 4m)")
	fs.DurationVar(&f.timeouts.UDP, "timeout-udp", d.UDP, "idle timeout of UDP (RFC 4787 REQ-5: at least 2m)")
	fs.DurationVar(&f.timeouts.ICMP, "timeout-icmp", d.ICMP, "idle timeout of ICMP echo (RFC 5508 REQ-2: at least 60s)")
	fs.DurationVar(&f.timeouts.Expectation, "timeout-expect", d.Expectation, "how long an FTP expectation waits for its connection (RFC 6384 §12: at least 30s recommended)")
	fs.BoolVar(&f.nonconforming, "allow-nonconforming-timeouts", false, "accept --timeout-* values below their RFC minimums (for tests, or RFC 7857 §2.1's shorter partially-open timeout)")
	fs.Var(&f.filtering, "filtering", "filtering of inbound UDP and TCP through a mapping (RFC 4787 REQ-8): eif (endpoint-independent), adf (address-dependent) or apdf (address-and-port-dependent); default adf")
	f.timeouts.Other = d.Other
	fs.Var(&f.nat64Prefix, "nat64-prefix", "NAT64 (RFC 6146): translate IPv6 packets to this RFC 6052 prefix to IPv4 (needs --nat64-pool): 64:ff9b::/96 reaches global IPv4 addresses only (RFC 6052 §3.1), a network-specific prefix such as 2001:db8:64::/96 any")
	fs.Var(&f.nat64Pool, "nat64-pool", "NAT64: IPv4 pool the IPv6 clients are translated to, e.g. 198.19.64.0/24 (needs --nat64-prefix)")
	fs.BoolVar(&f.nat64KeepEPRT, "nat64-ftp-eprt", false, "NAT64 FTP gateway (RFC 6384): send an IPv6 client's EPRT |2| to the IPv4 server as EPRT |1| instead of PORT")
	fs.Var(&f.nat64Forwards, "nat64-forward", "NAT64 static binding PROTO:[POOLADDR:]PORT=[IPV6]:PORT, e.g. tcp:21=[fd00:64::2]:21: publishes an IPv6 server on a pool address (by default the one the host gets) for IPv4 clients, FTP included (repeatable)")
	fs.BoolVar(&f.nat64MSSClamp, "nat64-mss-clamp", true, "NAT64: lower the MSS option of SYNs from the IPv4 side by 20 bytes, the IPv6 header's extra size, so full-sized segments fit without relying on Packet Too Big (--nat64-mss-clamp=false leaves it)")
	fs.BoolVar(&f.nat64EPSVProbe, "nat64-ftp-epsv-probe", false, "NAT64 FTP gateway (RFC 6384 §6): learn whether the IPv4 server has EPSV (the first EPSV goes as PASV then EPSV; later ones pass when it answered 229) instead of sending every EPSV as PASV with a 229 made from its 227, the default")
	fs.IntVar(&f.nat64MTU6, "nat64-mtu6", 1280, "NAT64 (RFC 7915 §4.1): lowest IPv6 MTU; IPv4 packets with DF clear whose translation is larger leave as IPv6 fragments of at most this size (at least 1280)")
	fs.DurationVar(&f.fragTimeout4, "frag-timeout4", frag.DefaultTimeout4, "how long fragments of an IPv4 datagram wait for the rest (RFC 791: 15s; RFC 6146 §3.4: at least 2s)")
	fs.DurationVar(&f.fragTimeout6, "frag-timeout6", frag.DefaultTimeout6, "how long fragments of an IPv6 datagram wait for the rest (RFC 8200 §4.5: 60s; at least 2s)")
	fs.IntVar(&f.fragMaxBytes, "frag-max-bytes", frag.DefaultMaxBytes, "memory for fragments waiting for reassembly, all sources together (the oldest datagram is dropped past it)")
	fs.IntVar(&f.fragPerSource, "frag-max-per-source", frag.DefaultMaxPerSource, "datagrams one source address may have in reassembly at once")
	fs.BoolVar(&f.noReassembly, "no-reassembly", false, "drop every fragment of translated traffic instead of reassembling it")
}

// nat44 reports whether the NAT44/NAT66 flags (--public, --inside,
// --forward) are in use.
func (f *natFlags) nat44() bool {
	return len(f.public) > 0 || len(f.inside) > 0 || len(f.forwards) > 0
}

// nat64 reports whether NAT64 is on.
func (f *natFlags) nat64() bool { return f.nat64Prefix.p.IsValid() }

// config builds the engine configuration.
func (f *natFlags) config() (nat.Config, error) {
	if f.nat64Prefix.p.IsValid() != f.nat64Pool.p.IsValid() {
		return nat.Config{}, fmt.Errorf("--nat64-prefix and --nat64-pool go together")
	}
	if f.nat64() {
		if !f.nat64Prefix.p.Addr().Is6() || !f.nat64Pool.p.Addr().Is4() {
			return nat.Config{}, fmt.Errorf("--nat64-prefix is an IPv6 prefix and --nat64-pool an IPv4 prefix")
		}
	}
	// With NAT64 alone, NAT44/NAT66 needs none of its flags; once one is
	// given, it needs the others as before.
	if !f.nat64() || f.nat44() {
		if len(f.public) == 0 {
			return nat.Config{}, fmt.Errorf("--public is required (or give only --nat64-prefix and --nat64-pool)")
		}
		if len(f.inside) == 0 && len(f.forwards) == 0 {
			return nat.Config{}, fmt.Errorf("give --inside and/or --forward: there is nothing to translate")
		}
	}
	c := nat.Config{
		Inside:     f.inside,
		Public:     f.public,
		Forwards:   f.forwards,
		FTPPorts:   f.ftpPorts,
		DisableFTP: f.noFTP,
		// the engine checks the lengths (RFC 6052 §2.2) and overlaps
		NAT64Prefix: f.nat64Prefix.p,
		NAT64Pool:   f.nat64Pool.p,
	}
	c.FTP.AllowLowPorts = f.allowLowPorts
	c.NoPickup = f.noPickup
	c.FTP.NAT64KeepEPRT = f.nat64KeepEPRT
	c.FTP.NAT64EPSVProbe = f.nat64EPSVProbe
	c.NAT64KeepMSS = !f.nat64MSSClamp
	c.Filtering = f.filtering.f
	if f.maxFlows < 1 {
		// 0 used to mean the default silently; say what is meant instead.
		return nat.Config{}, fmt.Errorf("--max-flows %d: the flow table holds at least 1 flow (the default is %d)", f.maxFlows, conntrack.DefaultMaxFlows)
	}
	if len(f.nat64Forwards) > 0 && !f.nat64() {
		return nat.Config{}, fmt.Errorf("--nat64-forward needs --nat64-prefix and --nat64-pool")
	}
	c.NAT64Forwards = f.nat64Forwards
	c.Conntrack.MaxFlows = f.maxFlows
	if err := checkTimeouts(&f.timeouts, f.nonconforming); err != nil {
		return nat.Config{}, err
	}
	c.Conntrack.Timeouts = f.timeouts
	if f.fragTimeout4 < frag.MinTimeout || f.fragTimeout6 < frag.MinTimeout {
		return nat.Config{}, fmt.Errorf("--frag-timeout4 and --frag-timeout6: at least %v (FRAGMENT_MIN, RFC 6146 §3.4)", frag.MinTimeout)
	}
	if f.fragMaxBytes < 65536 || f.fragPerSource < 1 {
		return nat.Config{}, fmt.Errorf("--frag-max-bytes at least 65536 (one datagram), --frag-max-per-source at least 1")
	}
	c.Fragments = frag.Config{Timeout4: f.fragTimeout4, Timeout6: f.fragTimeout6, MaxBytes: f.fragMaxBytes, MaxPerSource: f.fragPerSource}
	c.NoReassembly = f.noReassembly
	c.NAT64MTU6 = f.nat64MTU6 // the engine refuses less than 1280
	return c, nil
}

// timeoutMinimums are the smallest timeouts the RFCs allow, by flag.
var timeoutMinimums = []struct {
	flag string
	min  time.Duration
	get  func(*conntrack.Timeouts) time.Duration
	why  string
}{
	{"timeout-tcp-established", 2*time.Hour + 4*time.Minute, func(t *conntrack.Timeouts) time.Duration { return t.TCPEstablished },
		`RFC 5382 §5 REQ-5: the "established connection idle-timeout" MUST NOT be less than 2 hours 4 minutes`},
	{"timeout-tcp-transitory", 4 * time.Minute, func(t *conntrack.Timeouts) time.Duration { return t.TCPTransitory },
		`RFC 5382 §5 REQ-5: the "transitory connection idle-timeout" MUST NOT be less than 4 minutes`},
	{"timeout-udp", 2 * time.Minute, func(t *conntrack.Timeouts) time.Duration { return t.UDP },
		`RFC 4787 §4.3 REQ-5: a NAT UDP mapping timer MUST NOT expire in less than two minutes`},
	{"timeout-icmp", 60 * time.Second, func(t *conntrack.Timeouts) time.Duration { return t.ICMP },
		`RFC 5508 §3.2 REQ-2: an ICMP Query session timer MUST NOT expire in less than 60 seconds`},
	{"timeout-expect", 30 * time.Second, func(t *conntrack.Timeouts) time.Duration { return t.Expectation },
		`RFC 6384 §12: a timeout of at least 30 seconds is RECOMMENDED for data channel mappings waiting for initial packets`},
}

// checkTimeouts refuses a timeout that is not positive, and one below its
// RFC minimum unless nonconforming is set.
func checkTimeouts(t *conntrack.Timeouts, nonconforming bool) error {
	for _, m := range timeoutMinimums {
		v := m.get(t)
		if v <= 0 {
			return fmt.Errorf("--%s %v: timeouts must be positive", m.flag, v)
		}
		if v < m.min && !nonconforming {
			return fmt.Errorf("--%s %v is below %v (%s); pass --allow-nonconforming-timeouts to use it anyway", m.flag, v, m.min, m.why)
		}
	}
	return nil
}

// filteringFlag is --filtering.
type filteringFlag struct{ f nat.Filtering }

func (f *filteringFlag) String() string { return f.f.String() }
func (f *filteringFlag) Set(s string) error {
	v, err := nat.ParseFiltering(s)
	if err != nil {
		return err
	}
	f.f = v
	return nil
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

type prefixList []netip.Prefix

func (l *prefixList) String() string { return fmt.Sprint(*l) }
func (l *prefixList) Set(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, err2 := netip.ParseAddr(s)
		if err2 != nil {
			return fmt.Errorf("not a prefix: %q", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	*l = append(*l, p)
	return nil
}

// prefixFlag is one prefix, masked (an address alone is a host prefix).
type prefixFlag struct{ p netip.Prefix }

func (f *prefixFlag) String() string {
	if !f.p.IsValid() {
		return ""
	}
	return f.p.String()
}
func (f *prefixFlag) Set(s string) error {
	var l prefixList
	if err := l.Set(s); err != nil {
		return err
	}
	if l[0].Addr().Zone() != "" {
		return fmt.Errorf("zoned prefix %q", s)
	}
	f.p = l[0].Masked()
	return nil
}

type addrList []netip.Addr

func (l *addrList) String() string { return fmt.Sprint(*l) }
func (l *addrList) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("not an IP address: %q", s)
	}
	*l = append(*l, a)
	return nil
}

type forwardList []nat.Forward

func (l *forwardList) String() string {
	var s []string
	for _, f := range *l {
		s = append(s, f.String())
	}
	return strings.Join(s, ",")
}
func (l *forwardList) Set(s string) error {
	f, err := nat.ParseForward(s)
	if err != nil {
		return err
	}
	*l = append(*l, f)
	return nil
}

type forward64List []nat.Forward64

func (l *forward64List) String() string {
	var s []string
	for _, f := range *l {
		s = append(s, f.String())
	}
	return strings.Join(s, ",")
}
func (l *forward64List) Set(s string) error {
	f, err := nat.ParseForward64(s)
	if err != nil {
		return err
	}
	*l = append(*l, f)
	return nil
}

type portList []uint16

func (l *portList) String() string { return fmt.Sprint(*l) }
func (l *portList) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("not a port: %q", s)
	}
	*l = append(*l, uint16(n))
	return nil
}
