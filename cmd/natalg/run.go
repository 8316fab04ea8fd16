package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/natalg/natalg/cmd/internal/kerneldp"
	"github.com/natalg/natalg/cmd/internal/nfq"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/promtext"
)

const defaultControl = "/run/natalg.sock"

// cmdRun implements "natalg run": the NFQUEUE daemon, and the NAT64 TUN
// datapath when --nat64-prefix and --nat64-pool are given. NFQUEUE queues
// are served when the NAT44/NAT66 flags are (--public with --inside or
// --forward); with the NAT64 flags alone natalg serves only its TUN device.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf natFlags
	nf.register(fs)
	fs.String("config", "", "file of settings, one flag per line: \"inside 198.18.0.0/16\"")
	queues := fs.String("queues", "0", "NFQUEUE numbers to serve: N or N-M (only with --public and --inside/--forward: with the NAT64 flags alone no queue is opened)")
	queueLen := fs.Uint("queue-len", 8192, "kernel queue length per queue")
	rcvbuf := fs.Int("rcvbuf", 32<<20, "netlink receive buffer per queue, bytes")
	gso := fs.Bool("gso", true, "receive GSO super-packets whole (NFQA_CFG_F_GSO); --gso=false has the kernel segment them first")
	metrics := fs.String("metrics", "127.0.0.1:9108", "address for Prometheus metrics (/metrics); empty: off")
	control := fs.String("control", defaultControl, "unix socket for natalg flows; empty: off")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	pprofAddr := fs.String("pprof", "", "address for Go profiling (net/http/pprof); empty: off")
	stateFile := fs.String("state", "", "file the NAT's state is saved to on SIGINT/SIGTERM and restored from on start (then removed): the exact gateway state across a planned restart, and NAT64's flows (they have no kernel conntrack entry); empty: off")
	stateInterval := fs.Duration("state-interval", 10*time.Second, "with --state: also write a snapshot this often while running, from which a start after a crash restores NAT64's plain flows (NAT44/NAT66 flows come from the kernel's conntrack entries); 0: only at a clean stop")
	datapath := fs.String("datapath", "split", "split: only FTP control connections are queued to natalg, the kernel translates every other flow and the FTP data connections; full: every packet of the NAT goes through natalg")
	enginePorts := fs.String("ports", "", "natalg's public ports MIN-MAX (default: 49152-65535 in split mode, 1024-65535 in full mode)")
	kernelPorts := fs.String("kernel-ports", "1024-49151", "split mode: the ports the kernel masquerades TCP and UDP source ports of 1024 and above into (must not overlap --ports)")
	ctMarkMask := fs.String("ct-mark-mask", fmt.Sprintf("%#08x", nat.DefaultCTMarkMask), "connection mark bits natalg owns (one run of 20 bits or more): each flow's kind and public port are stored there, so a restarted natalg rebuilds its table from the kernel (crash-only); 0: off")
	ctLabelBits := fs.Int("ct-label-bits", 128, "connection label bits natalg owns on the FTP control connections it translates: 128 stores their sequence offsets there (crash-only), 0: off")
	var n64 nat64Flags
	n64.register(fs)
	if _, err := parseWithConfig(fs, args); err != nil {
		fmt.Fprintf(stderr, "natalg run: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "natalg run: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	qs, err := parseQueues(*queues)
	if err != nil {
		fmt.Fprintf(stderr, "natalg run: --queues: %v\n", err)
		return 2
	}
	cfg, err := nf.config()
	if err != nil {
		fmt.Fprintf(stderr, "natalg run: %v\n", err)
		return 2
	}
	cfg.Log = log
	useNFQ := nf.nat44()
	if !useNFQ {
		queuesSet := false
		fs.Visit(func(f *flag.Flag) { queuesSet = queuesSet || f.Name == "queues" })
		if queuesSet {
			fmt.Fprintf(stderr, "natalg run: --queues needs --public and --inside/--forward (NAT64 alone serves no queue)\n")
			return 2
		}
		qs = nil
	}
	if err := n64.check(fs, nf.nat64()); err != nil {
		fmt.Fprintf(stderr, "natalg run: %v\n", err)
		return 2
	}
	var kcfg kerneldp.Config
	if useNFQ {
		if kcfg, err = kernelConfig(&nf, &cfg, *datapath, *enginePorts, *kernelPorts); err != nil {
			fmt.Fprintf(stderr, "natalg run: %v\n", err)
			return 2
		}
		// the inbound half of the queues, as "natalg rules" splits them
		kcfg.Inbound, _ = kerneldp.SplitQueues(qs[0], qs[len(qs)-1])
	}
	eng, err := nat.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "natalg run: %v\n", err)
		return 2
	}
	ctStore, err := parseCTStore(*ctMarkMask, *ctLabelBits)
	if err == nil {
		err = eng.SetCTStore(ctStore)
	}
	if err != nil {
		fmt.Fprintf(stderr, "natalg run: %v\n", err)
		return 2
	}
	var dp *nat64Datapath
	if nf.nat64() {
		if dp, err = setupNAT64(n64, cfg.NAT64Prefix, cfg.NAT64Pool, log); err != nil {
			fmt.Fprintf(stderr, "natalg run: %v\n", err)
			return 1
		}
		// deferred first, so it runs last: after the TUN loop stopped
		defer func() {
			if err := dp.close(); err != nil {
				log.Error("nat64 teardown", "err", err)
			}
		}()
	}
	var kdp *kerneldp.Datapath
	if useNFQ {
		// Before the queues open: the table marks what is queued.
		if kdp, err = kerneldp.Open(kcfg, log); err != nil {
			fmt.Fprintf(stderr, "natalg run: %v\n", err)
			return 1
		}
		defer func() {
			if err := kdp.Close(false); err != nil {
				log.Error("kernel datapath close", "err", err)
			}
		}()
		if !kcfg.Full {
			eng.SetExpectationSink(kdp)
		}
		kdp.KeepExpectations = ctStore.MarkMask != 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var st nfq.Stats
	var wg sync.WaitGroup
	if *metrics != "" {
		ln, err := net.Listen("tcp", *metrics)
		if err != nil {
			fmt.Fprintf(stderr, "natalg run: metrics: %v\n", err)
			return 1
		}
		h := metricsHandler(eng, &st, qs)
		if dp != nil {
			h = withMetrics(h, dp.writeMetrics)
		}
		if kdp != nil && !kcfg.Full {
			h = withMetrics(h, kdp.WriteMetrics)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		wg.Add(1)
		go func() { defer wg.Done(); srv.Serve(ln) }()
		go func() { <-ctx.Done(); srv.Close() }()
	}
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			fmt.Fprintf(stderr, "natalg run: pprof: %v\n", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		go func() { <-ctx.Done(); srv.Close() }()
	}
	if *control != "" {
		ln, err := listenControl(*control)
		if err != nil {
			fmt.Fprintf(stderr, "natalg run: control socket: %v\n", err)
			return 1
		}
		wg.Add(1)
		var kexp func() ([]kerneldp.Element, error)
		if kdp != nil && !kcfg.Full {
			kexp = kdp.Elements
		}
		var rebuild func() (nat.AdoptStats, error)
		if kdp != nil && ctStore.MarkMask != 0 {
			rebuild = func() (nat.AdoptStats, error) { return kerneldp.Rebuild(eng, kdp, log) }
		}
		go func() { defer wg.Done(); serveControl(ctx, ln, eng, log, kexp, rebuild) }()
		defer os.Remove(*control)
	}
	loadStateFile(eng, *stateFile, log) // after every early return, before any packet
	if kdp != nil && ctStore.MarkMask != 0 {
		// Crash-only: natalg's connections as the kernel's conntrack
		// entries hold them, and the expectations left in the kernel, each
		// adopted once (after the state file, whose fuller gateway state
		// wins for the flows it has), before any packet is translated.
		if _, err := kerneldp.Rebuild(eng, kdp, log); err != nil {
			log.Error("crash-only: table not rebuilt from the kernel; connections natalg translated before it started may stall", "err", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// SIGUSR1 (keepalived's notify "became master"): adopt the
			// connections conntrackd synced to this router.
			usr := make(chan os.Signal, 1)
			signal.Notify(usr, syscall.SIGUSR1)
			defer signal.Stop(usr)
			for {
				select {
				case <-ctx.Done():
					return
				case <-usr:
					if _, err := kerneldp.Rebuild(eng, kdp, log); err != nil {
						log.Error("crash-only: rebuild on SIGUSR1", "err", err)
					}
				}
			}
		}()
	}
	if kdp != nil && !kcfg.Full {
		// The restored control sessions' expectations, in the table Open
		// just replaced: each once.
		if n, err := kdp.Sync(eng); err != nil {
			log.Error("kernel: restored expectations not all installed", "installed", n, "err", err)
		} else if n > 0 {
			log.Info("kernel: restored expectations installed", "n", n)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := kdp.Watch(ctx, eng); err != nil {
				log.Warn("kernel: conntrack events stopped; expectations now lapse by their timeout", "err", err)
			}
		}()
	}
	if *stateFile != "" && *stateInterval > 0 && dp != nil {
		// NAT64 has no kernel conntrack entry to rebuild from: a snapshot
		// bounds what a crash loses of its flows to the interval.
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(*stateInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := writeFileAtomic(*stateFile, eng.SaveSnapshot); err != nil {
						log.Warn("state: snapshot not written", "file", *stateFile, "err", err)
					}
				}
			}
		}()
	}
	// Expiry runs beside the packet workers, one shard at a time.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if n := eng.Expire(now); n > 0 {
					log.Debug("expired flows", "n", n)
				}
			}
		}
	}()
	ready := func() {
		qv := *queues
		if !useNFQ {
			qv = "none"
		}
		args := []any{"datapath", *datapath, "queues", qv, "inside", fmt.Sprint(cfg.Inside), "public", fmt.Sprint(cfg.Public),
			"forwards", nf.forwards.String(), "gso", *gso, "metrics", *metrics, "control", *control}
		if dp != nil {
			args = append(args, "nat64_prefix", cfg.NAT64Prefix.String(), "nat64_pool", cfg.NAT64Pool.String(), "nat64_dev", dp.dev.Name())
		}
		log.Info("ready", args...)
	}
	var tunErr error
	if dp != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := eng.Serve(ctx, dp.dev, n64.batch); err != nil {
				tunErr = err
				log.Error("nat64 TUN loop", "dev", dp.dev.Name(), "err", err)
				stop()
			}
		}()
	}
	if useNFQ {
		opt := nfq.Options{Queues: qs, MaxQueueLen: uint32(*queueLen), ReadBuffer: *rcvbuf, GSO: *gso,
			StoreCT: ctStore.MarkMask != 0, Log: log}
		if !kcfg.Full {
			// split mode: control_in queues the inbound control packets at
			// the input hook; natalg sends them on from the router
			for q := uint32(kcfg.Inbound.First); q <= uint32(kcfg.Inbound.Last); q++ {
				opt.Resend = append(opt.Resend, uint16(q))
			}
			opt.ResendMark = kerneldp.MarkQueue
		}
		err = nfq.Run(ctx, eng, opt, &st, ready)
	} else {
		ready()
		<-ctx.Done()
	}
	stop()
	wg.Wait()
	if serr := saveStateFile(eng, *stateFile, log); serr != nil && err == nil {
		err = serr
	}
	if dp != nil {
		dp.logStats()
	}
	if err == nil {
		err = tunErr
	}
	if err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	s := eng.Stats.Snapshot()
	log.Info("stopped", "packets", st.Received.Load(), "accepted", st.Accepted.Load(), "dropped", st.Dropped.Load(),
		"rewrites", s.Rewrites, "flows", eng.Table().Len())
	return 0
}

