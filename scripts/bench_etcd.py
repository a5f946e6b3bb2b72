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

With --beside KIND, Baton's own handover (KIND `handover`: two `baton campaign`, see bench_handover.py;
`handover-run`: two `baton run`, see bench_handover_run.py) is measured in the same loop: each round runs Baton's,
then etcdctl elect's, then (for `handover-run`) etcdctl lock's, so that a change in the machine's load weighs on
all of them alike.

Usage: bench_etcd.py ETCDCTL ENDPOINT ROUNDS [--lock]
       bench_etcd.py --beside KIND BATON_BINARY STORE_URL ETCDCTL ENDPOINT ROUNDS
Prints one JSON object: the percentiles (through baton-bench summary) and the samples; with --beside, Baton's,
with the peers in it.
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


def one_round(etcdctl, endpoint, key, round_number, lock=False):
    """One handover between two etcdctl processes; returns the milliseconds from the SIGINT to reading B's line."""
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
    return (led - sent) / 1e6


def peer_result(samples, lock):
    return {
        "name": "handover-etcdctl-lock" if lock else "handover-etcdctl",
        "scenario": "graceful handover with etcdctl lock -- CMD (SIGINT to the leader's group until the successor's "
                    "command runs)" if lock else
                    "graceful handover with etcdctl elect (SIGINT to the leader until the successor prints its proposal)",
        "store": "etcd",
        **summarize(samples),
        "samples_ms": [round(s, 2) for s in samples],
    }


def beside(kind, binary, store, etcdctl, endpoint, rounds):
    """Baton's handover (`handover`: the library; `handover-run`: baton run) and etcdctl's, round by round in
    turn, so that the machine's load weighs on both alike. Returns Baton's result with the peers in it."""
    import bench_handover
    import bench_handover_run
    ours, elect_samples, lock_samples = [], [], []
    key = f"bench-beside-{os.getpid()}"
    for round_number in range(rounds + 1):
        if kind == "handover":
            sample = bench_handover.one_round(binary, store, f"{key}-baton", round_number)
        else:
            sample = bench_handover_run.one_round(binary, store, f"{key}-baton", round_number)
        peer = one_round(etcdctl, endpoint, f"{key}-elect", round_number)
        lock = one_round(etcdctl, endpoint, f"{key}-lock", round_number, lock=True) if kind == "handover-run" else None
        if round_number > 0:  # the first round is a warm-up
            ours.append(sample)
            elect_samples.append(peer)
            if lock is not None:
                lock_samples.append(lock)
    if kind == "handover":
        result = bench_handover.result(store, ours)
    else:
        result = bench_handover_run.result(store, ours, rounds)
    peer = peer_result(elect_samples, lock=False)
    result.update({"peer": "etcdctl elect", "peer_samples_ms": peer["samples_ms"],
                   **{"peer_" + k: v for k, v in peer.items() if k.endswith("_ms") and k != "samples_ms"},
                   "peer_rounds": peer["rounds"], "interleaved": True})
    if lock_samples:
        result["second_peer"] = {"peer": "etcdctl lock -- CMD", **peer_result(lock_samples, lock=True)}
    return result


def main():
    if sys.argv[1] == "--beside":
        kind, binary, store, etcdctl, endpoint, rounds = sys.argv[2:8]
        print(json.dumps(beside(kind, binary, store, etcdctl, endpoint, int(rounds))))
        return
    etcdctl, endpoint, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lock = sys.argv[4:] == ["--lock"]
    key = f"bench-handover-etcdctl-{os.getpid()}"
    samples = [one_round(etcdctl, endpoint, key, n, lock) for n in range(rounds + 1)][1:]
    print(json.dumps(peer_result(samples, lock)))


if __name__ == "__main__":
    main()
