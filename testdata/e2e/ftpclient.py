#!/usr/bin/python3
"""ftpclient.py - one FTP transfer with Python's ftplib (natalg end-to-end tests).

  ftpclient.py --host H [--port 21] --mode passive|active --op get|put \
               --remote PATH --local PATH [--pause-dir DIR] [--timeout S]

Passive mode uses PASV for IPv4 and EPSV for IPv6, active mode PORT for IPv4
and EPRT for IPv6 (ftplib's own choice). With --pause-dir (active get only)
the client announces its data port (PORT/EPRT, answered 200), creates
DIR/ported and waits for DIR/go before it sends RETR, so a test can look at
the NAT while an expectation is pending. Prints one JSON object on success
and exits 0; prints the error and exits 1 on failure.
"""
import argparse
import ftplib
import hashlib
import json
import os
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--mode", choices=("passive", "active"), required=True)
    ap.add_argument("--op", choices=("get", "put"), required=True)
    ap.add_argument("--remote", required=True)
    ap.add_argument("--local", required=True)
    ap.add_argument("--pause-dir")
    ap.add_argument("--pause-max", type=float, default=30.0)
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()

    t0 = time.monotonic()
    ftp = ftplib.FTP(timeout=a.timeout)
    # use the address of a 227 reply as announced: ftplib ignores it by
    # default, which would hide a 227 the NAT failed to rewrite
    ftp.trust_server_pasv_ipv4_address = True
    ftp.connect(a.host, a.port)
    ftp.login()  # anonymous
    ftp.set_pasv(a.mode == "passive")
    ftp.voidcmd("TYPE I")
    h = hashlib.sha256()
    n = 0
    if a.op == "get":
        with open(a.local, "wb") as f:
            if a.pause_dir:
                if a.mode != "active":
                    sys.exit("--pause-dir needs --mode active")
                # makeport sends PORT/EPRT and checks the 200 reply
                lsock = ftp.makeport()
                lsock.settimeout(a.timeout)
                open(os.path.join(a.pause_dir, "ported"), "w").close()
                go = os.path.join(a.pause_dir, "go")
                deadline = time.monotonic() + a.pause_max
                while not os.path.exists(go):
                    if time.monotonic() > deadline:
                        sys.exit("pause: no go file within %.0fs" % a.pause_max)
                    time.sleep(0.05)
                resp = ftp.sendcmd("RETR " + a.remote)
                if resp[0] != "1":
                    raise ftplib.error_reply(resp)
                conn, _ = lsock.accept()
                conn.settimeout(a.timeout)
                lsock.close()
                with conn:
                    while True:
                        b = conn.recv(65536)
                        if not b:
                            break
                        f.write(b)
                        h.update(b)
                        n += len(b)
                ftp.voidresp()
            else:
                def cb(b):
                    nonlocal n
                    f.write(b)
                    h.update(b)
                    n += len(b)
                ftp.retrbinary("RETR " + a.remote, cb)
    else:
        with open(a.local, "rb") as f:
            data = f.read()
        h.update(data)
        n = len(data)
        with open(a.local, "rb") as f:
            ftp.storbinary("STOR " + a.remote, f)
    try:
        ftp.quit()
    except (ftplib.Error, OSError):
        ftp.close()
    print(json.dumps({"sha256": h.hexdigest(), "bytes": n,
                      "seconds": round(time.monotonic() - t0, 3)}))


if __name__ == "__main__":
    try:
        main()
    except (ftplib.Error, OSError, EOFError) as e:
        print("ftpclient.py: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
