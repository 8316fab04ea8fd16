#!/usr/bin/env python3
"""UDP filtering probe (RFC 4787 section 5) for the filtering e2e test.

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


def main():
    a = sys.argv[1:]
    if a and a[0] == "outside" and len(a) == 7:
        outside(a[1], int(a[2]), int(a[3]), a[4], int(a[5]), float(a[6]))
    elif a and a[0] == "inside" and len(a) == 6:
        inside(a[1], int(a[2]), a[3], int(a[4]), float(a[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
