#!/usr/bin/python3
"""attackftp.py - hostile FTP control traffic from the inside host (natalg
security end-to-end tests, cmd/natalg/security_e2e_test.go).

  attackftp.py --host H --attack KIND [--listen ADDR:PORT ...] [--pause-dir D]
               [--pause-max 30] [--count N] [--base-port P] [--timeout 8]

Logs in anonymously, sends TYPE I, opens a listening socket on each --listen
endpoint (what a pinhole would reach: the test connects from outside and
every connection accepted here is counted), then sends the attack:

  bounce     PORT naming a third-party inside address (the first --listen)
  lowport    PORT naming this host's own address and a port below 1024
             (the first --listen)
  site-arg   "SITE x PORT h,h,h,h,p,p": the PORT text inside another
             command's argument
  mid-line   a long SITE line sent in two TCP segments (TCP_NODELAY, two
             send() calls), the second starting with "PORT h,h,h,h,p,p\\r\\n":
             PORT at the start of a segment but not of a line (NAT
             Slipstreaming)
  crlf-text  "SITE x\\\\r\\\\nPORT ...": the characters backslash-r
             backslash-n as text, then PORT, in one line
  flood      --count PORT commands naming this host's own address, ports
             --base-port, --base-port+1, ...; --batch of them in one send()
             (one segment), then their replies (default 1: one at a time)
  endless    a line that never ends: "PORT h,h,h,h,p,p" (the first --listen,
             a complete PORT that trailing white space would still leave
             valid) in a send() of its own, then --junk-bytes spaces with no
             CRLF, --junk-chunk bytes per send() every --junk-gap seconds;
             with --pause-dir, D/started is written once the PORT text is
             sent. Then it waits (at most 20 s) until the peer has
             acknowledged every byte (SIOCOUTQ 0) while the line is still
             open: a NAT that held the line would keep them; only then CRLF
             and NOOP, whose 200 shows the stream in step again

Every reply is read (bounded by --timeout per read). With --pause-dir it then
writes D/ready (the JSON so far) and waits for D/go (at most --pause-max
seconds), so the test can look at the NAT while the control connection is
open; meanwhile it accepts on the listeners. Then QUIT. Prints one JSON
object: ok, replies (first and last few), counts of 200 replies, accepted
connections per listener. Exit 0 when the attack was sent and answered.
"""
import argparse
import fcntl
import json
import os
import select
import socket
import struct
import sys
import termios
import time


class Ctl:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            b = self.s.recv(4096)
            if not b:
                raise EOFError("control connection closed")
            self.buf += b
        i = self.buf.index(b"\n") + 1
        ln, self.buf = self.buf[:i], self.buf[i:]
        return ln.decode("latin-1").rstrip("\r\n")

    def reply(self):
        first = self.line()
        if len(first) >= 4 and first[3] == "-":
            code = first[:3]
            while True:
                ln = self.line()
                if ln.startswith(code + " "):
                    return ln
        return first

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.reply()


