package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/natalg/natalg/cmd/internal/kerneldp"
	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

// listenControl opens the daemon's control socket (mode 0600: the flow
// table is for the operator).
func listenControl(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another natalg is listening", path)
	}
	os.Remove(path)
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	return ln, err
}

// serveControl answers "flows" requests until ctx is done.
// kexp, when not nil, lists the expectations as the kernel holds them
// (split mode).
func serveControl(ctx context.Context, ln net.Listener, eng *nat.Engine, log *slog.Logger, kexp func() ([]kerneldp.Element, error), rebuild func() (nat.AdoptStats, error)) {
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn("control accept", "err", err)
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			req, _ := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
			switch strings.TrimSpace(req) {
			case "flows":
				writeFlows(c, eng, time.Now())
				if kexp != nil {
					writeKernelExpectations(c, kexp)
				}
			case "rebuild":
				if rebuild == nil {
					fmt.Fprintln(c, "error: crash-only state is off (--ct-mark-mask 0, or no queues)")
					return
				}
				st, err := rebuild()
				if err != nil {
					fmt.Fprintf(c, "error: %v\n", err)
					return
				}
				fmt.Fprintf(c, "rebuilt flows=%d ftp_control=%d expectations=%d skipped_present=%d skipped_config=%d skipped_orphan=%d skipped_labels=%d refreshed_ftp=%d\n",
					st.Flows, st.FTP, st.Expectations, st.Clash, st.Misfit, st.Orphans, st.LabelsMissing, st.Refreshed)
			default:
				fmt.Fprintf(c, "error: unknown request %q\n", strings.TrimSpace(req))
			}
		}(c)
	}
}

// writeFlows prints the flow table like conntrack -L, then the pending
// expectations.
func writeFlows(w io.Writer, eng *nat.Engine, now time.Time) {
	var lines []string
	eng.Flows(func(f nat.FlowInfo) {
		lines = append(lines, formatFlow(f, now))
	})
	sort.Strings(lines)
	var exps []string
	eng.Expectations(func(x nat.ExpectationInfo) {
		exps = append(exps, fmt.Sprintf("expect %s from %s to %s -> %s timeout=%ds master=[%s]",
			x.Proto, x.Peer, x.Public, x.Target, int(x.Expires.Sub(now).Seconds()), x.Master))
	})
	sort.Strings(exps)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	for _, l := range exps {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintf(w, "# %d flows, %d expectations\n", len(lines), len(exps))
}

// writeKernelExpectations prints the elements of natalg's expectation maps
// in the kernel (split mode): what the kernel will admit and where to.
func writeKernelExpectations(w io.Writer, kexp func() ([]kerneldp.Element, error)) {
	els, err := kexp()
	if err != nil {
		fmt.Fprintf(w, "# kernel expectations: %v\n", err)
	}
	var lines []string
	for _, el := range els {
		lines = append(lines, fmt.Sprintf("kernel-expect tcp from %s to %s -> %s timeout=%ds", el.Peer, el.Public, el.Target, int(el.Expires.Seconds())))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintf(w, "# %d expectations in the kernel (table inet %s)\n", len(lines), kerneldp.TableName)
}

// formatFlow: "tcp ESTABLISHED timeout=7439 snat 198.18.0.2:40000 -> 198.19.0.2:21 => 198.19.100.100:40000 -> 198.19.0.2:21 [ftp seq_delta=+4 ack_delta=0 corrections=1/0]".
func formatFlow(f nat.FlowInfo, now time.Time) string {
	o, r := f.Orig, f.Reply
	state := f.State.String()
	if o.Proto != ipproto.TCP {
		state = "-"
	}
	// What the original direction looks like after translation: the
	// reverse of the reply tuple.
	t := r.Reverse()
	s := fmt.Sprintf("%s %s timeout=%d %s %s => %s", o.Proto, state,
		int(f.Expires.Sub(now).Seconds()), f.Kind, endpoints(o), endpoints(t))
	if f.Related {
		s += " [related]"
	}
	if f.FTP {
		s += fmt.Sprintf(" [ftp seq_delta=%+d ack_delta=%+d corrections=%d/%d", f.SeqDelta[0], f.SeqDelta[1], f.Corrections[0], f.Corrections[1])
		if f.TLS {
			s += " tls"
		}
		s += "]"
	}
	return s
}

func endpoints(t conntrack.Tuple) string {
	return fmt.Sprintf("%s -> %s", addrPort(t.Src, t.SrcPort), addrPort(t.Dst, t.DstPort))
}

func addrPort(a interface{ String() string }, p uint16) string {
	s := a.String()
	if strings.Contains(s, ":") {
		s = "[" + s + "]"
	}
	return fmt.Sprintf("%s:%d", s, p)
}

// cmdFlows implements "natalg flows": print a running daemon's flows.
func cmdFlows(args []string, stdout, stderr io.Writer) int {
	return controlRequest("flows", args, stdout, stderr)
}

// cmdRebuild implements "natalg rebuild": the daemon adopts the
// connections the kernel's conntrack holds for it that its table lacks
// (keepalived's notify script runs it when the router becomes master).
func cmdRebuild(args []string, stdout, stderr io.Writer) int {
	rc := controlRequest("rebuild", args, stdout, stderr)
	return rc
}

// controlRequest sends one request to the daemon's control socket and
// copies the answer to stdout.
func controlRequest(req string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(req, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("control", defaultControl, "the daemon's control socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := net.DialTimeout("unix", *path, 3*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "natalg %s: %v (is natalg run running with --control %s?)\n", req, err, *path)
		return 1
	}
	defer c.Close()
	// A reader that stops early (natalg flows | head) closes the pipe: the
	// output ends there, quietly and with status 0, as for a pipe that
	// took all of it. With SIGPIPE ignored, the write fails with EPIPE
	// instead of killing the command by the signal.
	signal.Ignore(syscall.SIGPIPE)
	c.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintln(c, req)
	if _, err := io.Copy(stdout, c); err != nil {
		if errors.Is(err, syscall.EPIPE) {
			return 0
		}
		fmt.Fprintf(stderr, "natalg %s: %v\n", req, err)
		return 1
	}
	return 0
}
