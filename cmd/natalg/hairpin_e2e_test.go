package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// hairpinPort is the TCP port the hairpin mode forwards, on both families,
// to the inside host (which is then client and server at once).
const hairpinPort = "8080"

// hairpinArgs are natalg run's extra flags in the natalg-hairpin mode.
func hairpinArgs(mode string) []string {
	if mode != "natalg-hairpin" {
		return nil
	}
	return []string{"--forward", "tcp:" + hairpinPort + "=" + inHost4 + ":" + hairpinPort,
		"--forward", "tcp:" + hairpinPort + "=[" + inHost6 + "]:" + hairpinPort}
}

// peerServer answers each of n connections with the peer's address and port
// as it sees them ("ADDR PORT\n").
const peerServer = `import socket, sys
host, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, ` + hairpinPort + `))
s.listen(8)
s.settimeout(60)
for _ in range(n):
    c, a = s.accept()
    c.sendall(("%s %d\n" % (a[0], a[1])).encode())
    c.close()
`

// peerClient connects from source port argv[2] to argv[1] and prints what
// the server saw.
const peerClient = `import socket, sys
host, sport = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
c = socket.socket(fam)
c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.settimeout(10)
c.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
c.connect((host, ` + hairpinPort + `))
data = b""
while not data.endswith(b"\n"):
    b = c.recv(100)
    if not b:
        break
    data += b
print(data.decode().strip())
`

// TestE2EHairpin (issue 14, item 2): through natalg run, an inside host
// reaches a forwarded inside service through the public address
// (hairpinning, RFC 4787 §6 REQ-9, RFC 5382 §7.2 REQ-8). The inside host is
// both client and forwarded server: its connection to the public address
// leaves the router back through the inside interface, and the server sees
// it coming from the public address and the client's public port ("External
// source IP address and port"); then FTP through the hairpin, passive and
// active, vsftpd inside and curl inside dialling the public address.
func TestE2EHairpin(t *testing.T) {
	e2eRequire(t)
	e2ePreclean(t)
	r := newE2EWork(t, 1<<20, 1<<20)
	r.buildNatalg(t)
	if r.natalg == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the natalg modes: " + r.natalgMissingWhy)
		}
		t.Skip(r.natalgMissingWhy)
	}
	e := newE2EEnv(t, r, "natalg-hairpin")
	hairpinned := func() float64 { return e.metrics(t)["natalg_hairpinned_flows_total"] }

	for _, c := range []struct{ name, listen, public, sport string }{
		{"tcp4", inHost4, public4, "45678"},
		{"tcp6", inHost6, public6, "45679"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := hairpinned()
			srv := startBg(t, "peer server", fmt.Sprintf("%s/peer-%s.log", e.dir, c.name), e.nsIn, "/usr/bin/python3", "-c", peerServer, c.listen, "2")
			if !waitFor(50, 100*time.Millisecond, func() bool {
				out, _ := runIn(5*time.Second, e.nsIn, "ss", "-Hltn", "sport = :"+hairpinPort)
				return srv.exited() || strings.TrimSpace(out) != ""
			}) || srv.exited() {
				t.Fatalf("peer server did not listen:\n%s", srv.output())
			}
			// Direct, for reference: the server sees the inside address.
			out, err := runIn(20*time.Second, e.nsIn, "/usr/bin/python3", "-c", peerClient, c.listen, c.sport)
			if want := c.listen + " " + c.sport; err != nil || strings.TrimSpace(out) != want {
				t.Fatalf("direct connection: %v %q, want %q", err, out, want)
			}
			// Through the public address: the server sees the public
			// address and the client's port (free, so kept).
			out, err = runIn(20*time.Second, e.nsIn, "/usr/bin/python3", "-c", peerClient, c.public, c.sport)
			if want := c.public + " " + c.sport; err != nil || strings.TrimSpace(out) != want {
				t.Fatalf("hairpinned connection: %v %q, want the server to see %q\nnatalg:\n%s", err, out, want, tail(e.daemon.output(), 20))
			}
			t.Logf("%s: through %s:%s the server saw %s", c.name, c.public, hairpinPort, strings.TrimSpace(out))
			if after := hairpinned(); after < before+1 {
				t.Fatalf("natalg_hairpinned_flows_total %v -> %v: the connection did not go through natalg", before, after)
			}
		})
	}

	t.Run("ftp", func(t *testing.T) {
		before := hairpinned()
		s := e.startFTPD(t, "vsftpd", e.nsIn, 4)
		var xs []xfer
		for _, m := range []string{"pasv", "epsv", "port", "eprt"} {
			xs = append(xs, xfer{client: "curl", mode: m, file: e.run.small}, xfer{client: "curl", mode: m, put: true, file: e.run.up})
		}
		e.transfers(t, s, e.nsIn, public4, xs)
		if t.Failed() {
			t.Logf("vsftpd log:\n%s", tail(s.serverLog(), 40))
			return
		}
		// The server saw every session from the public address.
		log := s.serverLog()
		if !strings.Contains(log, `CONNECT: Client "`+public4+`"`) || strings.Contains(log, `Client "`+inHost4+`"`) {
			t.Fatalf("vsftpd did not see the client at the public address only:\n%s", tail(log, 20))
		}
		// A control connection and a data connection per transfer.
		after := hairpinned()
		if after-before < float64(2*len(xs)) {
			t.Fatalf("natalg_hairpinned_flows_total %v -> %v, want %d more", before, after, 2*len(xs))
		}
		m := e.metrics(t)
		t.Logf("hairpinned flows %v, rewrites %v", after-before, m["natalg_alg_rewrites_total"])
	})
}
