#!/usr/bin/env python3
"""Graceful handover between two `baton run` processes on one store.

Process A runs `baton run` and its command starts; process B runs `baton run` for the same key and waits (it
prints "waiting: ..." on standard error). The script then sends A a SIGTERM: A forwards it to its command, which
ends, releases the key and exits; B is elected and starts its command. Each command prints "started" as soon as
it runs (`sh -c 'echo started; exec sleep 1000'`), and the figure is the time, on this host's monotonic clock,
from sending the signal to reading B's line. It includes starting sh, which is measured on its own (without
baton) and reported as `command_start_ms`. Each round uses fresh processes; the first round is a warm-up and is
not counted.

Usage: bench_handover_run.py BATON_BINARY STORE_URL ROUNDS
Prints one JSON object: the percentiles (through baton-bench summary), the samples and "command_start_ms".
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time

from benchlib import read_line, store_name, summarize

COMMAND = ["sh", "-c", "echo started; exec sleep 1000"]


def start(binary, store, key, holder):
    return subprocess.Popen(
        [binary, "run", "--store", store, "--key", key, "--id", holder, "--ttl", "10s", "--"] + COMMAND,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def wait_for_stderr(process, text, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        line = read_line(process.stderr, repr(text), deadline - time.monotonic())
        if text in line:
            return line


def command_start_ms(rounds):
    """The median time from starting the command to reading its line, without baton."""
    samples = []
    for _ in range(rounds):
        before = time.monotonic_ns()
        child = subprocess.Popen(COMMAND, stdout=subprocess.PIPE, text=True)
        read_line(child.stdout, "the command's line")
        printed = time.monotonic_ns()
        child.kill()
        child.wait()
        samples.append((printed - before) / 1e6)
    return round(statistics.median(samples), 2)


def one_round(binary, store, key, round_number):
    """One handover between two `baton run` processes; returns the milliseconds from the SIGTERM to reading the
    line of B's command."""
    a = start(binary, store, key, f"a{round_number}")
    read_line(a.stdout, "A's command to start")
    b = start(binary, store, key, f"b{round_number}")
    wait_for_stderr(b, "waiting:")
    time.sleep(0.2)  # let B finish subscribing to the change feed
    sent = time.monotonic_ns()
    a.send_signal(signal.SIGTERM)
    read_line(b.stdout, "B's command to start")
    started = time.monotonic_ns()
    a.wait(timeout=30)
    b.send_signal(signal.SIGTERM)
    b.wait(timeout=30)
    if a.returncode != 128 + signal.SIGTERM or b.returncode != 128 + signal.SIGTERM:
        raise RuntimeError(f"unexpected exit statuses {a.returncode} and {b.returncode}")
    return (started - sent) / 1e6


def main():
    binary, store, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    samples = []
    key = f"bench-handover-run-{os.getpid()}"
    for round_number in range(rounds + 1):
        sample = one_round(binary, store, key, round_number)
        if round_number > 0:
            samples.append(sample)
    print(json.dumps(result(store, samples, rounds)))


def result(store, samples, rounds):
    """The scenario's JSON object for these samples."""
    store = store_name(store)
    return {
        "name": f"handover-run-{store}",
        "kind": "handover",
        "scenario": "graceful handover, `baton run` (SIGTERM to the leader until the successor's command runs)",
        "store": store,
        **summarize(samples),
        "samples_ms": [round(s, 2) for s in samples],
        "command_start_ms": command_start_ms(max(5, rounds)),
    }


if __name__ == "__main__":
    main()
