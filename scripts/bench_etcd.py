#!/usr/bin/env python3
"""Graceful handover between two `etcdctl elect` processes on one etcd, measured like bench_handover_run.py
measures `baton run`.

Process A runs `etcdctl elect KEY a` and prints its proposal when it leads; process B runs `etcdctl elect KEY b`
and waits (its key is in the queue: the election has two keys). The script then sends A a SIGINT: etcdctl
resigns (deletes its key) and exits; B leads and prints its proposal. The figure is the time, on this host's
monotonic clock, from sending the signal to reading B's proposal. Each round uses fresh processes; the first round
is a warm-up and is not counted.

Usage: bench_etcd.py ETCDCTL ENDPOINT ROUNDS
Prints one JSON object: the percentiles (through baton-bench summary) and the samples.
"""
import json
import os
import select
import signal
import subprocess
import sys
import time

from benchlib import summarize


def elect(etcdctl, endpoint, key, proposal):
    return subprocess.Popen(
        [etcdctl, "--endpoints", endpoint, "elect", key, proposal],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def read_until(process, text, what, timeout=30.0):
    """Reads the process's output until a line equals `text`, failing after `timeout` seconds. Reads the pipe
    unbuffered, so a line that arrived with an earlier one is not left unseen in a buffer."""
    deadline = time.monotonic() + timeout
    fd = process.stdout.fileno()
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise RuntimeError(f"timed out waiting for {what}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"the process ended before {what}")
        pending += chunk
        if text.encode() in pending.split(b"\n"):
            return


def candidate_keys(etcdctl, endpoint, key):
    out = subprocess.run([etcdctl, "--endpoints", endpoint, "get", "--prefix", "--keys-only", key + "/"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def main():
    etcdctl, endpoint, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    samples = []
    key = f"bench-handover-etcdctl-{os.getpid()}"
    for round_number in range(rounds + 1):
        a = elect(etcdctl, endpoint, key, f"a{round_number}")
        read_until(a, f"a{round_number}", "A to lead")
        b = elect(etcdctl, endpoint, key, f"b{round_number}")
        deadline = time.monotonic() + 30
        while len(candidate_keys(etcdctl, endpoint, key)) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("B never queued")
            time.sleep(0.01)
        time.sleep(0.2)  # let B set up its watch of A's key, as the baton run benchmark lets B subscribe
        sent = time.monotonic_ns()
        a.send_signal(signal.SIGINT)
        read_until(b, f"b{round_number}", "B to lead")
        led = time.monotonic_ns()
        a.wait(timeout=30)
        b.send_signal(signal.SIGINT)
        b.wait(timeout=30)
        if round_number > 0:
            samples.append((led - sent) / 1e6)
    print(json.dumps({
        "name": "handover-etcdctl",
        "scenario": "graceful handover with etcdctl elect (SIGINT to the leader until the successor prints its proposal)",
        "store": "etcd",
        **summarize(samples),
        "samples_ms": [round(s, 2) for s in samples],
    }))


if __name__ == "__main__":
    main()