def port_arg(addr, port):
    return "%s,%d,%d" % (addr.replace(".", ","), port >> 8, port & 0xFF)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--attack", required=True,
                    choices=("bounce", "lowport", "site-arg", "mid-line", "crlf-text", "flood", "endless"))
    ap.add_argument("--listen", action="append", default=[])
    ap.add_argument("--pause-dir")
    ap.add_argument("--pause-max", type=float, default=30.0)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--base-port", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=8.0)
    ap.add_argument("--junk-bytes", type=int, default=200000)
    ap.add_argument("--junk-chunk", type=int, default=100)
    ap.add_argument("--junk-gap", type=float, default=0.002)
    a = ap.parse_args()
    if a.count < 1 or a.count > 20000 or a.batch < 1 or a.batch > 60:
        sys.exit("--count (1-20000) or --batch (1-60) out of range")
    if not (0 < a.junk_bytes <= 1 << 20 and 0 < a.junk_chunk <= 1400 and 0 <= a.junk_gap <= 0.1):
        sys.exit("--junk-bytes (1-1 MiB), --junk-chunk (1-1400) or --junk-gap (0-0.1) out of range")

    out = {"ok": False, "attack": a.attack, "replies": [], "ok_replies": 0}
    t0 = time.monotonic()
    listeners = []
    accepted = {}
    for ep in a.listen:
        host, p = ep.rsplit(":", 1)
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, int(p)))
        ls.listen(8)
        ls.setblocking(False)
        listeners.append((ep, ls))
        accepted[ep] = 0

    def accept_some():
        for ep, ls in listeners:
            try:
                while True:
                    c, _ = ls.accept()
                    accepted[ep] += 1
                    c.close()
            except BlockingIOError:
                pass

    s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = Ctl(s)
    me = s.getsockname()[0]
    replies = []
    try:
        r = c.reply()
        if not r.startswith("220"):
            raise RuntimeError("banner: " + r)
        r = c.cmd("USER anonymous")
        if r.startswith("331"):
            r = c.cmd("PASS natalg@example.org")
        if not r.startswith("230"):
            raise RuntimeError("login: " + r)
        r = c.cmd("TYPE I")
        if not r.startswith("200"):
            raise RuntimeError("TYPE: " + r)

        def target():
            if not a.listen:
                raise RuntimeError("--attack %s needs --listen" % a.attack)
            h, p = a.listen[0].rsplit(":", 1)
            return h, int(p)

        if a.attack in ("bounce", "lowport"):
            h, p = target()
            line = "PORT " + port_arg(h, p)
            out["sent"] = line
            replies.append(c.cmd(line))
        elif a.attack == "site-arg":
            h, p = target()
            line = "SITE x PORT " + port_arg(h, p)
            out["sent"] = line
            replies.append(c.cmd(line))
        elif a.attack == "crlf-text":
            h, p = target()
            line = "SITE x\\r\\nPORT " + port_arg(h, p)
            out["sent"] = line
            replies.append(c.cmd(line))
        elif a.attack == "mid-line":
            h, p = target()
            first = b"SITE " + b"A" * 200 + b" "
            second = ("PORT " + port_arg(h, p) + "\r\n").encode()
            out["sent"] = [first.decode(), second.decode()]
            s.send(first)
            time.sleep(0.1)
            s.send(second)
            replies.append(c.reply())
        elif a.attack == "flood":
            n = 0
            while n < a.count:
                k = min(a.batch, a.count - n)
                batch = b"".join(("PORT %s\r\n" % port_arg(me, a.base_port + n + i)).encode() for i in range(k))
                s.sendall(batch)
                for _ in range(k):
                    replies.append(c.reply())
                n += k
                if time.monotonic() - t0 > 60:
                    raise RuntimeError("flood took over 60 s (%d sent)" % n)
            out["sent"] = "%d PORT commands, ports %d-%d, %d per segment" % (
                a.count, a.base_port, a.base_port + a.count - 1, a.batch)
        elif a.attack == "endless":
            h, p = target()
            head = "PORT " + port_arg(h, p)
            s.sendall(head.encode())
            if a.pause_dir:
                open(os.path.join(a.pause_dir, "started"), "w").close()
            lines = []

            def drain(wait):
                # the server's replies, without blocking the sender
                while select.select([s], [], [], wait)[0]:
                    b = s.recv(4096)
                    if not b:
                        raise EOFError("control connection closed")
                    c.buf += b
                    while b"\n" in c.buf:
                        i = c.buf.index(b"\n") + 1
                        lines.append(c.buf[:i].decode("latin-1").rstrip("\r\n"))
                        c.buf = c.buf[i:]
                    wait = 0

            def outq():
                return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]

            piece = b" " * a.junk_chunk
            n = 0
            while n < a.junk_bytes:
                k = min(a.junk_chunk, a.junk_bytes - n)
                s.sendall(piece[:k])
                n += k
                drain(0)
                if a.junk_gap:
                    time.sleep(a.junk_gap)
                if time.monotonic() - t0 > 60:
                    raise RuntimeError("endless line took over 60 s (%d bytes sent)" % n)
            t1 = time.monotonic()
            left = outq()
            while left and time.monotonic() - t1 < 20:
                drain(0.01)
                left = outq()
            out["send_seconds"] = round(t1 - t0, 3)
            out["acked_seconds"] = round(time.monotonic() - t1, 3)
            out["unacked"] = left
            out["junk_bytes"] = n
            out["sent"] = "%s + %d spaces, no CRLF, %d bytes per send() every %g s" % (head, n, a.junk_chunk, a.junk_gap)
            if left:
                raise RuntimeError("%d of the line's bytes still unacknowledged %.0f s after the last: held" % (left, time.monotonic() - t1))
            out["replies_during_line"] = len(lines)
            s.sendall(b"\r\nNOOP\r\n")
            t2 = time.monotonic()
            while not any(x.startswith("200") and "noop" in x.lower() for x in lines):
                if time.monotonic() - t2 > a.timeout:
                    raise RuntimeError("no 200 to NOOP within %.0f s after the line ended: %r" % (a.timeout, lines[-3:]))
                drain(0.1)
            out["noop_reply"] = [x for x in lines if x.startswith("200") and "noop" in x.lower()][0]
            replies = lines
        out["ok_replies"] = sum(1 for x in replies if x.startswith("200"))
        out["replies"] = replies[:3] + (["..."] + replies[-3:] if len(replies) > 6 else replies[3:])
        out["ok"] = True
        if a.pause_dir:
            with open(os.path.join(a.pause_dir, "ready.tmp"), "w") as f:
                json.dump(out, f)
            os.rename(os.path.join(a.pause_dir, "ready.tmp"), os.path.join(a.pause_dir, "ready"))
            go = os.path.join(a.pause_dir, "go")
            deadline = time.monotonic() + a.pause_max
            while not os.path.exists(go) and time.monotonic() < deadline:
                select.select([ls for _, ls in listeners], [], [], 0.05)
                accept_some()
            if not os.path.exists(go):
                out["ok"] = False
                out["error"] = "no go within %.0f s" % a.pause_max
        accept_some()
        try:
            c.cmd("QUIT")
        except (OSError, EOFError):
            pass
    except (OSError, EOFError, RuntimeError) as e:
        out["ok"] = False
        out["error"] = "%s: %s" % (type(e).__name__, e)
    out["accepted"] = accepted
    out["seconds"] = round(time.monotonic() - t0, 3)
    s.close()
    for _, ls in listeners:
        ls.close()
    print(json.dumps(out))
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
