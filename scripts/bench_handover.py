#!/usr/bin/env python3
"""Handover between two `baton campaign` processes on one store: graceful, or a crash of the leader.

Process A campaigns and is elected; process B campaigns and waits, following A. The script then sends A a
signal and measures, on the host's monotonic clock, the time from sending it to reading B's line saying that it
was elected (read as the etcdctl peer's line is, see benchlib.read_line):
- graceful (SIGTERM): A resigns, releasing the key, and exits; B follows the store's change feed;
- crash (--kill, SIGKILL): A dies holding the lease; B is elected once the lease expires in the store. A renews
  every ttl/3, so the expiry comes between 2/3 ttl and one ttl after the kill: failover cannot beat that bound.
Each round uses fresh processes; the first round is a warm-up and is not counted.

Usage: bench_handover.py BATON_BINARY STORE_URL ROUNDS [--kill] [--ttl DURATION]
Prints one JSON object with the percentiles (through baton-bench summary) and the samples.
"""
import argparse
import json
import os
import signal
import subprocess
import time

from benchlib import store_name, summarize, wait_for_event


def start(binary, store, key, holder, ttl):
    return subprocess.Popen(
        [binary, "campaign", key, "--store", store, "--id", holder, "--ttl", ttl],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )


def seconds(duration):
    value, unit = (duration[:-2], 0.001) if duration.endswith("ms") else (duration[:-1], 1.0)
    return float(value) * unit


def one_round(binary, store, key, round_number, ttl="10s", kill=False):
    """One handover (or, with `kill`, failover): A leads, B follows, A gets SIGTERM (SIGKILL); returns the
    milliseconds from the signal to reading B's "elected" line."""
    ttl_s = seconds(ttl)
    a = start(binary, store, key, f"a{round_number}", ttl)
    wait_for_event(a, "elected")
    b = start(binary, store, key, f"b{round_number}", ttl)
    wait_for_event(b, "following")
    time.sleep(0.2 if not kill else 0.2 + (round_number * 0.37 % 1.0) * ttl_s / 3)
    sent = time.monotonic_ns()
    a.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    wait_for_event(b, "elected", timeout=30 + 3 * ttl_s)
    read = time.monotonic_ns()
    a.wait(timeout=30)
    b.send_signal(signal.SIGTERM)
    b.wait(timeout=30)
    return (read - sent) / 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("store")
    parser.add_argument("rounds", type=int)
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("--ttl", default="10s")
    arguments = parser.parse_args()
    samples = []
    key = f"bench-{'failover' if arguments.kill else 'handover'}-{os.getpid()}"
    # A crash is measured from a random point of the renew cycle, as a real crash would be.
    warmup = 0 if arguments.kill else 1
    for round_number in range(arguments.rounds + warmup):
        sample = one_round(arguments.binary, arguments.store, key, round_number, arguments.ttl, arguments.kill)
        if round_number >= warmup:
            samples.append(sample)
    print(json.dumps(result(arguments.store, samples, arguments.kill, arguments.ttl)))


def result(store, samples, kill=False, ttl="10s"):
    """The scenario's JSON object for these samples."""
    store = store_name(store)
    result = {
        "name": f"{'failover' if kill else 'handover'}-{store}",
        "store": store,
        "samples_ms": [round(s, 2) for s in samples],
        **summarize(samples),
    }
    if kill:
        result.update(kind="failover", ttl_s=seconds(ttl),
                      scenario=f"crash failover, ttl {ttl} (kill -9 of the leader until the successor is elected)")
    else:
        result.update(kind="handover", scenario="graceful handover, library (SIGTERM to the leader's `baton campaign` "
                                                "until the successor is elected)")
    return result


if __name__ == "__main__":
    main()
