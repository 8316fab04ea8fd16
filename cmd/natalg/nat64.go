package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/cmd/internal/tun"
	"github.com/natalg/natalg/nat/promtext"
)

// nat64Flags are natalg run's flags for the NAT64 datapath (the prefix and
// the pool are natFlags, shared with natalg replay).
type nat64Flags struct {
	dev   string
	mtu   int
	batch int
}

func (f *nat64Flags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dev, "nat64-dev", "nat64", "NAT64: name of the TUN device natalg creates; the routes of --nat64-prefix and --nat64-pool go through it")
	fs.IntVar(&f.mtu, "nat64-mtu", 1500, "NAT64: MTU of the TUN device (at least 1280, RFC 8200 §5)")
	fs.IntVar(&f.batch, "nat64-batch", 64, "NAT64: packets read from the TUN device per batch")
}

// check validates the flags; without NAT64 (on false) it refuses them, so
// a forgotten --nat64-prefix does not go unnoticed.
func (f *nat64Flags) check(fs *flag.FlagSet, on bool) error {
	if !on {
		var set []string
		fs.Visit(func(fl *flag.Flag) {
			if strings.HasPrefix(fl.Name, "nat64-") {
				set = append(set, "--"+fl.Name)
			}
		})
		if len(set) > 0 {
			return fmt.Errorf("%s: needs --nat64-prefix and --nat64-pool", strings.Join(set, ", "))
		}
		return nil
	}
	if f.dev == "" || len(f.dev) >= unix.IFNAMSIZ || strings.ContainsAny(f.dev, "/ \t\n:") {
		return fmt.Errorf("--nat64-dev %q: not a device name", f.dev)
	}
	if f.mtu < 1280 || f.mtu > 65535 {
		return fmt.Errorf("--nat64-mtu %d: want 1280 to 65535", f.mtu)
	}
	if f.batch < 1 || f.batch > 1024 {
		return fmt.Errorf("--nat64-batch %d: want 1 to 1024", f.batch)
	}
	return nil
}

// nat64Datapath is the NAT64 side of natalg run (RFC 6146 §3: the
// translator sits where the NAT64 prefix and the IPv4 pool are routed): a
// TUN device, up, with a route to the prefix (IPv6) and one to the pool
// (IPv4) through it. IPv6 packets to the prefix and IPv4 packets to the pool
// come out of the device into the engine; what it translates goes back in,
// for the kernel to route on.
type nat64Datapath struct {
	dev    *tun.Device
	link   netlink.Link
	routes []netlink.Route
	log    *slog.Logger
}

// setupNAT64 creates the TUN device, sets its MTU, turns off its IPv6
// link-local address (no router solicitations into the translator), brings
// it up and routes prefix and pool through it. On error it undoes what it
// did.
func setupNAT64(f nat64Flags, prefix, pool netip.Prefix, log *slog.Logger) (dp *nat64Datapath, err error) {
	dev, err := tun.Open(f.dev)
	if err != nil {
		return nil, fmt.Errorf("nat64: %w", err)
	}
	dp = &nat64Datapath{dev: dev, log: log}
	defer func() {
		if err != nil {
			if cerr := dp.close(); cerr != nil {
				log.Warn("nat64: teardown after a failed setup", "err", cerr)
			}
			dp = nil
		}
	}()
	if dp.link, err = netlink.LinkByName(dev.Name()); err != nil {
		return dp, fmt.Errorf("nat64: device %s: %w", dev.Name(), err)
	}
	if err = netlink.LinkSetMTU(dp.link, f.mtu); err != nil {
		return dp, fmt.Errorf("nat64: MTU %d on %s: %w", f.mtu, dev.Name(), err)
	}
	if err := netlink.LinkSetIP6AddrGenMode(dp.link, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
		// harmless: the device may send a router solicitation, which
		// the engine passes and the device does not write back
		log.Debug("nat64: no IPv6 address generation mode", "dev", dev.Name(), "err", err)
	}
	if err = netlink.LinkSetUp(dp.link); err != nil {
		return dp, fmt.Errorf("nat64: bringing %s up: %w", dev.Name(), err)
	}
	for _, p := range []netip.Prefix{prefix, pool} {
		r := netlink.Route{
			LinkIndex: dp.link.Attrs().Index,
			Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Scope:     netlink.SCOPE_LINK,
			Protocol:  unix.RTPROT_STATIC,
		}
		if err = netlink.RouteAdd(&r); err != nil {
			return dp, fmt.Errorf("nat64: route %v dev %s: %w (is it routed elsewhere already?)", p, dev.Name(), err)
		}
		dp.routes = append(dp.routes, r)
	}
	warnForwarding(log)
	return dp, nil
}

// warnForwarding logs when the kernel does not forward IPv4 or IPv6: the
// translated packets would then reach only the router itself.
func warnForwarding(log *slog.Logger) {
	for _, s := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if b, err := os.ReadFile(s); err == nil && strings.TrimSpace(string(b)) == "0" {
			log.Warn("nat64: the kernel does not forward: translated packets reach only this host", "sysctl", strings.TrimPrefix(s, "/proc/sys/"))
		}
	}
}

// close removes the routes and the device. Closing the descriptor alone
// would do (the device is not persistent and takes its routes along), but
// the routes go first, explicitly, so a failure shows; the device is
// checked to be gone.
func (dp *nat64Datapath) close() error {
	var errs []error
	for i := len(dp.routes) - 1; i >= 0; i-- {
		r := dp.routes[i]
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("nat64: removing route %v: %w", r.Dst, err))
		}
	}
	dp.routes = nil
	name := dp.dev.Name()
	if err := dp.dev.Close(); err != nil {
		errs = append(errs, err)
	}
	if l, err := netlink.LinkByName(name); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("nat64: removing device %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// The NAT64 TUN front end's metric families.
var (
	metricTUNPackets = promtext.Family{Name: "natalg_tun_packets_total", Type: promtext.Counter,
		Help: "Packets seen by the NAT64 TUN front end: read, written back (translated), dropped by the engine, accepted unchanged (not written back)."}
	metricTUNErrors = promtext.Family{Name: "natalg_tun_errors_total", Type: promtext.Counter,
		Help: "TUN read and write errors (the loop survives them)."}
)

// writeMetrics exports the TUN device's counters (the engine's per-verdict
// and per-reason counters cover the translation itself).
func (dp *nat64Datapath) writeMetrics(w io.Writer) {
	pw := promtext.New(w)
	s := &dp.dev.Stats
	for _, e := range []struct {
		name string
		v    uint64
	}{{"received", s.Received.Load()}, {"written", s.Written.Load()}, {"dropped", s.Dropped.Load()}, {"held", s.Held.Load()}, {"untranslated", s.Untranslated.Load()}} {
		pw.Uint(metricTUNPackets, e.v, "event", e.name)
	}
	pw.Uint(metricTUNErrors, s.ReadErrors.Load(), "kind", "read")
	pw.Uint(metricTUNErrors, s.WriteErrors.Load(), "kind", "write")
}

// logStats logs the device's counters when natalg stops.
func (dp *nat64Datapath) logStats() {
	s := &dp.dev.Stats
	dp.log.Info("nat64 stopped", "dev", dp.dev.Name(), "received", s.Received.Load(), "written", s.Written.Load(),
		"dropped", s.Dropped.Load(), "untranslated", s.Untranslated.Load(), "read_errors", s.ReadErrors.Load(), "write_errors", s.WriteErrors.Load())
}
