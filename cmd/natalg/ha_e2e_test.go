package main

// High-availability end-to-end test (issue 16): a pair of natalg routers with
// keepalived (VRRP) and conntrackd (FTFW), configured by the files of
// testdata/ha/ as shipped (only their paths are rewritten: /etc/natalg-ha and
// /run/natalg-ha become per-router directories, /usr/local/bin/natalg the
// binary under test), so the configuration cannot rot.
//
//	                    [switch ns: br-in, br-out]
//	client 198.18.0.2 --- br-in --- lan0 [router A] wan0 --- br-out --- server 198.19.0.2
//	  gw 198.18.0.1 (VIP)  |          198.18.0.11  198.19.0.11  |         (+198.19.0.3,
//	                       +------ lan0 [router B] wan0 --------+          the wrong peer)
//	                                  198.18.0.12  198.19.0.12
//	                       sync0 198.19.254.1/30 <-> 198.19.254.2/30 (conntrackd)
//	                       VIPs: 198.18.0.1/16 on lan0, public 198.19.100.100/32 on wan0
//
// During two 64 MiB downloads (curl, passive and active, rate-limited so that
// they span both events) and a long-lived control session (haftp.py), router
// A, the master, dies: natalg, keepalived and conntrackd are killed (SIGKILL)
// and its links go down. Router B becomes master; its notify script commits
// conntrackd's copy of A's connections and has natalg take the FTP control
// connections over. The control session's next command (NOOP) and a download
// on it must work through B, and B must not open a pinhole: a PORT naming
// another host is not announced, and the expectation of a legitimate PORT
// admits the server but not another outside address. Then router A comes
// back as from a reboot (empty conntrack table, fresh daemons), fetches B's table (conntrackd's StartupResync)
// and takes the addresses back (fail back); the same checks run through A.
// The downloads must complete intact (SHA-256). The gap the client saw is
// measured from a capture on the client: the longest silence of each data
// connection around each event.
//
// Run: go test -run TestHAE2E ./cmd/natalg/ (root, keepalived and conntrackd;
// skips otherwise, except under CI, where it fails).

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	haGateway4   = "198.18.0.1" // the inside VIP, the client's default gateway
	haWrongPeer4 = "198.19.0.3" // a second outside address: not the server
	haThird4     = "198.18.0.99"
	// the server's link is shaped to this (tc tbf): the two 64 MiB downloads
	// share it, 2 MB/s each, about 34 s, and they send a steady stream
	// whose silences are the failover's (curl --limit-rate would send in
	// bursts, with pauses of its own)
	haServerRate = "32mbit"
)

// haDatapaths are the datapaths the failover runs in.
var haDatapaths = []string{"split", "full"}

// haRouterSpec is one router of the pair as the shipped configuration knows it.
type haRouterSpec struct {
	name, configID   string
	lan, wan, syncIP string
}

var haRouterSpecs = [2]haRouterSpec{
	{name: "a", configID: "natalg-a", lan: "198.18.0.11", wan: "198.19.0.11", syncIP: "198.19.254.1"},
	{name: "b", configID: "natalg-b", lan: "198.18.0.12", wan: "198.19.0.12", syncIP: "198.19.254.2"},
}

// haRouter is one running router.
type haRouter struct {
	haRouterSpec
	ns       string
	etc, run string // its /etc/natalg-ha and /run/natalg-ha
	logs     string
	boots    int
	procs    []*bgProc // conntrackd, natalg, keepalived of the current boot
}

type haEnv struct {
	r        *e2eRun
	e        *e2eEnv // the client and server side: startFTPD, transfer
	datapath string
	nsSw     string
	base     string
	routers  [2]*haRouter
}

