#!/usr/bin/python3
"""crashxfer.py - transfers that outlive a SIGKILL of the NAT (natalg
end-to-end tests, crash-only state).

  crashxfer.py ftp --host H --mode pasv|port --remote PATH --next PATH
               --pause-dir DIR [--data-port N] [--rate B] [--midway B]
  crashxfer.py recv (--connect H:P | --listen P) --pause-dir DIR [--rate B] [--midway B]
  crashxfer.py send (--connect H:P | --listen P) --file F

ftp: on ONE control connection (anonymous login, TYPE I), in passive
(PASV) or active (PORT, from --data-port N, N+1, ... when given) mode:
RETR --remote, read at --rate bytes/s; once --midway bytes are in, create
DIR/midway (the test kills and restarts the NAT then); read to the end and
the 226; then the next commands on the same control connection: NOOP, and
RETR --next in the same mode, at full speed.

recv: receive one TCP stream (connecting or accepting) at --rate bytes/s,
creating DIR/midway after --midway bytes. send: send --file on one TCP
stream and close it.

The receiving side keeps a small receive buffer so that the sender stays
throttled (the transfer is in flight in the network when the NAT dies).
Prints one JSON object ({"sha256", "bytes"} per download, the replies of
commands; "failed_at" and "error" on failure). Exits 0 when all succeeded.
"""
import argparse
import ftplib
import hashlib
import json
import os
import socket
import sys
import time

RCVBUF = 64 << 10


class FTP(ftplib.FTP):
    """ftplib.FTP with active-mode listeners on next_port, next_port+1, ...
    (when set) and small receive buffers on data connections."""

    next_port = 0

    def makeport(self):
        if not self.next_port:
            sock = super().makeport()
        else:
            sock = socket.create_server(("", self.next_port), family=self.af, backlog=1)
            self.next_port += 1
            host = self.sock.getsockname()[0]
            if self.af == socket.AF_INET:
                self.sendport(host, sock.getsockname()[1])
            else:
                self.sendeprt(host, sock.getsockname()[1])
            sock.settimeout(self.timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        return sock


def slow_read(sock, rate, midway, pause_dir):
    """Reads sock to its end at about rate bytes/s (0: at full speed)."""
    h = hashlib.sha256()
    n = 0
    marked = False
    t0 = time.monotonic()
    while True:
        b = sock.recv(16384)
        if not b:
            break
        h.update(b)
        n += len(b)
        if midway and not marked and n >= midway:
            open(os.path.join(pause_dir, "midway"), "w").close()
            marked = True
        if rate:
            ahead = n / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    return {"sha256": h.hexdigest(), "bytes": n}


def ftp_get(ftp, remote, rate, midway, pause_dir):
    conn = ftp.transfercmd("RETR " + remote)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    with conn:
        got = slow_read(conn, rate, midway, pause_dir)
    ftp.voidresp()  # the 226, through the NAT that restarted
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ftp", "recv", "send"])
    ap.add_argument("--host")
    ap.add_argument("--mode", choices=["pasv", "port"], default="pasv")
    ap.add_argument("--remote")
    ap.add_argument("--next")
    ap.add_argument("--data-port", type=int, default=0)
    ap.add_argument("--connect")
    ap.add_argument("--listen", type=int, default=0)
    ap.add_argument("--file")
    ap.add_argument("--pause-dir", default=".")
    ap.add_argument("--rate", type=float, default=1 << 20)
    ap.add_argument("--midway", type=int, default=1 << 20)
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()

    out = {}
    phase = "connect"
    try:
        if a.what == "ftp":
            ftp = FTP(timeout=a.timeout)
            ftp.next_port = a.data_port
            ftp.connect(a.host, 21)
            ftp.login()
            ftp.set_pasv(a.mode == "pasv")
            ftp.voidcmd("TYPE I")
            phase = "get"
            out["get"] = ftp_get(ftp, a.remote, a.rate, a.midway, a.pause_dir)
            phase = "noop"
            out["noop"] = ftp.voidcmd("NOOP")
            phase = "next"
            out["next"] = ftp_get(ftp, a.next, 0, 0, a.pause_dir)
            phase = "quit"
            ftp.quit()
        else:
            if a.listen:
                ls = socket.create_server(("", a.listen), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1)
                ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
                ls.settimeout(a.timeout)
                open(os.path.join(a.pause_dir, "listening"), "w").close()
                sock, _ = ls.accept()
                ls.close()
            else:
                host, port = a.connect.rsplit(":", 1)
                host = host.strip("[]")
                fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(fam, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
                sock.settimeout(a.timeout)
                sock.connect((host, int(port)))
            sock.settimeout(a.timeout)
            phase = a.what
            with sock:
                if a.what == "recv":
                    out["recv"] = slow_read(sock, a.rate, a.midway, a.pause_dir)
                else:
                    with open(a.file, "rb") as f:
                        sock.sendfile(f)
                    sock.shutdown(socket.SHUT_WR)
                    sock.recv(1)  # until the receiver closes
                    out["sent"] = os.path.getsize(a.file)
    except (ftplib.Error, OSError, EOFError, TimeoutError) as e:
        out["failed_at"] = phase
        out["error"] = "%s: %s" % (type(e).__name__, e)
        print(json.dumps(out))
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
