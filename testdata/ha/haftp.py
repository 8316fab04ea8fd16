#!/usr/bin/python3
"""haftp.py - one long-lived FTP control connection across failovers of a natalg router pair
(cmd/natalg/ha_e2e_test.go). Like testdata/e2e/restartftp.py, with rounds and pinhole probes.

  haftp.py --host H --remote PATH --local PREFIX --pause-dir DIR --rounds N
           --third-party ADDR [--timeout S] [--pause-max S]

On ONE control connection, in active mode (PORT: the NAT rewrites the client's address and
shifts the sequence numbers of everything the client sends after it):

  get1        PORT + RETR PATH into PREFIX.1
  then, for each round k = 1..N:
  pause       create DIR/ready-k, wait for DIR/go-k (the test fails the master over)
  noop-k      NOOP: the first segment of the session through the new master
  get-(k+1)   PORT + RETR PATH into PREFIX.(k+1)
  bounce-k    PORT naming ADDR (another inside host): the NAT must refuse to announce it
  port-k      PORT naming this host and a listening port, answered 200, not followed by a
              transfer: create DIR/ported-k (JSON: the port) and wait for DIR/probed-k while
              counting the connections accepted (the test connects from outside: from a
              wrong peer, which must not get through, then from the server, which must)

Prints one JSON object: the result of each phase ({"sha256","bytes"} for downloads, the reply
for commands, the connections each port-k accepted) and, on failure, "failed_at" and "error".
Exits 0 when every phase succeeded, 1 otherwise.
"""
import argparse
import ftplib
import hashlib
import json
import os
import select
import socket
import sys
import time


def wait_file(path, limit, poll=None):
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError("no %s within %.0fs" % (path, limit))
        if poll:
            poll()
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


def port_arg(addr, port):
    return ",".join(addr.split(".") + [str(port >> 8), str(port & 0xFF)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--remote", required=True)
    ap.add_argument("--local", required=True)
    ap.add_argument("--pause-dir", required=True)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--third-party", required=True)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--pause-max", type=float, default=120.0)
    a = ap.parse_args()

    out = {}
    phase = "connect"
    try:
        ftp = ftplib.FTP(timeout=a.timeout)
        ftp.connect(a.host, a.port)
        ftp.login()  # anonymous
        ftp.set_pasv(False)
        ftp.voidcmd("TYPE I")
        phase = "get1"
        out["get1"] = get(ftp, a.remote, a.local + ".1")
        for k in range(1, a.rounds + 1):
            phase = "pause-%d" % k
            open(os.path.join(a.pause_dir, "ready-%d" % k), "w").close()
            wait_file(os.path.join(a.pause_dir, "go-%d" % k), a.pause_max)
            t0 = time.monotonic()
            phase = "noop-%d" % k
            out[phase] = ftp.voidcmd("NOOP")
            out["noop-%d-seconds" % k] = round(time.monotonic() - t0, 3)
            phase = "get%d" % (k + 1)
            out[phase] = get(ftp, a.remote, a.local + ".%d" % (k + 1))
            phase = "bounce-%d" % k
            # vsftpd answers 500 to a PORT naming another host than the client (port_promiscuous
            # NO); the NAT must not announce it in the first place
            try:
                out[phase] = ftp.sendcmd("PORT " + port_arg(a.third_party, 5001))
            except ftplib.Error as e:
                out[phase] = str(e)
            phase = "port-%d" % k
            lsock = socket.create_server(("", 0), backlog=4)
            lsock.setblocking(False)
            lport = lsock.getsockname()[1]
            host = ftp.sock.getsockname()[0]
            out[phase] = ftp.voidcmd("PORT " + port_arg(host, lport))
            accepted = []

            def poll(wait=0.0):
                while True:
                    r, _, _ = select.select([lsock], [], [], wait)
                    if not r:
                        return
                    c, peer = lsock.accept()
                    accepted.append(peer[0])
                    c.close()
            with open(os.path.join(a.pause_dir, "ported-%d" % k), "w") as f:
                json.dump({"port": lport}, f)
            wait_file(os.path.join(a.pause_dir, "probed-%d" % k), a.pause_max, poll)
            # what the probes left in the backlog
            poll(0.5)
            lsock.close()
            out["accepted-%d" % k] = accepted
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