func TestHAE2E(t *testing.T) {
	for _, tool := range []string{"keepalived", "conntrackd"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI must run the HA test: %s missing (Debian package %s; make deps)", tool, tool)
			}
			t.Skipf("needs %s (Debian package %s)", tool, tool)
		}
	}
	r := newNatalgRun(t)
	// the configuration directories of runs that crashed (e2ePreclean
	// removed their namespaces)
	stale, _ := filepath.Glob(filepath.Join("/run", e2ePrefix+"*-ha-*"))
	for _, d := range stale {
		var pid int
		if _, err := fmt.Sscanf(strings.TrimPrefix(filepath.Base(d), e2ePrefix), "%d-", &pid); err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) != nil {
			os.RemoveAll(d)
		}
	}
	for _, dp := range haDatapaths {
		t.Run(dp, func(t *testing.T) {
			h := newHAEnv(t, r, dp)
			h.failover(t)
		})
	}
}

func newHAEnv(t *testing.T, r *e2eRun, datapath string) *haEnv {
	id := fmt.Sprintf("%s%d-ha-%s", e2ePrefix, os.Getpid(), datapath)
	h := &haEnv{r: r, datapath: datapath, nsSw: id + "-sw",
		// keepalived runs the notify script only from directories no other
		// user can write to: /run, not /tmp
		base: filepath.Join("/run", id)}
	h.e = &e2eEnv{run: r, mode: "ha-" + datapath, dir: filepath.Join(r.dir, "ha-"+datapath), nsIn: id + "-cli", nsOut: id + "-srv"}
	for i, spec := range haRouterSpecs {
		h.routers[i] = &haRouter{haRouterSpec: spec, ns: id + "-r" + spec.name,
			etc: filepath.Join(h.base, spec.name, "etc"), run: filepath.Join(h.base, spec.name, "run"),
			logs: filepath.Join(h.e.dir, spec.name)}
	}
	for _, d := range []string{h.e.dir, h.routers[0].logs, h.routers[1].logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	nss := []string{h.nsSw, h.e.nsIn, h.e.nsOut, h.routers[0].ns, h.routers[1].ns}
	// registered first, so it runs after every other cleanup
	t.Cleanup(func() {
		for _, ns := range nss {
			killNetnsPids(ns)
			_, _ = runIn(10*time.Second, "", "ip", "netns", "del", ns)
		}
		if os.Getenv("NATALG_E2E_KEEP") == "" {
			os.RemoveAll(h.base)
		}
	})
	t0 := time.Now()
	for _, ns := range nss {
		mustIn(t, "", "ip", "netns", "add", ns)
		mustIn(t, ns, "ip", "link", "set", "lo", "up")
	}
	for _, br := range []string{"br-in", "br-out"} {
		// no multicast snooping: VRRP adverts go to 224.0.0.18 and must
		// reach the other router at once
		mustIn(t, h.nsSw, "ip", "link", "add", br, "type", "bridge", "mcast_snooping", "0")
		mustIn(t, h.nsSw, "ip", "link", "set", br, "up")
	}
	// veth: (namespace, name) <-> (switch port, bridge)
	plug := func(ns, dev, swPort, br string) {
		mustIn(t, "", "ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", swPort, "netns", h.nsSw)
		mustIn(t, h.nsSw, "ip", "link", "set", swPort, "master", br, "up")
		// wire-sized packets, as in the other suites
		mustIn(t, ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off")
		mustIn(t, h.nsSw, "ethtool", "-K", swPort, "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off")
	}
	plug(h.e.nsIn, "eth0", "cli", "br-in")
	plug(h.e.nsOut, "eth0", "srv", "br-out")
	for _, rt := range h.routers {
		plug(rt.ns, "lan0", rt.name+"-lan", "br-in")
		plug(rt.ns, "wan0", rt.name+"-wan", "br-out")
	}
	a, b := h.routers[0], h.routers[1]
	mustIn(t, "", "ip", "link", "add", "sync0", "netns", a.ns, "type", "veth", "peer", "name", "sync0", "netns", b.ns)
	mustIn(t, h.e.nsIn, "ip", "addr", "add", inHost4+"/16", "dev", "eth0")
	mustIn(t, h.e.nsIn, "ip", "link", "set", "eth0", "up")
	mustIn(t, h.e.nsIn, "ip", "route", "add", "default", "via", haGateway4)
	mustIn(t, h.e.nsOut, "ip", "addr", "add", outHost4+"/16", "dev", "eth0")
	mustIn(t, h.e.nsOut, "ip", "addr", "add", haWrongPeer4+"/16", "dev", "eth0")
	mustIn(t, h.e.nsOut, "ip", "link", "set", "eth0", "up")
	mustIn(t, h.e.nsOut, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", haServerRate, "burst", "32kb", "latency", "100ms")
	for _, rt := range h.routers {
		mustIn(t, rt.ns, "ip", "addr", "add", rt.lan+"/16", "dev", "lan0")
		mustIn(t, rt.ns, "ip", "addr", "add", rt.wan+"/16", "dev", "wan0")
		mustIn(t, rt.ns, "ip", "addr", "add", rt.syncIP+"/30", "dev", "sync0")
		mustIn(t, rt.ns, "ethtool", "-K", "sync0", "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off")
		for _, dev := range []string{"lan0", "wan0", "sync0"} {
			mustIn(t, rt.ns, "ip", "link", "set", dev, "up")
		}
		h.writeConfig(t, rt)
	}
	// A first: it must be master before B starts, as after a long uptime
	h.boot(t, a)
	if !h.waitMaster(t, a, 0, 15*time.Second) {
		t.Fatalf("router A did not become master within 15 s:\n%s", h.routerLogs(a))
	}
	h.boot(t, b)
	if !waitFor(100, 100*time.Millisecond, func() bool { return strings.Contains(h.notifyLog(b), "BACKUP: ok: conntrackd") }) {
		t.Fatalf("router B did not become backup within 10 s:\n%s", h.routerLogs(b))
	}
	// natalg's table is in both kernels, the backup's too: it must be there
	// before the first packet of a failover arrives
	for _, rt := range h.routers {
		out, err := runIn(10*time.Second, rt.ns, "nft", "list", "table", "inet", "natalg")
		inbound := "mark_in" // the chain that queues inbound packets
		if datapath == "split" {
			inbound = "control_in"
		}
		if err != nil || !strings.Contains(out, inbound) || (datapath == "split" && !(strings.Contains(out, "nat_post") && strings.Contains(out, "expect4"))) {
			t.Fatalf("router %s: table inet natalg missing or incomplete: %v\n%s", rt.name, err, out)
		}
	}
	t.Logf("HA pair (%s datapath) up in %v", datapath, time.Since(t0).Round(time.Millisecond))
	return h
}

// haConfigFiles are the shipped files each router gets, from testdata/ha
// (conntrackd-a.conf or -b.conf becomes conntrackd.conf).
var haConfigFiles = []string{"keepalived.conf", "conntrackd.conf", "natalg.conf", "sysctl.conf", "ha-filter.nft", "notify.sh", "router-setup.sh"}

// writeConfig copies the shipped configuration into the router's
// directories, rewriting only the paths.
func (h *haEnv) writeConfig(t *testing.T, rt *haRouter) {
	for _, d := range []string{filepath.Dir(rt.etc), rt.etc, rt.run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := filepath.Abs("../../testdata/ha")
	if err != nil {
		t.Fatal(err)
	}
	repl := strings.NewReplacer("/etc/natalg-ha", rt.etc, "/run/natalg-ha", rt.run, "/usr/local/bin/natalg", h.r.natalg)
	for _, name := range haConfigFiles {
		from := name
		if name == "conntrackd.conf" {
			from = "conntrackd-" + rt.name + ".conf"
		}
		b, err := os.ReadFile(filepath.Join(src, from))
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		writeFile(t, filepath.Join(rt.etc, name), mode, repl.Replace(string(b)))
	}
}

// boot does what the router's boot does (router-setup.sh, then conntrackd,
// natalg run, keepalived, in the order the script's comment gives).
func (h *haEnv) boot(t *testing.T, rt *haRouter) {
	t.Helper()
	rt.boots++
	mustIn(t, rt.ns, filepath.Join(rt.etc, "router-setup.sh"), rt.etc, h.r.natalg)
	logf := func(name string) string { return filepath.Join(rt.logs, fmt.Sprintf("%s-%d.log", name, rt.boots)) }
	ctd := startBg(t, "conntrackd "+rt.name, logf("conntrackd"), rt.ns, "conntrackd", "-C", filepath.Join(rt.etc, "conntrackd.conf"))
	if !waitFor(100, 50*time.Millisecond, func() bool {
		_, err := os.Stat(filepath.Join(rt.run, "conntrackd.ctl"))
		return err == nil || ctd.exited()
	}) || ctd.exited() {
		t.Fatalf("conntrackd on %s did not start:\n%s\n%s", rt.name, ctd.output(), readTail(filepath.Join(rt.run, "conntrackd.log"), 20))
	}
	nat := startBg(t, "natalg "+rt.name, logf("natalg"), rt.ns, h.r.natalg, "run", "--config", filepath.Join(rt.etc, "natalg.conf"), "--datapath", h.datapath)
	if !waitFor(100, 100*time.Millisecond, func() bool {
		return nat.exited() || strings.Contains(nat.output(), "msg=ready")
	}) || nat.exited() {
		t.Fatalf("natalg run on %s not ready within 10 s:\n%s", rt.name, tail(nat.output(), 30))
	}
	ka := startBg(t, "keepalived "+rt.name, logf("keepalived"), rt.ns, "keepalived", "--vrrp", "--dont-fork", "--log-console", "--log-detail",
		"--config-id", rt.configID, "-f", filepath.Join(rt.etc, "keepalived.conf"),
		"--pid", filepath.Join(rt.run, "keepalived.pid"), "--vrrp_pid", filepath.Join(rt.run, "keepalived-vrrp.pid"))
	rt.procs = []*bgProc{ctd, nat, ka}
}

// kill is the router's death: its daemons killed at once (SIGKILL, no
// goodbye: keepalived sends no priority-0 advert) and its links down.
func (h *haEnv) kill(t *testing.T, rt *haRouter) {
	t.Helper()
	for _, p := range rt.procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, dev := range []string{"lan0", "wan0", "sync0"} {
		mustIn(t, rt.ns, "ip", "link", "set", dev, "down")
	}
	for _, p := range rt.procs {
		if !waitFor(50, 100*time.Millisecond, p.exited) {
			t.Fatalf("%s did not die", p.name)
		}
	}
}

// reboot brings a killed router back as from a reboot: no addresses but its
// own, an empty conntrack table, an empty /run, its links up, then boot.
func (h *haEnv) reboot(t *testing.T, rt *haRouter) {
	t.Helper()
	_, _ = runIn(10*time.Second, rt.ns, "ip", "addr", "del", haGateway4+"/16", "dev", "lan0")
	_, _ = runIn(10*time.Second, rt.ns, "ip", "addr", "del", public4+"/32", "dev", "wan0")
	_, _ = runIn(10*time.Second, rt.ns, "conntrack", "-F")
	// /run is empty after a reboot: the lock file and the socket of the
	// killed conntrackd would stop the new one (the notify log is kept)
	for _, f := range []string{"conntrackd.lock", "conntrackd.ctl", "natalg.sock", "keepalived.pid", "keepalived-vrrp.pid"} {
		os.Remove(filepath.Join(rt.run, f))
	}
	for _, dev := range []string{"lan0", "wan0", "sync0"} {
		mustIn(t, rt.ns, "ip", "link", "set", dev, "up")
	}
	h.boot(t, rt)
}

func (h *haEnv) notifyLog(rt *haRouter) string {
	b, _ := os.ReadFile(filepath.Join(rt.run, "notify.log"))
	return string(b)
}

func readTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	return tail(string(b), n)
}

// masterRE is the notify script's last line on becoming master;
// rebuiltRE its line for a natalg rebuild that succeeded.
var (
	masterRE  = regexp.MustCompile(`(?m)^\S+ MASTER: done$`)
	rebuiltRE = regexp.MustCompile(`(?m)^\S+ MASTER: ok: \S*natalg rebuild .*$`)
)

// waitMaster waits until rt holds the addresses and its notify script has
// run to the end for the (seen+1)th time as master; it reports whether it did.
func (h *haEnv) waitMaster(t *testing.T, rt *haRouter, seen int, limit time.Duration) bool {
	return waitFor(int(limit/(50*time.Millisecond)), 50*time.Millisecond, func() bool {
		return len(masterRE.FindAllString(h.notifyLog(rt), -1)) > seen && h.hasVIPs(rt)
	})
}

// checkRebuilt checks that the notify script's natalg rebuild succeeded
// (its last run on rt) and took the FTP control connections over.
func (h *haEnv) checkRebuilt(t *testing.T, rt *haRouter) {
	t.Helper()
	lines := rebuiltRE.FindAllString(h.notifyLog(rt), -1)
	if len(lines) == 0 {
		t.Errorf("router %s: natalg rebuild did not succeed in the notify script:\n%s", rt.name, h.notifyLog(rt))
		return
	}
	t.Logf("router %s: %s", rt.name, lines[len(lines)-1])
	if !regexp.MustCompile(`ftp_control=[1-9]`).MatchString(lines[len(lines)-1]) {
		t.Errorf("router %s: natalg rebuild took no FTP control connection over: %s", rt.name, lines[len(lines)-1])
	}
}

func (h *haEnv) hasVIPs(rt *haRouter) bool {
	lan, _ := runIn(5*time.Second, rt.ns, "ip", "-4", "-o", "addr", "show", "dev", "lan0")
	wan, _ := runIn(5*time.Second, rt.ns, "ip", "-4", "-o", "addr", "show", "dev", "wan0")
	return strings.Contains(lan, " "+haGateway4+"/16 ") && strings.Contains(wan, " "+public4+"/32 ")
}

func (h *haEnv) routerLogs(rt *haRouter) string {
	var b strings.Builder
	for _, p := range rt.procs {
		fmt.Fprintf(&b, "--- %s (exited=%v):\n%s\n", p.name, p.exited(), tail(p.output(), 15))
	}
	fmt.Fprintf(&b, "--- conntrackd.log:\n%s\n--- notify.log:\n%s", readTail(filepath.Join(rt.run, "conntrackd.log"), 15), tail(h.notifyLog(rt), 15))
	return b.String()
}

// flows is natalg flows on rt.
func (h *haEnv) flows(t *testing.T, rt *haRouter) string {
	t.Helper()
	out, err := runIn(10*time.Second, "", h.r.natalg, "flows", "--control", filepath.Join(rt.run, "natalg.sock"))
	if err != nil {
		t.Errorf("natalg flows on %s: %v\n%s", rt.name, err, out)
	}
	return out
}

func (h *haEnv) metrics(t *testing.T, rt *haRouter) map[string]float64 {
	t.Helper()
	out, err := runIn(10*time.Second, rt.ns, "curl", "-sS", "--max-time", "5", "http://"+e2eMetricsAddr+"/metrics")
	if err != nil {
		t.Errorf("metrics on %s: %v\n%s", rt.name, err, out)
	}
	return parseMetrics(out)
}

// connectFrom reports whether the outside host, from source address src,
// can open a TCP connection to the public address at port p (2 s).
func (h *haEnv) connectFrom(src string, p int) bool {
	_, err := runIn(10*time.Second, h.e.nsOut, "/usr/bin/python3", "-c",
		"import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2, source_address=(sys.argv[3], 0)).close()",
		public4, strconv.Itoa(p), src)
	return err == nil
}

// haResult is what haftp.py prints.
type haResult map[string]any

func (h *haEnv) failover(t *testing.T) {
	a, b := h.routers[0], h.routers[1]
	r := h.r
	s := h.e.startFTPD(t, "vsftpd", h.e.nsOut, 4)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vsftpd log (tail):\n%s", tail(s.serverLog(), 20))
			for _, rt := range h.routers {
				t.Logf("router %s:\n%s", rt.name, h.routerLogs(rt))
			}
		}
	})
	// the data connections' packets as the client receives them: the gap
	capFile := filepath.Join(h.e.dir, "client-data.pcap")
	capP := startBg(t, "tcpdump client", capFile+".log", h.e.nsIn, "tcpdump", "-i", "eth0", "--immediate-mode", "-U", "-n", "-s", "96", "-w", capFile,
		"tcp and src host "+outHost4+" and not src port 21")
	if !waitFor(100, 50*time.Millisecond, func() bool { return strings.Contains(capP.output(), "listening on") }) {
		t.Fatalf("tcpdump did not start:\n%s", capP.output())
	}

	// the long-lived control session: first download through A
	pause := filepath.Join(h.e.dir, "session")
	if err := os.MkdirAll(pause, 0o755); err != nil {
		t.Fatal(err)
	}
	cl := startBg(t, "haftp.py", filepath.Join(pause, "client.log"), h.e.nsIn, "/usr/bin/python3", filepath.Join(r.scripts, "../ha/haftp.py"),
		"--host", outHost4, "--remote", "pub/small.bin", "--local", filepath.Join(pause, "got"), "--pause-dir", pause,
		"--rounds", "2", "--third-party", haThird4)
	waitPause := func(name string) {
		t.Helper()
		if !waitFor(1200, 100*time.Millisecond, func() bool {
			_, err := os.Stat(filepath.Join(pause, name))
			return err == nil || cl.exited()
		}) || cl.exited() {
			t.Fatalf("control session did not reach %s within 120 s:\n%s", name, cl.output())
		}
	}
	waitPause("ready-1")
	t.Logf("control session through A: %s", grepLines(h.flows(t, a), ":21 "))

	// the two 64 MiB downloads
	type done struct {
		name string
		err  error
		at   time.Time
	}
	results := make(chan done, 2)
	var wg sync.WaitGroup
	for _, mode := range []string{"pasv", "port"} {
		wg.Add(1)
		go func(mode string) {
			defer wg.Done()
			x := xfer{ns: h.e.nsIn, host: outHost4, client: "curl", mode: mode, file: r.big}
			err := h.e.transfer(t, s, x)
			results <- done{name: x.String(), err: err, at: time.Now()}
		}(mode)
	}
	time.Sleep(5 * time.Second)
	ext, _ := runIn(10*time.Second, b.ns, "conntrackd", "-C", filepath.Join(b.etc, "conntrackd.conf"), "-e")
	t.Logf("router B's external cache (what conntrackd synced from A) before the failover:\n%s", grepLines(ext, "dport=21"))

	// --- failover: A dies
	tKill := time.Now()
	h.kill(t, a)
	t.Logf("router A killed (natalg, keepalived, conntrackd SIGKILLed, links down) at %s", tKill.Format("15:04:05.000"))
	if !h.waitMaster(t, b, 0, 20*time.Second) {
		t.Fatalf("router B did not become master within 20 s:\n%s", h.routerLogs(b))
	}
	t.Logf("router B master and its notify script done %v after the kill:\n%s", time.Since(tKill).Round(time.Millisecond), h.notifyLog(b))
	if ct, err := runIn(10*time.Second, b.ns, "conntrack", "-L", "-p", "tcp", "--dport", "21"); err == nil {
		t.Logf("router B's FTP control entries after the commit:\n%s", ct)
	}
	h.checkRebuilt(t, b)
	t.Logf("natalg on B after the takeover:\n%s", h.flows(t, b))
	writeFile(t, filepath.Join(pause, "go-1"), 0o644, "")
	h.pinholes(t, b, cl, pause, 1)
	waitPause("ready-2")

	// --- fail back: A returns as from a reboot and preempts
	tBack := time.Now()
	h.reboot(t, a)
	if !h.waitMaster(t, a, len(masterRE.FindAllString(h.notifyLog(a), -1)), 30*time.Second) {
		t.Fatalf("router A did not take the addresses back within 30 s:\n%s\n%s", h.routerLogs(a), h.routerLogs(b))
	}
	tBackDone := time.Now()
	if !waitFor(100, 100*time.Millisecond, func() bool { return !h.hasVIPs(b) }) {
		t.Errorf("router B still holds the addresses after A took them back")
	}
	h.checkRebuilt(t, a)
	t.Logf("router A rebooted, resynced and master again %v after its boot:\n%s", tBackDone.Sub(tBack).Round(time.Millisecond), h.notifyLog(a))
	writeFile(t, filepath.Join(pause, "go-2"), 0o644, "")
	h.pinholes(t, a, cl, pause, 2)

	if !waitFor(1200, 100*time.Millisecond, cl.exited) {
		t.Fatalf("control session did not finish within 120 s:\n%s", cl.output())
	}
	var res haResult
	if err := json.Unmarshal([]byte(lastLine(cl.output())), &res); err != nil {
		t.Fatalf("haftp.py: %v (%v)\n%s", err, cl.err, cl.output())
	}
	t.Logf("control session: %v", res)
	if res["failed_at"] != nil {
		t.Errorf("control session failed at %v: %v", res["failed_at"], res["error"])
	}
	for _, get := range []string{"get1", "get2", "get3"} {
		g, _ := res[get].(map[string]any)
		if g == nil || g["sha256"] != r.small.sum || g["bytes"] != float64(r.small.size) {
			t.Errorf("%s on the control session: got %v, want %d bytes sha256 %s", get, res[get], r.small.size, r.small.sum)
		}
	}
	// what the inside listener of each round's PORT accepted: the server's
	// probe, and not the wrong peer's
	for _, k := range []string{"accepted-1", "accepted-2"} {
		if got := fmt.Sprint(res[k]); got != "["+outHost4+"]" {
			t.Errorf("%s: the PORT's inside listener accepted connections from %s, want one from the server %s", k, got, outHost4)
		}
	}
	for _, k := range []string{"noop-1", "noop-2"} {
		if v, _ := res[k].(string); !strings.HasPrefix(v, "200") {
			t.Errorf("%s on the control session after the %s: %q, want 200", k, map[string]string{"noop-1": "failover", "noop-2": "fail back"}[k], v)
		}
	}

	wg.Wait()
	close(results)
	for d := range results {
		if d.err != nil {
			t.Errorf("download across the failover and the fail back: %v", d.err)
			continue
		}
		if d.at.Before(tBackDone) {
			t.Errorf("%s finished at %s, before the fail back was done (%s): it did not span both events; lower haServerRate",
				d.name, d.at.Format("15:04:05.000"), tBackDone.Format("15:04:05.000"))
		}
	}
	_ = capP.stop(5 * time.Second)
	h.reportGaps(t, capFile, map[string]time.Time{"failover (A killed)": tKill, "fail back (A rebooted)": tBack})
}

