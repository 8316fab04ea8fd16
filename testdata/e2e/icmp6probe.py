#!/usr/bin/python3
"""icmp6probe.py - ICMPv6 probes through a NAT64 (natalg end-to-end tests).

  icmp6probe.py --dst ADDR echo [--count N] [--hop-limit H]
  icmp6probe.py --dst ADDR udp --port P

echo sends N ICMPv6 echo requests (RFC 4443 §4.1) and reports the replies;
with a small --hop-limit the packets expire on the way and the report lists
the ICMPv6 errors that came back instead (Time Exceeded, type 3). udp sends
a datagram to a closed port and reports the ICMPv6 error (Destination
Unreachable, port unreachable: type 1 code 4) and whether the socket saw
ECONNREFUSED. Both need root (a raw ICMPv6 socket). Prints one JSON object
and exits 0 when the expected answer came (replies, an error), 1 otherwise.
Every wait is bounded by --timeout.
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time


def recv_icmp(raw, deadline):
    """Yields (source, icmpv6 message) until deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        r, _, _ = select.select([raw], [], [], left)
        if not r:
            return
        b, addr = raw.recvfrom(65535)
        yield addr[0], b


def echo(a):
    raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    if a.hop_limit:
        raw.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, a.hop_limit)
    ident = os.getpid() & 0xFFFF
    replies, errors = [], []
    for seq in range(1, a.count + 1):
        payload = b"natalg nat64 e2e %04d" % seq
        # the kernel fills the checksum of ICMPv6 raw sockets (RFC 3542 §3.1)
        raw.sendto(struct.pack("!BBHHH", 128, 0, 0, ident, seq) + payload, (a.dst, 0))
        t0 = time.monotonic()
        for src, m in recv_icmp(raw, t0 + a.timeout):
            if len(m) >= 8 and m[0] == 129 and struct.unpack("!HH", m[4:8]) == (ident, seq):
                replies.append({"seq": seq, "from": src, "ms": round((time.monotonic() - t0) * 1000, 2)})
                break
            # an error quotes our request: IPv6 header (40) then the echo
            if len(m) >= 8 + 40 + 8 and m[0] < 128 and m[8 + 40] == 128 and \
                    struct.unpack("!HH", m[8 + 44:8 + 48]) == (ident, seq):
                errors.append({"seq": seq, "from": src, "type": m[0], "code": m[1]})
                break
        time.sleep(a.interval)
    ok = len(errors) > 0 if a.hop_limit else len(replies) == a.count
    print(json.dumps({"ok": ok, "sent": a.count, "replies": replies, "errors": errors}))
    return ok


def udp(a):
    raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.connect((a.dst, a.port))
    sport = s.getsockname()[1]
    errors, refused = [], False
    for _ in range(a.count):
        s.send(b"natalg nat64 e2e udp")
        for src, m in recv_icmp(raw, time.monotonic() + a.timeout):
            # Destination Unreachable quoting our datagram (UDP ports at
            # 8 + 40 of the message)
            if len(m) >= 8 + 40 + 8 and m[0] == 1 and m[8 + 6] == 17 and \
                    struct.unpack("!HH", m[8 + 40:8 + 44]) == (sport, a.port):
                errors.append({"from": src, "type": m[0], "code": m[1]})
                break
        s.setblocking(False)
        try:
            s.recv(2048)
        except ConnectionRefusedError:
            refused = True
        except BlockingIOError:
            pass
        s.setblocking(True)
        if errors:
            break
        time.sleep(a.interval)
    ok = any(e["type"] == 1 and e["code"] == 4 for e in errors)
    print(json.dumps({"ok": ok, "errors": errors, "econnrefused": refused}))
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dst", required=True)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--interval", type=float, default=0.2)
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--count", type=int, default=3)
    e.add_argument("--hop-limit", type=int, default=0)
    u = sub.add_parser("udp")
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--count", type=int, default=3)
    a = ap.parse_args()
    ok = echo(a) if a.what == "echo" else udp(a)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
