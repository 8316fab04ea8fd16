#!/usr/bin/env python3
"""churn.py - short TCP connections for natalg's load test.

  churn.py serve ADDR PORT            accept connections, read to EOF, close
  churn.py run ADDR PORT COUNT SECS   open COUNT connections one after another
                                      (each: connect, send a byte, half-close,
                                      wait for the server's close); stop at
                                      SECS; print a JSON summary
"""
import json, socket, sys, time


def serve(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(512)
    while True:
        c, _ = s.accept()
        c.settimeout(5)
        try:
            while c.recv(4096):
                pass
        except OSError:
            pass
        c.close()


def run(addr, port, count, secs):
    t0 = time.monotonic()
    done = failed = 0
    for _ in range(count):
        if time.monotonic() - t0 > secs:
            break
        try:
            c = socket.create_connection((addr, port), timeout=5)
            c.sendall(b"x")
            c.shutdown(socket.SHUT_WR)
            c.settimeout(5)
            while c.recv(4096):
                pass
            c.close()
            done += 1
        except OSError:
            failed += 1
    print(json.dumps({"done": done, "failed": failed, "seconds": round(time.monotonic() - t0, 3)}))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
