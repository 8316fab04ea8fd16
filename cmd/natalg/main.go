// Command natalg is a userspace NAT with an FTP application-layer gateway.
//
//	natalg replay --inside PREFIX --public ADDR [--forward SPEC] IN.pcap OUT.pcap [--expect GOLDEN.pcap]
//
// Run "natalg help" for the subcommands.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

const usage = `natalg: a userspace NAT with an FTP application-layer gateway

usage:
  natalg replay --inside PREFIX --public ADDR [--forward SPEC]... IN.pcap OUT.pcap [--expect GOLDEN.pcap]
      translate a capture as the router would, write the result, optionally
      compare it with a golden capture (exit status 1 on differences)

  natalg run --inside PREFIX --public ADDR [--forward SPEC]... [--queues N-M] [--gso]
           [--metrics ADDR] [--control PATH] [--config FILE] [--state FILE [--state-interval D]]
           [--ct-mark-mask MASK] [--ct-label-bits 128|0]
           [--nat64-prefix PREFIX --nat64-pool PREFIX [--nat64-dev NAME]]
      the router daemon: translate packets diverted by iptables NFQUEUE, and
      with --nat64-* run NAT64 on a TUN device it creates (RFC 6146, with
      the RFC 6384 FTP gateway). Crash-only: each flow's facts live in the
      kernel's conntrack entry (mark bits --ct-mark-mask, default 0x0fffff00;
      an FTP control connection's offsets in its labels), and a start
      rebuilds the table from them. --state saves the exact state at a clean
      stop (and NAT64's flows, also every --state-interval) and restores it
  natalg rules --inside-if IF --outside-if IF [--queues N-M] [--public ADDR]...
           [--apply|--remove]
      print (or install, or remove) the iptables rules natalg run needs;
      with --public, hairpinned packets (inside to a public address) too
  natalg flows [--control PATH]
      print a running daemon's flows and expectations, like conntrack -L
  natalg rebuild [--control PATH]
      have a running daemon adopt the connections the kernel's conntrack
      holds for it (keepalived's notify when the router becomes master;
      SIGUSR1 does the same)
  natalg bench --scenario NAME --flows N [--cores C] [--json]
      measure the engine from memory, no kernel in the path (see bench/README.md)

NAT flags (shared by the subcommands that translate):
  --inside PREFIX     inside prefix to masquerade (repeatable)
  --public ADDR       public address, one per address family (repeatable)
  --forward SPEC      DNAT port forward, e.g. tcp:21=198.18.0.2:21 or
                      tcp:40000-40999=198.18.0.2 (repeatable)
  --ftp-port PORT     FTP control port to inspect (repeatable; default 21)
  --allow-low-ports   let FTP announce data ports below 1024
  --no-ftp            turn the FTP gateway off
  --max-flows N       flow table size (default 1048576, at least 1)
  --filtering MODE    inbound UDP/TCP through a mapping (RFC 4787 REQ-8):
                      eif, adf (default) or apdf
  --timeout-tcp-established D, --timeout-tcp-transitory D, --timeout-udp D,
  --timeout-icmp D, --timeout-expect D
                      idle timeouts (defaults 2h4m, 4m, 5m, 60s, 5m); values
                      below the RFC minimums (2h4m, 4m, 2m, 60s, 30s) are
                      refused unless --allow-nonconforming-timeouts is given
  --nat64-prefix P    NAT64: IPv6 packets to this RFC 6052 prefix are translated
                      to IPv4 (with --nat64-pool); the well-known 64:ff9b::/96
                      reaches global IPv4 addresses only (RFC 6052 §3.1)
  --nat64-pool P      NAT64: the IPv4 pool IPv6 clients are translated to
  --nat64-forward SPEC
                      NAT64 static binding, e.g. tcp:21=[fd00:64::2]:21 or
                      tcp:198.19.64.1:2121=[fd00:64::2]:21: IPv4 clients reach
                      the IPv6 server on a pool address (repeatable)
  --nat64-ftp-eprt    NAT64 FTP: send EPRT |1| to the server instead of PORT
  --nat64-ftp-epsv-probe
                      NAT64 FTP: learn whether the server has EPSV instead of
                      sending every EPSV as PASV (229 made from 227)
  --nat64-mss-clamp=false
                      NAT64: keep the MSS of SYNs from the IPv4 side
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	switch args[0] {
	case "replay":
		return cmdReplay(args[1:], stdout, stderr, log)
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "rules":
		return cmdRules(args[1:], stdout, stderr)
	case "flows":
		return cmdFlows(args[1:], stdout, stderr)
	case "rebuild":
		return cmdRebuild(args[1:], stdout, stderr)
	case "bench":
		return cmdBench(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "natalg: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