// kernelConfig reads --datapath, --ports and --kernel-ports: it sets cfg's
// port range (strict in split mode, where the kernel masquerades below it)
// and returns the kernel table's configuration.
func kernelConfig(nf *natFlags, cfg *nat.Config, datapath, enginePorts, kernelPorts string) (kerneldp.Config, error) {
	k := kerneldp.Config{Inside: cfg.Inside, Public: cfg.Public, Forwards: cfg.Forwards, CtTimeouts: cfg.Conntrack.Timeouts}
	switch datapath {
	case "split":
	case "full":
		k.Full = true
	default:
		return k, fmt.Errorf("--datapath: %q is not split or full", datapath)
	}
	def := "49152-65535"
	if k.Full {
		def = "1024-65535"
	}
	if enginePorts == "" {
		enginePorts = def
	}
	var err error
	if k.EnginePorts, err = parsePortRange(enginePorts); err != nil {
		return k, fmt.Errorf("--ports: %w", err)
	}
	if k.KernelPorts, err = parsePortRange(kernelPorts); err != nil {
		return k, fmt.Errorf("--kernel-ports: %w", err)
	}
	cfg.PortMin, cfg.PortMax = k.EnginePorts[0], k.EnginePorts[1]
	if !k.Full {
		cfg.StrictPorts = true
		if !nf.noFTP {
			k.FTPPorts = nf.ftpPorts
			if len(k.FTPPorts) == 0 {
				k.FTPPorts = []uint16{21}
			}
		}
		if k.EnginePorts[0] < 1024 {
			return k, fmt.Errorf("--ports %s: natalg's range starts at 1024 or above", enginePorts)
		}
		if k.EnginePorts[0] <= k.KernelPorts[1] && k.KernelPorts[0] <= k.EnginePorts[1] {
			return k, fmt.Errorf("--ports %s and --kernel-ports %s overlap: the kernel and natalg would hand out the same public port", enginePorts, kernelPorts)
		}
	}
	return k, nil
}

