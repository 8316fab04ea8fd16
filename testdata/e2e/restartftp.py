#!/usr/bin/python3
"""restartftp.py - one FTP control connection across restarts of the NAT
(natalg end-to-end tests, natalg run --state).

  restartftp.py --host H --remote PATH --local PREFIX --pause-dir DIR
                [--pending] [--data-port N] [--timeout S] [--pause-max S]

On ONE control connection, in active mode (PORT, so that the NAT rewrites
the client's address and shifts the sequence numbers of what follows):

  get1   PORT + RETR PATH into PREFIX.1
  then   create DIR/ready and wait for DIR/go (the test restarts the NAT)
  noop   NOOP (the test may send the go while the NAT is down: the command
         then reaches the server only by TCP retransmission)
  get2   PORT + RETR PATH into PREFIX.2
  with --pending:
  port3  PORT (answered 200), create DIR/ported, wait for DIR/go2 (the
         test restarts the NAT with the data connection's expectation
         pending)
  get3   RETR PATH into PREFIX.3 over that port

With --data-port N the client listens for the data connections on ports
N, N+1, ... (one per PORT or EPRT), so that the length of what the NAT
rewrites is known; without it, on ports the system picks.

Prints one JSON object: the result of each phase reached ({"sha256",
"bytes"} for downloads, the reply for commands) and, on failure, "failed_at"
and "error". Exits 0 when every phase succeeded, 1 otherwise.
"""
import argparse
import ftplib
import hashlib
import json
import os
import socket
import sys
import time


class FTP(ftplib.FTP):
    """ftplib.FTP whose active-mode listeners take the ports next_port,
    next_port+1, ... when next_port is set."""

    next_port = 0

    def makeport(self):
        if not self.next_port:
            return super().makeport()
        sock = socket.create_server(("", self.next_port), family=self.af, backlog=1)
        self.next_port += 1
        host = self.sock.getsockname()[0]
        if self.af == socket.AF_INET:
            self.sendport(host, sock.getsockname()[1])
        else:
            self.sendeprt(host, sock.getsockname()[1])
        sock.settimeout(self.timeout)
        return sock


def wait_file(path, limit):
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError("no %s within %.0fs" % (path, limit))
        time.sleep(0.05)


def get(ftp, remote, local):
    h = hashlib.sha256()
    n = 0
    with open(local, "wb") as f:
        def cb(b):
            nonlocal n
            f.write(b)
            h.update(b)
            n += len(b)
        ftp.retrbinary("RETR " + remote, cb)
    return {"sha256": h.hexdigest(), "bytes": n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--remote", required=True)
    ap.add_argument("--local", required=True)
    ap.add_argument("--pause-dir", required=True)
    ap.add_argument("--pending", action="store_true")
    ap.add_argument("--data-port", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--pause-max", type=float, default=60.0)
    a = ap.parse_args()

    out = {}
    phase = "connect"
    try:
        ftp = FTP(timeout=a.timeout)
        ftp.next_port = a.data_port
        ftp.connect(a.host, a.port)
        ftp.login()  # anonymous
        ftp.set_pasv(False)
        ftp.voidcmd("TYPE I")
        phase = "get1"
        out["get1"] = get(ftp, a.remote, a.local + ".1")
        phase = "pause"
        open(os.path.join(a.pause_dir, "ready"), "w").close()
        wait_file(os.path.join(a.pause_dir, "go"), a.pause_max)
        phase = "noop"
        out["noop"] = ftp.voidcmd("NOOP")
        phase = "get2"
        out["get2"] = get(ftp, a.remote, a.local + ".2")
        if a.pending:
            phase = "port3"
            lsock = ftp.makeport()  # sends PORT, checks the 200
            lsock.settimeout(a.timeout)
            open(os.path.join(a.pause_dir, "ported"), "w").close()
            wait_file(os.path.join(a.pause_dir, "go2"), a.pause_max)
            phase = "get3"
            resp = ftp.sendcmd("RETR " + a.remote)
            if resp[0] != "1":
                raise ftplib.error_reply(resp)
            conn, _ = lsock.accept()
            conn.settimeout(a.timeout)
            lsock.close()
            h = hashlib.sha256()
            n = 0
            with conn, open(a.local + ".3", "wb") as f:
                while True:
                    b = conn.recv(65536)
                    if not b:
                        break
                    f.write(b)
                    h.update(b)
                    n += len(b)
            ftp.voidresp()
            out["get3"] = {"sha256": h.hexdigest(), "bytes": n}
        phase = "quit"
        try:
            ftp.quit()
        except (ftplib.Error, OSError, EOFError):
            ftp.close()
    except (ftplib.Error, OSError, EOFError, TimeoutError) as e:
        out["failed_at"] = phase
        out["error"] = "%s: %s" % (type(e).__name__, e)
        print(json.dumps(out))
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
