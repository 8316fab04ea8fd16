#!/usr/bin/python3
"""rawftp.py - an FTP client that controls how PORT is cut into TCP segments.

  rawftp.py --host H [--port 21] --how split|batch --remote PATH
            [--split-at 7,15] [--gap 0.05] [--timeout 8]

Logs in anonymously, then announces an active-mode data port with PORT:

  split  "TYPE I\\r\\n" is sent and answered first; then the PORT line is sent
         in pieces cut at the --split-at byte offsets (negative: from the
         end of the line, CR LF included), each its own send() on a
         TCP_NODELAY socket (so its own segment), --gap seconds apart.
  batch  "TYPE I\\r\\nPORT ...\\r\\n" in one send() (one segment): PORT is not
         at the start of the segment.

Then RETR PATH over the announced port. Prints one JSON object: ok, the PORT
reply, the seconds from the first PORT byte sent to its reply, and on success
the bytes and SHA-256 of what arrived. Exit 0 on a complete transfer, 1
otherwise.
"""
import argparse
import hashlib
import json
import socket
import sys
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--how", choices=("split", "batch"), required=True)
    ap.add_argument("--remote", required=True)
    ap.add_argument("--split-at", default="7,15")
    ap.add_argument("--gap", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=8.0)
    a = ap.parse_args()

    out = {"ok": False, "how": a.how}
    t0 = time.monotonic()
    s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = Ctl(s)
    try:
        r = c.reply()
        if not r.startswith("220"):
            raise RuntimeError("banner: " + r)
        r = c.cmd("USER anonymous")
        if r.startswith("331"):
            r = c.cmd("PASS natalg@example.org")
        if not r.startswith("230"):
            raise RuntimeError("login: " + r)

        laddr = s.getsockname()[0]
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind((laddr, 0))
        ls.listen(1)
        ls.settimeout(a.timeout)
        p = ls.getsockname()[1]
        port = "PORT %s,%d,%d\r\n" % (laddr.replace(".", ","), p >> 8, p & 0xFF)
        out["port_sent"] = port.strip()
        data = port.encode()

        if a.how == "split":
            r = c.cmd("TYPE I")
            if not r.startswith("200"):
                raise RuntimeError("TYPE: " + r)
            # negative offsets count from the end: -1 cuts between CR and LF
            cuts = [int(x) for x in a.split_at.split(",") if x]
            cuts = sorted(x if x >= 0 else len(data) + x for x in cuts)
            pieces, prev = [], 0
            for x in cuts + [len(data)]:
                pieces.append(data[prev:x])
                prev = x
            out["pieces"] = [x.decode() for x in pieces]
            tp = time.monotonic()
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(a.gap)
                s.send(piece)
        else:
            tp = time.monotonic()
            s.sendall(b"TYPE I\r\n" + data)
            r = c.reply()
            if not r.startswith("200"):
                raise RuntimeError("TYPE: " + r)
        r = c.reply()
        out["port_reply"] = r
        out["port_seconds"] = round(time.monotonic() - tp, 3)
        if not r.startswith("200"):
            raise RuntimeError("PORT refused: " + r)

        s.sendall(("RETR %s\r\n" % a.remote).encode())
        r = c.reply()
        out["retr_reply"] = r
        if not r.startswith("1"):
            raise RuntimeError("RETR: " + r)
        d, _ = ls.accept()
        d.settimeout(a.timeout)
        h, n = hashlib.sha256(), 0
        while True:
            b = d.recv(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
        d.close()
        r = c.reply()
        out["done_reply"] = r
        if not r.startswith("226"):
            raise RuntimeError("transfer: " + r)
        out.update(ok=True, sha256=h.hexdigest(), bytes=n)
        try:
            c.cmd("QUIT")
        except (OSError, EOFError):
            pass
    except (OSError, EOFError, RuntimeError) as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    out["seconds"] = round(time.monotonic() - t0, 3)
    s.close()
    print(json.dumps(out))
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