// parseCTStore reads --ct-mark-mask and --ct-label-bits.
func parseCTStore(mask string, labelBits int) (nat.CTStore, error) {
	m, err := strconv.ParseUint(mask, 0, 32)
	if err != nil {
		return nat.CTStore{}, fmt.Errorf("--ct-mark-mask: %q is not a 32-bit number", mask)
	}
	s := nat.CTStore{MarkMask: uint32(m)}
	switch labelBits {
	case 0:
	case 128:
		s.Labels = s.MarkMask != 0
	default:
		return s, fmt.Errorf("--ct-label-bits: %d: natalg stores an FTP control connection's offsets in all 128 label bits (128) or not at all (0)", labelBits)
	}
	// The kernel datapath's own connection mark bits: data and control connections.
	if owned := kerneldp.CtMarkData | kerneldp.CtMarkControl; s.MarkMask&owned != 0 {
		return s, fmt.Errorf("--ct-mark-mask %#x overlaps the kernel datapath's connection marks %#x (data %#x, control %#x)", s.MarkMask, owned, kerneldp.CtMarkData, kerneldp.CtMarkControl)
	}
	if err := s.Check(); err != nil {
		return s, fmt.Errorf("--ct-mark-mask: %w", err)
	}
	return s, nil
}

// parsePortRange reads "MIN-MAX".
func parsePortRange(s string) ([2]uint16, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if !ok || err1 != nil || err2 != nil || a == 0 || b < a {
		return [2]uint16{}, fmt.Errorf("want MIN-MAX, got %q", s)
	}
	return [2]uint16{uint16(a), uint16(b)}, nil
}

