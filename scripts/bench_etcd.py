#!/usr/bin/env python3
"""Graceful handover between two etcdctl processes on one etcd, measured like bench_handover_run.py measures
`baton run`.

Default, `etcdctl elect`: process A runs `etcdctl elect KEY a` and prints its proposal when it leads; process B
runs `etcdctl elect KEY b` and waits (its key is in the queue: the election has two keys). The script then sends A
a SIGINT: etcdctl resigns (deletes its key) and exits; B leads and prints its proposal. The figure is the time, on
this host's monotonic clock, from sending the signal to reading B's proposal.

With --lock, `etcdctl lock KEY -- CMD`, etcd's own way to run a command while holding a key, with the command of
bench_handover_run.py (`sh -c 'echo started; exec sleep 1000'`): A's command has started; the script sends
SIGINT to A's process group (etcdctl and its command, as Ctrl-C in a terminal does; etcdctl does not stop its
command itself), the command ends, etcdctl unlocks, and B's etcdctl starts its command. The figure is the time
from the signal to reading the line of B's command.

Each round uses fresh processes; the first round is a warm-up and is not counted.

Usage: bench_etcd.py ETCDCTL ENDPOINT ROUNDS [--lock]
Prints one JSON object: the percentiles (through baton-bench summary) and the samples.
"""
import json
import os
import signal
import subprocess
import sys
import time

from benchlib import read_line, summarize


COMMAND = ["sh", "-c", "echo started; exec sleep 1000"]


def elect(etcdctl, endpoint, key, proposal, lock):
    if lock:
        arguments = [etcdctl, "--endpoints", endpoint, "lock", key, "--"] + COMMAND
    else:
        arguments = [etcdctl, "--endpoints", endpoint, "elect", key, proposal]
    return subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)


def read_until(process, text, what, timeout=30.0):
    """Reads the process's output until a line equals `text`, failing after `timeout` seconds (with the same
    reader as the drivers of Baton's scenarios)."""
    deadline = time.monotonic() + timeout
    while read_line(process.stdout, what, deadline - time.monotonic()).rstrip("\n") != text:
        pass


def candidate_keys(etcdctl, endpoint, key):
    out = subprocess.run([etcdctl, "--endpoints", endpoint, "get", "--prefix", "--keys-only", key + "/"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def main():
    etcdctl, endpoint, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lock = sys.argv[4:] == ["--lock"]
    samples = []
    key = f"bench-handover-etcdctl-{os.getpid()}"
    for round_number in range(rounds + 1):
        a = elect(etcdctl, endpoint, key, f"a{round_number}", lock)
        read_until(a, "started" if lock else f"a{round_number}", "A to lead")
        b = elect(etcdctl, endpoint, key, f"b{round_number}", lock)
        deadline = time.monotonic() + 30
        while len(candidate_keys(etcdctl, endpoint, key)) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("B never queued")
            time.sleep(0.01)
        time.sleep(0.2)  # let B set up its watch of A's key, as the baton run benchmark lets B subscribe
        sent = time.monotonic_ns()
        if lock:
            os.killpg(a.pid, signal.SIGINT)
        else:
            a.send_signal(signal.SIGINT)
        read_until(b, "started" if lock else f"b{round_number}", "B to lead")
        led = time.monotonic_ns()
        a.wait(timeout=30)
        if lock:
            os.killpg(b.pid, signal.SIGINT)
        else:
            b.send_signal(signal.SIGINT)
        b.wait(timeout=30)
        if round_number > 0:
            samples.append((led - sent) / 1e6)
    print(json.dumps({
        "name": "handover-etcdctl-lock" if lock else "handover-etcdctl",
        "scenario": "graceful handover with etcdctl lock -- CMD (SIGINT to the leader's group until the successor's "
                    "command runs)" if lock else
                    "graceful handover with etcdctl elect (SIGINT to the leader until the successor prints its proposal)",
        "store": "etcd",
        **summarize(samples),
        "samples_ms": [round(s, 2) for s in samples],
    }))


if __name__ == "__main__":
    main()
