#!/usr/bin/python3
"""lprtftp.py - a minimal FTP server and client speaking LPRT and LPSV
(RFC 1639), which vsftpd and ProFTPD do not.

  lprtftp.py server --listen ADDR [--port 21] [--timeout 20]
  lprtftp.py client --host H [--port 21] --me ADDR --mode lprt|lpsv
                    [--timeout 10]

The server takes one control connection: 220, then USER (331), PASS (230),
TYPE (200), LPRT <long-host-port> (200, the endpoint remembered), LPSV (228
with a listener on the control connection's local address), RETR (the data
over the announced endpoint, 150 then 226), QUIT (221). Anything else: 502.
It prints one JSON object: the command lines it received and the endpoint
an LPRT named.

The client logs in, then in lprt mode listens on --me and announces it with
"LPRT 4,4,h1,h2,h3,h4,2,p1,p2"; in lpsv mode sends LPSV and connects to the
endpoint of the 228. Then RETR data. It prints one JSON object: ok, the
replies, the endpoint of the 228 (lpsv), the bytes and SHA-256 of what
arrived. Exit 0 on a complete transfer, 1 otherwise.

The data is 256 KiB: bytes 0..255 repeated. Every socket has a timeout.
"""
import argparse
import hashlib
import json
import socket
import sys

DATA = bytes(range(256)) * 1024


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

    def send(self, text):
        self.s.sendall(text.encode("latin-1") + b"\r\n")

    def cmd(self, text):
        self.send(text)
        return self.line()


def long_host_port(addr, port):
    """RFC 1639 §2: af,hal,h1..,pal,p1,p2 for an IPv4 address."""
    h = socket.inet_aton(addr)
    return ",".join(str(x) for x in [4, 4, *h, 2, port >> 8, port & 255])


def parse_long(text):
    """The first af 4 long-host-port in text, as (address, port)."""
    start = text.index("(") + 1
    f = [int(x) for x in text[start:text.index(")", start)].split(",")]
    if f[0] != 4 or f[1] != 4 or f[6] != 2 or len(f) != 9:
        raise ValueError("not an IPv4 long-host-port: %r" % text)
    return socket.inet_ntoa(bytes(f[2:6])), f[7] * 256 + f[8]


def server(a):
    out = {"lines": [], "lprt": None}
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.listen, a.port))
    ls.listen(1)
    ls.settimeout(a.timeout)
    print("listening", flush=True, file=sys.stderr)
    s, _ = ls.accept()
    s.settimeout(a.timeout)
    c = Ctl(s)
    c.send("220 lprtftp ready")
    active, passive = None, None
    try:
        while True:
            ln = c.line()
            out["lines"].append(ln)
            verb, _, arg = ln.partition(" ")
            verb = verb.upper()
            if verb == "USER":
                c.send("331 password")
            elif verb == "PASS":
                c.send("230 logged in")
            elif verb == "TYPE":
                c.send("200 type set")
            elif verb == "LPRT":
                f = [int(x) for x in arg.strip().split(",")]
                active = (socket.inet_ntoa(bytes(f[2:6])), f[7] * 256 + f[8])
                out["lprt"] = "%s:%d" % active
                c.send("200 LPRT command successful")
            elif verb == "LPSV":
                passive = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                passive.bind((s.getsockname()[0], 0))
                passive.listen(1)
                passive.settimeout(a.timeout)
                c.send("228 Entering Long Passive Mode (%s)" % long_host_port(*passive.getsockname()))
            elif verb == "RETR":
                c.send("150 here it comes")
                if passive is not None:
                    d, _ = passive.accept()
                else:
                    d = socket.create_connection(active, timeout=a.timeout)
                d.sendall(DATA)
                d.close()
                c.send("226 done")
            elif verb == "QUIT":
                c.send("221 bye")
                break
            else:
                c.send("502 not implemented")
    except (OSError, EOFError, ValueError, IndexError) as e:
        out["error"] = repr(e)
    print(json.dumps(out))


def client(a):
    out = {"ok": False, "replies": []}
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
        c = Ctl(s)
        out["replies"].append(c.line())
        for cmd in ("USER anonymous", "PASS x", "TYPE I"):
            out["replies"].append(c.cmd(cmd))
        if a.mode == "lprt":
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.bind((a.me, 0))
            ls.listen(1)
            ls.settimeout(a.timeout)
            r = c.cmd("LPRT " + long_host_port(*ls.getsockname()))
            out["replies"].append(r)
            out["announced"] = "%s:%d" % ls.getsockname()
            if not r.startswith("200"):
                raise ValueError("LPRT refused")
            out["replies"].append(c.cmd("RETR data"))
            d, _ = ls.accept()
        else:
            r = c.cmd("LPSV")
            out["replies"].append(r)
            host, port = parse_long(r)
            out["reply228"] = "%s:%d" % (host, port)
            c.send("RETR data")
            d = socket.create_connection((host, port), timeout=a.timeout)
            out["replies"].append(c.line())
        d.settimeout(a.timeout)
        got = b""
        while True:
            b = d.recv(65536)
            if not b:
                break
            got += b
        d.close()
        out["replies"].append(c.line())
        out["replies"].append(c.cmd("QUIT"))
        out["bytes"] = len(got)
        out["sha256"] = hashlib.sha256(got).hexdigest()
        out["ok"] = got == DATA
    except (OSError, EOFError, ValueError, IndexError) as e:
        out["error"] = repr(e)
    print(json.dumps(out))
    return 0 if out["ok"] else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="role", required=True)
    sv = sub.add_parser("server")
    sv.add_argument("--listen", required=True)
    sv.add_argument("--port", type=int, default=21)
    sv.add_argument("--timeout", type=float, default=20.0)
    cl = sub.add_parser("client")
    cl.add_argument("--host", required=True)
    cl.add_argument("--port", type=int, default=21)
    cl.add_argument("--me", required=True)
    cl.add_argument("--mode", choices=("lprt", "lpsv"), required=True)
    cl.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    if a.role == "server":
        server(a)
        return 0
    return client(a)


if __name__ == "__main__":
    sys.exit(main())