// withMetrics appends more series to the /metrics page of h.
func withMetrics(h http.Handler, more func(io.Writer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == "/metrics" {
			more(w)
		}
	})
}

// parseQueues reads "N" or "N-M".
func parseQueues(s string) ([]uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad queue %q", s)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a || b-a > 63 {
			return nil, fmt.Errorf("bad queue range %q", s)
		}
	}
	var qs []uint16
	for q := a; q <= b; q++ {
		qs = append(qs, uint16(q))
	}
	return qs, nil
}

// parseWithConfig parses the flags of a config file (if --config is given
// on the command line), then the command line, which wins.
func parseWithConfig(fs *flag.FlagSet, args []string) ([]string, error) {
	// A first pass finds --config.
	probe := flag.NewFlagSet("", flag.ContinueOnError)
	probe.SetOutput(io.Discard)
	cfgPath := probe.String("config", "", "")
	for i := 0; i < len(args); i++ {
		if a := args[i]; a == "--config" || a == "-config" {
			if i+1 < len(args) {
				*cfgPath = args[i+1]
			}
		} else if v, ok := strings.CutPrefix(a, "--config="); ok {
			*cfgPath = v
		}
	}
	if *cfgPath != "" {
		fargs, err := readConfig(*cfgPath)
		if err != nil {
			return nil, err
		}
		if err := fs.Parse(fargs); err != nil {
			return nil, fmt.Errorf("%s: %w", *cfgPath, err)
		}
		if fs.NArg() > 0 {
			return nil, fmt.Errorf("%s: unexpected %q", *cfgPath, fs.Arg(0))
		}
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, fmt.Errorf("unexpected argument %q", pos[0])
	}
	return pos, nil
}

