#!/usr/bin/python3
"""cccftp.py - FTP over TLS that goes back to clear text with CCC (RFC 4217
§6), both ends, for natalg's end-to-end tests (vsftpd and ProFTPD as
packaged here do not offer CCC).

  cccftp.py server --addr A --port 21 --cert C --key K --file F [--max-sessions 4] [--timeout 20]
  cccftp.py client --host H --port 21 --out PATH [--timeout 20]

The server: 220; AUTH TLS -> 234 and the TLS handshake; USER/PASS (any);
TYPE; CCC -> 200, close_notify both ways (ssl unwrap), clear text from
then on; PORT (the address must be the control connection's peer, as
vsftpd's port_promiscuous=NO: otherwise "500 Illegal PORT command."); RETR
-> connects to the announced endpoint and sends F; QUIT. It logs every
command line to stdout and serves at most --max-sessions sessions.

The client (ftplib.FTP_TLS): AUTH TLS, login, CCC, then active mode (PORT in
clear text) and RETR into --out. Prints one JSON object; exit 0 on success.
"""
import argparse
import ftplib
import hashlib
import json
import socket
import ssl
import sys
import time


def serve(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.addr, a.port))
    ls.listen(4)
    print("listening", flush=True)
    for _ in range(a.max_sessions):
        c, peer = ls.accept()
        c.settimeout(a.timeout)
        try:
            session(ctx, c, peer, a)
        except Exception as e:  # one bad session must not stop the server
            print("session error: %s: %s" % (type(e).__name__, e), flush=True)
        finally:
            c.close()


def session(ctx, c, peer, a):
    sock = c
    buf = b""

    def send(line):
        print("> " + line, flush=True)
        sock.sendall(line.encode() + b"\r\n")

    def readline():
        nonlocal buf
        while b"\n" not in buf:
            b = sock.recv(4096)
            if not b:
                raise EOFError("closed")
            buf += b
        i = buf.index(b"\n") + 1
        ln, buf = buf[:i], buf[i:]
        return ln.decode("latin-1").rstrip("\r\n")

    send("220 natalg e2e CCC server")
    data_ep = None
    while True:
        ln = readline()
        print("< " + ln, flush=True)
        verb = ln.split(" ", 1)[0].upper()
        arg = ln[len(verb) + 1:]
        if verb == "AUTH":
            send("234 Proceed with negotiation.")
            sock = ctx.wrap_socket(c, server_side=True)
        elif verb == "USER":
            send("331 Any password.")
        elif verb == "PASS":
            send("230 Login successful.")
        elif verb in ("TYPE", "PBSZ"):
            send("200 OK.")
        elif verb == "PROT":
            send("200 PROT C only." if arg.upper() == "C" else "536 Only C.")
        elif verb == "CCC":
            send("200 Control channel in clear text.")
            sock = sock.unwrap()
            if buf:
                raise RuntimeError("data after CCC before close_notify")
        elif verb == "PORT":
            f = [int(x) for x in arg.split(",")]
            host, port = "%d.%d.%d.%d" % tuple(f[:4]), f[4] * 256 + f[5]
            if host != peer[0]:
                send("500 Illegal PORT command.")
                continue
            data_ep = (host, port)
            send("200 PORT command successful.")
        elif verb == "RETR":
            if not data_ep:
                send("425 Use PORT first.")
                continue
            send("150 Opening BINARY mode data connection.")
            d = socket.create_connection(data_ep, timeout=a.timeout)
            with open(a.file, "rb") as fh:
                while True:
                    b = fh.read(65536)
                    if not b:
                        break
                    d.sendall(b)
            d.close()
            data_ep = None
            send("226 Transfer complete.")
        elif verb == "QUIT":
            send("221 Goodbye.")
            return
        else:
            send("502 Not implemented.")


def client(a):
    out = {"ok": False}
    t0 = time.monotonic()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ftp = ftplib.FTP_TLS(context=ctx, timeout=a.timeout)
    try:
        ftp.connect(a.host, a.port)
        ftp.auth()
        ftp.login()  # anonymous, over TLS
        out["ccc"] = ftp.ccc()
        ftp.set_pasv(False)
        h, n = hashlib.sha256(), 0
        with open(a.out, "wb") as f:
            def w(b):
                nonlocal n
                h.update(b)
                n += len(b)
                f.write(b)
            out["retr"] = ftp.retrbinary("RETR file", w)
        out.update(ok=True, bytes=n, sha256=h.hexdigest())
        try:
            ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            pass
    except (OSError, EOFError, ftplib.Error, ssl.SSLError) as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    out["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(out))
    return 0 if out["ok"] else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--addr", required=True)
    s.add_argument("--port", type=int, default=21)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--file", required=True)
    s.add_argument("--max-sessions", type=int, default=4)
    s.add_argument("--timeout", type=float, default=20.0)
    c = sub.add_parser("client")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, default=21)
    c.add_argument("--out", required=True)
    c.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()
    if a.role == "server":
        serve(a)
        return 0
    return client(a)


if __name__ == "__main__":
    sys.exit(main())
