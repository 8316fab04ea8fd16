#!/usr/bin/env python3
"""Filtering probe (RFC 4787 section 5, RFC 5382 section 4.3) for the
filtering e2e test.

outside Y_ADDR Y_PORT Y_PORT2 Z_ADDR Z_PORT TIMEOUT
    Binds its sockets and prints "listening", waits for one datagram on Y:Y_PORT, then sends "from-y" from Y:Y_PORT,
    "from-y2" from Y:Y_PORT2 and "from-z" from Z:Z_PORT to its source (the
    inside endpoint's mapping). Then, until TIMEOUT seconds have passed,
    prints "mapping IP:PORT" for the first datagram, and
    "back-to NAME from IP:PORT" for each answer the inside host sends to
    one of the three sockets.

inside BIND_ADDR BIND_PORT Y_ADDR Y_PORT TIMEOUT
    Sends "hello" from BIND_ADDR:BIND_PORT to Y:Y_PORT (again every 0.3 s
    until something comes back), answers every datagram it receives with
    "back", and prints "got TAG from IP:PORT" for each, until TIMEOUT
    seconds have passed.

tcp-outside Y_ADDR Y_PORT Y_PORT2 Z_ADDR Z_PORT TIMEOUT
    Listens on Y:Y_PORT and prints "listening"; accepts one connection (the
    inside endpoint's, through its mapping) and prints "mapping IP:PORT";
    then connects to the mapping from Y:Y_PORT2 and from Z:Z_PORT (2 s
    each) and prints "reached NAME as IP:PORT" (the peer address the
    connection got) or "refused NAME (WHY)".

tcp-inside BIND_ADDR BIND_PORT Y_ADDR Y_PORT TIMEOUT
    Connects from BIND_ADDR:BIND_PORT to Y:Y_PORT, keeps that connection
    open, listens on BIND_ADDR:BIND_PORT too (SO_REUSEADDR) and prints
    "got from IP:PORT" for each connection accepted, until TIMEOUT seconds
    have passed.
"""
import select
import socket
import sys
import time


def udp(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    return s


def outside(y_addr, y_port, y_port2, z_addr, z_port, timeout):
    socks = {"y": udp(y_addr, y_port), "y2": udp(y_addr, y_port2), "z": udp(z_addr, z_port)}
    names = {s: n for n, s in socks.items()}
    print("listening", flush=True)
    end = time.monotonic() + timeout
    mapping = None
    while time.monotonic() < end:
        ready, _, _ = select.select(list(socks.values()), [], [], 0.1)
        for s in ready:
            data, src = s.recvfrom(2048)
            if mapping is None and s is socks["y"] and data == b"hello":
                mapping = src
                print("mapping %s:%d" % src, flush=True)
                for n in ("y", "y2", "z"):
                    socks[n].sendto(b"from-" + n.encode(), mapping)
            elif data == b"back":
                print("back-to %s from %s:%d" % (names[s], src[0], src[1]), flush=True)
    if mapping is None:
        print("no datagram from inside", flush=True)
        sys.exit(1)


def inside(bind_addr, bind_port, y_addr, y_port, timeout):
    s = udp(bind_addr, bind_port)
    end = time.monotonic() + timeout
    got = False
    next_hello = 0.0
    while time.monotonic() < end:
        now = time.monotonic()
        if not got and now >= next_hello:
            s.sendto(b"hello", (y_addr, y_port))
            next_hello = now + 0.3
        ready, _, _ = select.select([s], [], [], 0.1)
        if ready:
            data, src = s.recvfrom(2048)
            got = True
            print("got %s from %s:%d" % (data.decode(errors="replace"), src[0], src[1]), flush=True)
            s.sendto(b"back", src)


def tcp_outside(y_addr, y_port, y_port2, z_addr, z_port, timeout):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((y_addr, y_port))
    ls.listen(4)
    ls.settimeout(timeout)
    print("listening", flush=True)
    try:
        conn, mapping = ls.accept()
    except OSError as e:
        print("no connection from inside (%s)" % e, flush=True)
        sys.exit(1)
    print("mapping %s:%d" % mapping, flush=True)
    time.sleep(0.5)  # the inside host listens after connecting
    for name, src in (("y2", (y_addr, y_port2)), ("z", (z_addr, z_port))):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.bind(src)
        c.settimeout(2)
        try:
            c.connect(mapping)
            peer = c.getpeername()
            print("reached %s as %s:%d" % (name, peer[0], peer[1]), flush=True)
        except OSError as e:
            print("refused %s (%s)" % (name, e.__class__.__name__), flush=True)
        finally:
            c.close()
    conn.close()


def tcp_inside(bind_addr, bind_port, y_addr, y_port, timeout):
    out = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    out.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    out.bind((bind_addr, bind_port))
    out.settimeout(timeout)
    out.connect((y_addr, y_port))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((bind_addr, bind_port))
    ls.listen(4)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([ls], [], [], 0.1)
        if ready:
            c, src = ls.accept()
            print("got from %s:%d" % src, flush=True)
            c.close()
    out.close()


def main():
    a = sys.argv[1:]
    if a and a[0] == "outside" and len(a) == 7:
        outside(a[1], int(a[2]), int(a[3]), a[4], int(a[5]), float(a[6]))
    elif a and a[0] == "inside" and len(a) == 6:
        inside(a[1], int(a[2]), a[3], int(a[4]), float(a[5]))
    elif a and a[0] == "tcp-outside" and len(a) == 7:
        tcp_outside(a[1], int(a[2]), int(a[3]), a[4], int(a[5]), float(a[6]))
    elif a and a[0] == "tcp-inside" and len(a) == 6:
        tcp_inside(a[1], int(a[2]), a[3], int(a[4]), float(a[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
