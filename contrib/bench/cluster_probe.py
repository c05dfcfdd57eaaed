#!/usr/bin/env python3
"""contrib/bench/cluster_probe.py - the client's view for contrib/bench/cluster.sh.

  cluster_probe.py window PORT PATH SECONDS START_FILE
      PUTs to http://127.0.0.1:PORT/PATH back to back (a 2 s timeout each, a new value each
      time) for SECONDS, and prints the longest stretch without an acknowledged write that
      began after START_FILE appeared (the event: a kill, a failover), as
      "window_ms=N failed=F ok=K" (N is from the last acknowledged write before the first
      failure to the first one after it: what a client of edgekv sees).
  cluster_probe.py propagation PORT_A PORT_B PATH N
      N times: warms PATH on POP B (GET until a hit), PUTs a new value through POP A, then GETs
      through B back to back until B answers it; prints "p50_ms=.. p99_ms=.. max_ms=.. n=N"
      of the time from A's acknowledgement to B's first answer with the new value.
"""
import http.client
import os
import sys
import time


def conn(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=2)


def request(c, method, path, body=None):
    """(status, body, headers) or None when the connection failed."""
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
        return r.status, data, r
    except (OSError, http.client.HTTPException):
        c.close()
        return None


def window(port, path, seconds, start_file):
    c = conn(port)
    end = time.monotonic() + seconds
    last_ok = None
    outage_start = None
    longest = 0.0
    ok = failed = 0
    n = 0
    while time.monotonic() < end:
        n += 1
        res = request(c, "PUT", path, b"w%d" % n)
        now = time.monotonic()
        if res is not None and res[0] == 200:
            ok += 1
            if outage_start is not None:
                longest = max(longest, now - outage_start)
                outage_start = None
            last_ok = now
        else:
            failed += 1
            if outage_start is None and os.path.exists(start_file):
                outage_start = last_ok if last_ok is not None else now
            if res is None:
                c = conn(port)
            time.sleep(0.005)
    if outage_start is not None:
        longest = max(longest, time.monotonic() - outage_start)
        print("window_ms=%d failed=%d ok=%d (still failing at the end)"
              % (longest * 1000, failed, ok))
        return
    print("window_ms=%d failed=%d ok=%d" % (longest * 1000, failed, ok))


def propagation(port_a, port_b, path, n):
    a, b = conn(port_a), conn(port_b)
    samples = []
    for i in range(n):
        value = b"p%d-%d" % (os.getpid(), i)
        for _ in range(200):  # warm B: a hit
            res = request(b, "GET", path)
            if res is None:
                b = conn(port_b)
                continue
            cs = res[2].getheader("Cache-Status") or ""
            if "; hit" in cs:
                break
        res = request(a, "PUT", path, value)
        if res is None or res[0] != 200:
            print("PUT failed: %r" % (res[0] if res else None), file=sys.stderr)
            sys.exit(1)
        t0 = time.monotonic()
        while True:
            res = request(b, "GET", path)
            if res is None:
                b = conn(port_b)
                continue
            if res[1] == value:
                break
            if time.monotonic() - t0 > 5:
                print("POP B never saw the write", file=sys.stderr)
                sys.exit(1)
        samples.append((time.monotonic() - t0) * 1000)
    samples.sort()

    def pct(p):
        return samples[min(len(samples) - 1, int(round(p / 100.0 * (len(samples) - 1))))]

    print("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f n=%d" % (pct(50), pct(99), samples[-1], n))


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "window":
        window(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) == 6 and sys.argv[1] == "propagation":
        propagation(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
