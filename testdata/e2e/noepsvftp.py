#!/usr/bin/python3
"""noepsvftp.py - a small IPv4 FTP server that refuses EPSV and EPRT (natalg tests).

  noepsvftp.py --addr A [--port 21] --root DIR [--lifetime S] [--timeout S]
               [--max-sessions N] [--log FILE]

An old IPv4-only server: it knows USER, PASS, SYST, PWD, CWD, TYPE, SIZE,
PASV, PORT, RETR, STOR, NOOP and QUIT, and answers EPSV and EPRT with 500,
so an IPv6 client behind a NAT64 needs the RFC 6384 translation of EPSV
into PASV (and of the 227 reply into 229). Anonymous login, any password.
Files are read from and written to DIR (paths may not leave it). It binds
the control, passive and active data sockets to A only, serves at most N
sessions at once, drops a session idle for S seconds and exits after
--lifetime seconds. Every command and reply goes to --log (or stderr),
one line each: "<- CMD" and "-> REPLY".
"""
import argparse
import os
import socket
import sys
import threading
import time

LOG_LOCK = threading.Lock()


def log(out, sid, s):
    with LOG_LOCK:
        out.write("%.3f %d %s\n" % (time.time(), sid, s))
        out.flush()


class Session:
    def __init__(self, a, conn, sid, out):
        self.a, self.conn, self.sid, self.out = a, conn, sid, out
        self.cwd = "/"
        self.pasv = None  # listening socket
        self.port = None  # (host, port) for active mode
        self.user = False
        self.logged = False
        self.rfile = conn.makefile("rb")

    def reply(self, s):
        log(self.out, self.sid, "-> " + s)
        self.conn.sendall((s + "\r\n").encode())

    def path(self, arg):
        p = os.path.normpath(os.path.join(self.cwd, arg))
        if not p.startswith("/"):
            p = "/" + p
        full = os.path.realpath(os.path.join(self.a.root, p.lstrip("/")))
        root = os.path.realpath(self.a.root)
        if full != root and not full.startswith(root + os.sep):
            return None, None
        return p, full

    def data_conn(self):
        if self.pasv is not None:
            ls, self.pasv = self.pasv, None
            try:
                c, _ = ls.accept()
            finally:
                ls.close()
        elif self.port is not None:
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.settimeout(self.a.timeout)
            c.bind((self.a.addr, 0))
            c.connect(self.port)
            self.port = None
        else:
            return None
        c.settimeout(self.a.timeout)
        return c

    def run(self):
        self.reply("220 natalg noepsvftp (IPv4 only, no EPSV)")
        while True:
            line = self.rfile.readline(1024)
            if not line:
                return
            line = line.decode("latin-1").rstrip("\r\n")
            log(self.out, self.sid, "<- " + (line if not line.upper().startswith("PASS") else "PASS ****"))
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "QUIT":
                self.reply("221 Goodbye.")
                return
            h = getattr(self, "cmd_" + verb, None)
            if verb in ("USER", "PASS") or self.logged or h is None:
                pass
            else:
                self.reply("530 Please login with USER and PASS.")
                continue
            if h is None:
                self.reply("502 Command not implemented.")
                continue
            h(arg)

    def cmd_USER(self, arg):
        self.user = True
        self.reply("331 Please specify the password.")

    def cmd_PASS(self, arg):
        if not self.user:
            self.reply("503 Login with USER first.")
            return
        self.logged = True
        self.reply("230 Login successful.")

    def cmd_SYST(self, arg):
        self.reply("215 UNIX Type: L8")

    def cmd_NOOP(self, arg):
        self.reply(self.a.noop_reply)

    def cmd_PWD(self, arg):
        self.reply('257 "%s" is the current directory' % self.cwd)

    def cmd_CWD(self, arg):
        p, full = self.path(arg)
        if p is None or not os.path.isdir(full):
            self.reply("550 Failed to change directory.")
            return
        self.cwd = p
        self.reply("250 Directory successfully changed.")

    def cmd_TYPE(self, arg):
        if arg.upper() in ("I", "L 8", "A", "A N"):
            self.reply("200 Switching to %s mode." % ("ASCII" if arg.upper().startswith("A") else "Binary"))
        else:
            self.reply("504 Bad TYPE command.")

    def cmd_SIZE(self, arg):
        p, full = self.path(arg)
        if p is None or not os.path.isfile(full):
            self.reply("550 Could not get file size.")
            return
        self.reply("213 %d" % os.path.getsize(full))

    def cmd_EPSV(self, arg):
        self.reply("500 Unknown command.")

    def cmd_EPRT(self, arg):
        self.reply("500 Unknown command.")

    def cmd_PASV(self, arg):
        if self.pasv is not None:
            self.pasv.close()
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.settimeout(self.a.timeout)
        ls.bind((self.a.addr, 0))
        ls.listen(1)
        self.pasv = ls
        port = ls.getsockname()[1]
        self.reply("227 Entering Passive Mode (%s,%d,%d)." % (self.a.addr.replace(".", ","), port >> 8, port & 255))

    def cmd_PORT(self, arg):
        try:
            f = [int(x) for x in arg.split(",")]
            if len(f) != 6 or any(x < 0 or x > 255 for x in f):
                raise ValueError
        except ValueError:
            self.reply("501 Illegal PORT command.")
            return
        host, port = "%d.%d.%d.%d" % tuple(f[:4]), f[4] << 8 | f[5]
        # like vsftpd's port_promiscuous=NO: only the client's own address
        if host != self.conn.getpeername()[0] or port < 1024:
            self.reply("500 Illegal PORT command.")
            return
        if self.pasv is not None:
            self.pasv.close()
            self.pasv = None
        self.port = (host, port)
        self.reply("200 PORT command successful.")

    def cmd_RETR(self, arg):
        p, full = self.path(arg)
        if p is None or not os.path.isfile(full):
            self.reply("550 Failed to open file.")
            return
        with open(full, "rb") as f:
            try:
                c = self.data_conn()
            except OSError as e:
                self.reply("425 Failed to establish connection: %s" % e)
                return
            if c is None:
                self.reply("425 Use PORT or PASV first.")
                return
            self.reply("150 Opening BINARY mode data connection for %s (%d bytes)." % (arg, os.path.getsize(full)))
            try:
                with c:
                    while True:
                        b = f.read(65536)
                        if not b:
                            break
                        c.sendall(b)
            except OSError as e:
                self.reply("426 Failure writing network stream: %s" % e)
                return
        self.reply("226 Transfer complete.")

    def cmd_STOR(self, arg):
        p, full = self.path(arg)
        if p is None or not os.path.isdir(os.path.dirname(full)):
            self.reply("553 Could not create file.")
            return
        try:
            c = self.data_conn()
        except OSError as e:
            self.reply("425 Failed to establish connection: %s" % e)
            return
        if c is None:
            self.reply("425 Use PORT or PASV first.")
            return
        self.reply("150 Ok to send data.")
        tmp = full + ".part"
        try:
            with c, open(tmp, "wb") as f:
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    f.write(b)
            os.chmod(tmp, 0o644)
            os.replace(tmp, full)
        except OSError as e:
            self.reply("426 Failure reading network stream: %s" % e)
            return
        self.reply("226 Transfer complete.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--root", required=True)
    ap.add_argument("--lifetime", type=float, default=600.0)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--max-sessions", type=int, default=16)
    ap.add_argument("--log")
    # a NOOP answered otherwise than 200 makes an RFC 6384 gateway tear
    # the session down (RFC 6384 §12)
    ap.add_argument("--noop-reply", default="200 NOOP ok.")
    a = ap.parse_args()
    socket.inet_aton(a.addr)  # IPv4 only
    out = open(a.log, "a") if a.log else sys.stderr
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.addr, a.port))
    ls.listen(8)
    ls.settimeout(1.0)
    log(out, 0, "listening on %s:%d" % (a.addr, a.port))
    sem = threading.BoundedSemaphore(a.max_sessions)
    deadline = time.monotonic() + a.lifetime
    sid = 0
    while time.monotonic() < deadline:
        try:
            conn, peer = ls.accept()
        except socket.timeout:
            continue
        sid += 1
        if not sem.acquire(blocking=False):
            conn.sendall(b"421 Too many sessions.\r\n")
            conn.close()
            continue
        conn.settimeout(a.timeout)
        log(out, sid, "session from %s:%d" % peer)

        def serve(conn=conn, sid=sid):
            try:
                Session(a, conn, sid, out).run()
            except (OSError, ValueError) as e:
                log(out, sid, "session error: %s" % e)
            finally:
                conn.close()
                sem.release()
                log(out, sid, "session closed")

        threading.Thread(target=serve, daemon=True).start()
    log(out, 0, "lifetime over")


if __name__ == "__main__":
    main()