// pinholes checks, through the router that is master (round k of
// haftp.py), that a PORT naming another host opened nothing and that the
// expectation of a legitimate PORT admits the server and no other address.
func (h *haEnv) pinholes(t *testing.T, rt *haRouter, cl *bgProc, pause string, k int) {
	t.Helper()
	ported := filepath.Join(pause, fmt.Sprintf("ported-%d", k))
	if !waitFor(1200, 100*time.Millisecond, func() bool {
		_, err := os.Stat(ported)
		return err == nil || cl.exited()
	}) || cl.exited() {
		t.Fatalf("control session did not reach port-%d within 120 s:\n%s", k, cl.output())
	}
	var p struct{ Port int }
	b, _ := os.ReadFile(ported)
	if err := json.Unmarshal(b, &p); err != nil || p.Port == 0 {
		t.Fatalf("ported-%d: %v %q", k, err, b)
	}
	flows := h.flows(t, rt)
	// the expectation of the legitimate PORT: from the server only
	expRE := regexp.MustCompile(`(?m)^expect tcp from ` + regexp.QuoteMeta(outHost4) + ` to ` + regexp.QuoteMeta(public4) + `:(\d+) -> ` +
		regexp.QuoteMeta(inHost4) + `:` + strconv.Itoa(p.Port) + ` `)
	m := expRE.FindStringSubmatch(flows)
	if m == nil {
		t.Fatalf("round %d: natalg on %s has no expectation for the PORT naming %s:%d:\n%s", k, rt.name, inHost4, p.Port, flows)
	}
	pub, _ := strconv.Atoi(m[1])
	if strings.Contains(flows, haThird4) {
		t.Errorf("round %d: natalg on %s holds something naming %s (the bounce target):\n%s", k, rt.name, haThird4, flows)
	}
	if ev := h.metrics(t, rt)[`natalg_alg_events_total{event="bounce_refused"}`]; ev < 1 {
		t.Errorf("round %d: natalg on %s counted no bounce_refused (%v): the PORT naming %s was not seen", k, rt.name, ev, haThird4)
	}
	wrong := h.connectFrom(haWrongPeer4, pub)
	right := h.connectFrom(outHost4, pub)
	t.Logf("round %d on %s: public port %d -> %s:%d; from the wrong peer %s: connected=%v; from the server: connected=%v",
		k, rt.name, pub, inHost4, p.Port, haWrongPeer4, wrong, right)
	if wrong {
		t.Errorf("round %d: the wrong peer %s reached public port %d through %s: a pinhole", k, haWrongPeer4, pub, rt.name)
	}
	if !right {
		t.Errorf("round %d: the server could not reach public port %d, its own expectation (the probe cannot see pinholes)", k, pub)
	}
	writeFile(t, filepath.Join(pause, fmt.Sprintf("probed-%d", k)), 0o644, "")
}

