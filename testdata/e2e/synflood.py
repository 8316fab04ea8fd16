#!/usr/bin/python3
"""synflood.py - a flood of new TCP flows from the inside host (natalg
security end-to-end tests, cmd/natalg/attack_e2e_test.go).

  synflood.py HOST PORT COUNT SECS

Opens COUNT TCP connections to HOST, destination ports PORT, PORT+1, ...
(each a new flow through the NAT), spread evenly over SECS seconds, without
waiting for any to complete: a non-blocking connect() sends the SYN, and the
socket is closed a batch later (a closed SYN-SENT socket sends nothing
more). Bounded: COUNT at most 20000, SECS at most 30, ports at most 65535,
HOST only in the test ranges 198.18.0.0/15, fd00::/8 or 2001:db8::/32; it
stops after SECS + 10 seconds whatever happened. Prints one JSON object:
sent (connect() calls that sent a SYN), errors, seconds.
"""
import errno
import ipaddress
import json
import socket
import sys
import time

TEST_NETS = [ipaddress.ip_network(n) for n in ("198.18.0.0/15", "fd00::/8", "2001:db8::/32")]
BATCH = 100


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    host, port, count, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    addr = ipaddress.ip_address(host)
    if not any(addr in n for n in TEST_NETS):
        sys.exit("%s is not in a test range" % host)
    if not (0 < count <= 20000 and 0 < secs <= 30 and 0 < port and port + count - 1 <= 65535):
        sys.exit("COUNT (1-20000), SECS (0-30] or ports out of range")
    fam = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    t0 = time.monotonic()
    sent = errors = 0
    last = ""
    open_socks = []
    for i in range(count):
        if time.monotonic() - t0 > secs + 10:
            break
        # pace: connection i leaves at i/count of SECS
        ahead = t0 + secs * i / count - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((host, port + i))
        if rc in (0, errno.EINPROGRESS):
            sent += 1
        else:
            errors += 1
            last = errno.errorcode.get(rc, str(rc))
        open_socks.append(s)
        if len(open_socks) >= BATCH:
            for x in open_socks:
                x.close()
            open_socks = []
    for x in open_socks:
        x.close()
    print(json.dumps({"sent": sent, "errors": errors, "last_error": last,
                      "seconds": round(time.monotonic() - t0, 3)}))


if __name__ == "__main__":
    main()
