#!/usr/bin/env python3
"""Graceful handover between two `baton campaign` processes on one store.

Process A campaigns and is elected; process B campaigns and waits, following A. The script then sends A a
SIGTERM (A resigns: it releases the key and exits) and measures, on the host's monotonic clock, the time from
sending the signal to B printing that it was elected. Each round uses fresh processes; the first round is a
warm-up and is not counted.

With KILL as the fourth argument A gets SIGKILL instead (a crash: nothing is released, B waits for the term to
run out by the store's rules), which measures failover. TTL (default 10s) is the campaigns' --ttl, NOTE is added
to the scenario's description (for example the poll interval of a store that polls).

Usage: bench_handover.py BATON_BINARY STORE_URL ROUNDS [TERM|KILL [TTL [NOTE]]]
Prints one JSON object: {"scenario", "store", "rounds", "median_ms", "p90_ms", "min_ms", "max_ms", "samples_ms"}.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time


def start(binary, store, key, holder, ttl):
    return subprocess.Popen(
        [binary, "campaign", key, "--store", store, "--id", holder, "--ttl", ttl],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )


def wait_for(process, event, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited before printing {event!r}")
        record = json.loads(line)
        if record.get("event") == event:
            return record
    raise RuntimeError(f"timed out waiting for {event!r}")


def main():
    binary, store, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    crash = len(sys.argv) > 4 and sys.argv[4] == "KILL"
    ttl = sys.argv[5] if len(sys.argv) > 5 else "10s"
    note = sys.argv[6] if len(sys.argv) > 6 else ""
    samples = []
    key = f"bench-handover-{os.getpid()}"
    for round_number in range(rounds + 1):
        a = start(binary, store, key, f"a{round_number}", ttl)
        wait_for(a, "elected")
        b = start(binary, store, key, f"b{round_number}", ttl)
        wait_for(b, "following")
        time.sleep(0.2)  # let B finish subscribing to the change feed
        sent = time.monotonic_ns()
        a.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        elected = wait_for(b, "elected")
        a.wait(timeout=30)
        b.send_signal(signal.SIGTERM)
        b.wait(timeout=30)
        if round_number > 0:
            samples.append((elected["monotonic_ns"] - sent) / 1e6)
    samples.sort()
    kind = {"postgresql": "postgres"}.get(store.split(":", 1)[0], store.split(":", 1)[0])
    scenario = "failover after SIGKILL (process to process)" if crash else "graceful handover (process to process)"
    if len(sys.argv) > 5:
        scenario += f", ttl {ttl}" + (f", {note}" if note else "")
    print(json.dumps({
        "name": ("failover-" if crash else "handover-") + kind,
        "scenario": scenario,
        "store": store.split(":", 1)[0],
        "rounds": len(samples),
        "median_ms": round(statistics.median(samples), 2),
        "p90_ms": round(samples[int(0.9 * (len(samples) - 1))], 2),
        "min_ms": round(samples[0], 2),
        "max_ms": round(samples[-1], 2),
        "samples_ms": [round(s, 2) for s in samples],
    }))


if __name__ == "__main__":
    main()