// readConfig turns a config file into flags: each line "name value" (or a
// lone "name" for a switch), "#" starts a comment.
func readConfig(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var args []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		switch len(fields) {
		case 0:
		case 1:
			args = append(args, "--"+fields[0])
		case 2:
			args = append(args, "--"+fields[0], fields[1])
		default:
			return nil, fmt.Errorf("%s:%d: want \"name value\"", path, n)
		}
	}
	return args, sc.Err()
}

// The command's metric families: the flow table, the NFQUEUE front end,
// the kernel's queues and the Go runtime.
var (
	metricFlows            = promtext.Family{Name: "natalg_flows", Type: promtext.Gauge, Help: "Flows in the table."}
	metricFlowsMax         = promtext.Family{Name: "natalg_flows_max", Type: promtext.Gauge, Help: "Flow table size."}
	metricExpectations     = promtext.Family{Name: "natalg_expectations", Type: promtext.Gauge, Help: "Pending expectations."}
	metricFlowsTotal       = promtext.Family{Name: "natalg_flows_total", Type: promtext.Counter, Help: "Flows created, expired, refused for a full table."}
	metricExpectationsTot  = promtext.Family{Name: "natalg_expectations_total", Type: promtext.Counter, Help: "Expectations by event."}
	metricNFQPackets       = promtext.Family{Name: "natalg_nfqueue_packets_total", Type: promtext.Counter, Help: "Packets seen by the NFQUEUE front end."}
	metricNFQErrors        = promtext.Family{Name: "natalg_nfqueue_errors_total", Type: promtext.Counter, Help: "Netlink errors (the reader survives them)."}
	metricCTStore          = promtext.Family{Name: "natalg_conntrack_store_total", Type: promtext.Counter, Help: "natalg's facts written into kernel conntrack entries before the packet's verdict (crash-only), and writes the kernel refused."}
	metricHeap             = promtext.Family{Name: "natalg_go_heap_bytes", Type: promtext.Gauge, Help: "Bytes of live heap objects (Go runtime)."}
	metricHeapLive         = promtext.Family{Name: "natalg_go_heap_live_bytes", Type: promtext.Gauge, Help: "Live heap after the last garbage collection (Go runtime)."}
	metricBindings         = promtext.Family{Name: "natalg_bindings", Type: promtext.Gauge, Help: "Public ports bound to inside endpoints."}
	metricSys              = promtext.Family{Name: "natalg_go_sys_bytes", Type: promtext.Gauge, Help: "Bytes obtained from the OS (Go runtime)."}
	metricGoroutines       = promtext.Family{Name: "natalg_go_goroutines", Type: promtext.Gauge, Help: "Goroutines."}
	metricKernelQueueWait  = promtext.Family{Name: "natalg_nfqueue_kernel_waiting", Type: promtext.Gauge, Help: "Packets waiting in the kernel queue."}
	metricKernelQueueDrops = promtext.Family{Name: "natalg_nfqueue_dropped_total", Type: promtext.Counter, Help: "Packets the kernel dropped for this queue, by cause."}
)