// reportGaps logs, for each data connection in the client's capture, the
// longest silence around each event (the failover gap the client saw), and
// fails when a connection stayed silent to the end.
func (h *haEnv) reportGaps(t *testing.T, pcap string, events map[string]time.Time) {
	t.Helper()
	out, err := runIn(60*time.Second, "", "tcpdump", "-nn", "-tt", "-r", pcap)
	if err != nil && out == "" {
		t.Errorf("tcpdump -r %s: %v", pcap, err)
		return
	}
	// "1701700000.123456 IP 198.19.0.2.20 > 198.18.0.2.45678: Flags ..."
	lineRE := regexp.MustCompile(`^(\d+\.\d+) IP \S+ > (\S+): `)
	last := map[string]float64{}
	type gap struct {
		conn       string
		from, till float64
	}
	var gaps []gap
	for _, l := range strings.Split(out, "\n") {
		m := lineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ts, _ := strconv.ParseFloat(m[1], 64)
		conn := strings.TrimSuffix(m[2], ":")
		if prev, ok := last[conn]; ok && ts-prev > 0.25 {
			gaps = append(gaps, gap{conn, prev, ts})
		}
		last[conn] = ts
	}
	names := make([]string, 0, len(events))
	for n := range events {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		at := float64(events[name].UnixNano()) / 1e9
		var parts []string
		worst := 0.0
		for _, g := range gaps {
			// a silence that spans the event (or starts within 1 s of it)
			if g.from <= at+1 && g.till >= at {
				parts = append(parts, fmt.Sprintf("%s silent %.3f s (from %+.3f s to %+.3f s)", g.conn, g.till-g.from, g.from-at, g.till-at))
				worst = max(worst, g.till-g.from)
			}
		}
		t.Logf("GAP %s: longest data-connection silence the client saw: %.3f s; %s", name, worst, strings.Join(parts, "; "))
	}
}