// metricsHandler serves the engine's counters, the front end's and the
// kernel's queue counters in the Prometheus text format, all through one
// promtext.Writer.
func metricsHandler(eng *nat.Engine, st *nfq.Stats, qs []uint16) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		pw := promtext.New(w)
		eng.Stats.WriteMetrics(pw)
		t := eng.Table()
		pw.Uint(metricFlows, uint64(t.Len()))
		pw.Uint(metricFlowsMax, uint64(t.Max()))
		pw.Uint(metricExpectations, uint64(t.ExpectationCount()))
		pw.Uint(metricFlowsTotal, t.Stats.FlowsCreated.Load(), "event", "created")
		pw.Uint(metricFlowsTotal, t.Stats.FlowsExpired.Load(), "event", "expired")
		pw.Uint(metricFlowsTotal, t.Stats.FlowsRejectedFull.Load(), "event", "table_full")
		for _, e := range []struct {
			name string
			v    uint64
		}{{"created", t.Stats.ExpectationsCreated.Load()}, {"used", t.Stats.ExpectationsUsed.Load()},
			{"expired", t.Stats.ExpectationsExpired.Load()}, {"evicted", t.Stats.ExpectationsEvicted.Load()},
			{"refused_full", t.Stats.ExpectationsFull.Load()}} {
			pw.Uint(metricExpectationsTot, e.v, "event", e.name)
		}
		for _, e := range []struct {
			name string
			v    uint64
		}{{"received", st.Received.Load()}, {"accepted", st.Accepted.Load()}, {"dropped", st.Dropped.Load()},
			{"truncated", st.Truncated.Load()}, {"gso", st.GSO.Load()}, {"checksum_completed", st.CsumCompleted.Load()},
			{"checksum_unverified", st.CsumUnverified.Load()}, {"resent", st.Resent.Load()}, {"ttl_expired", st.TTLExpired.Load()}} {
			pw.Uint(metricNFQPackets, e.v, "event", e.name)
		}
		pw.Uint(metricNFQErrors, st.ReadErrors.Load(), "kind", "read")
		pw.Uint(metricNFQErrors, st.VerdictErrors.Load(), "kind", "verdict")
		pw.Uint(metricNFQErrors, st.ResendErrors.Load(), "kind", "resend")
		pw.Uint(metricCTStore, st.CTStored.Load(), "result", "stored")
		pw.Uint(metricCTStore, st.CTStoreErrors.Load(), "result", "refused")
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		pw.Uint(metricHeap, ms.HeapAlloc)
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(live)
		if live[0].Value.Kind() == metrics.KindUint64 {
			pw.Uint(metricHeapLive, live[0].Value.Uint64())
		}
		pw.Uint(metricBindings, uint64(eng.Bindings()))
		pw.Uint(metricSys, ms.Sys)
		pw.Uint(metricGoroutines, uint64(runtime.NumGoroutine()))
		writeKernelQueueStats(pw, qs)
	})
	return mux
}

// writeKernelQueueStats exports /proc/net/netfilter/nfnetlink_queue: per
// queue, packets waiting, dropped because the queue was full
// (queue_dropped), and dropped because the netlink socket was full
// (user_dropped).
func writeKernelQueueStats(pw *promtext.Writer, qs []uint16) {
	b, err := os.ReadFile("/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		return
	}
	mine := map[string]bool{}
	for _, q := range qs {
		mine[strconv.Itoa(int(q))] = true
	}
	pw.Declare(metricKernelQueueWait)
	pw.Declare(metricKernelQueueDrops)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || !mine[f[0]] {
			continue
		}
		pw.Sample(metricKernelQueueWait, f[2], "queue", f[0])
		pw.Sample(metricKernelQueueDrops, f[5], "queue", f[0], "cause", "queue_full")
		pw.Sample(metricKernelQueueDrops, f[6], "queue", f[0], "cause", "socket_full")
	}
}
