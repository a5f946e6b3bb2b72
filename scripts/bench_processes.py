#!/usr/bin/env python3
"""Many waiting processes on one key: who leads next, how fast, and what a release costs the store's server.

PROCESSES `baton campaign` processes campaign for one key (ttl 60 s), started one after the other, each once the
one before it waits, so the order in which they asked is known. RELEASES times the leader gets SIGTERM; the next
leader is timed from the signal to the CLOCK_MONOTONIC stamp of its "elected" event (`read_median_ms`: to when
this script read that line, behind the other 49 processes' output), and compared with the order of asking (an
inversion is a release whose next leader is not the first still waiting). The process that left starts again and
asks last.

Store requests per release are counted at the server over the window from the signal to the new leader's
"elected" line: Redis `INFO commandstats` (scripts run: every store operation is one; the connections' `PING`
probes, sent every half second whatever happens, are left out), etcd's `/metrics` (gRPC messages received, every
method), PostgreSQL's log of statements (`log_statement=all`: each statement a client sent, the keep-alive
`SELECT 1` of listening connections left out; PostgreSQL's statistics views are flushed only about once a
second). A waiter also asks again every 20 s (a third of the ttl) to keep its place; a window of a few
milliseconds rarely holds one, and the median ignores it.

Usage: bench_processes.py BATON STORE_URL PROCESSES RELEASES [ETCD_METRICS_URL | POSTGRES_LOG]
Prints one JSON object.
"""
import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

from benchlib import store_name


class Candidate:
    def __init__(self, binary, url, key, name):
        self.name = name
        self.process = subprocess.Popen(
            [binary, "campaign", "--store", url, key, "--id", name, "--ttl", "60s"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.pending = b""

    def lines(self):
        """The complete lines read so far without waiting."""
        fd = self.process.stdout.fileno()
        out = []
        while True:
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.pending += chunk
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            out.append(json.loads(line))
        return out


def wait_for(candidates, event, timeout=30.0):
    """Waits until one of `candidates` prints `event`; returns that candidate, when it was read and the event."""
    deadline = time.monotonic() + timeout
    fds = {c.process.stdout.fileno(): c for c in candidates}
    while time.monotonic() < deadline:
        for candidate in candidates:
            for record in candidate.lines():
                if record.get("event") == event:
                    return candidate, time.monotonic(), record
        select.select(list(fds), [], [], max(0.0, deadline - time.monotonic()))
    raise RuntimeError(f"no {event} within {timeout} s")


def redis_calls(port):
    """Scripts run (every store operation on Redis is one; commandstats also counts the commands inside them)."""
    output = subprocess.check_output(["redis-cli", "-p", port, "INFO", "commandstats"], text=True)
    return sum(int(m.group(2)) for m in re.finditer(r"cmdstat_(\w+):calls=(\d+)", output)
               if m.group(1) in ("evalsha", "eval"))


def etcd_messages(metrics_url):
    """gRPC messages etcd received, by method."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    counts = {}
    for m in re.finditer(r"^grpc_server_msg_received_total\{([^}]*)\} ([0-9.e+]+)$", text, re.M):
        method = re.search(r'grpc_method="([^"]*)"', m.group(1))
        name = method.group(1) if method else "?"
        counts[name] = counts.get(name, 0) + float(m.group(2))
    return counts


def postgres_statements(log_path):
    """Statements clients sent, as the server logged them (a statement's first line only)."""
    count = 0
    with open(log_path, errors="replace") as log:
        for line in log:
            match = re.search(r"LOG:  (?:statement|execute [^:]*): (.*)$", line)
            if match and not match.group(1).strip().upper().startswith(("SELECT 1", "LISTEN")):
                count += 1
    return count


def main():
    binary, url, count, releases = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    metrics = sys.argv[5] if len(sys.argv) > 5 else None
    store = store_name(url)
    counter = None
    if store == "redis":
        port = url.rsplit(":", 1)[1].split("/")[0]
        counter = lambda: redis_calls(port)
    elif store == "etcd" and metrics:
        counter = lambda: etcd_messages(metrics)
    elif store == "postgres" and metrics:
        counter = lambda: postgres_statements(metrics)
    key = f"bench-processes-{uuid.uuid4().hex[:8]}"
    order = []
    try:
        first = Candidate(binary, url, key, "p0")
        wait_for([first], "elected")
        order.append(first)
        for index in range(1, count):
            candidate = Candidate(binary, url, key, f"p{index}")
            wait_for([candidate], "following")
            order.append(candidate)
        time.sleep(0.5)
        latencies, read_latencies, requests, inversions = [], [], [], 0
        by_method = {}
        for release in range(releases):
            leader, expected = order[0], order[1]
            before = counter() if counter else None
            start_ns = time.monotonic_ns()
            start = time.monotonic()
            leader.process.send_signal(signal.SIGTERM)
            winner, seen, event = wait_for(order[1:], "elected")
            # The new leader stamps its "elected" event with CLOCK_MONOTONIC, the clock of time.monotonic_ns():
            # the latency is Baton's, without the time this script takes to read 50 processes' output.
            latencies.append((event["monotonic_ns"] - start_ns) / 1e6)
            read_latencies.append((seen - start) * 1000)
            if counter:
                if store == "postgres":
                    time.sleep(0.05)  # the server writes its log line as it runs a statement; let it land
                after = counter()
                if isinstance(after, dict):
                    delta = {name: after[name] - before.get(name, 0) for name in after}
                    for name, value in delta.items():
                        if value:
                            by_method.setdefault(name, []).append(value)
                    requests.append(sum(delta.values()))
                else:
                    requests.append(after - before)
            if winner is not expected:
                inversions += 1
            leader.process.wait(timeout=30)
            rest = [c for c in order[1:] if c is not winner]
            # The one that left asks again, last.
            again = Candidate(binary, url, key, f"p{count + release}")
            wait_for([again], "following")
            order = [winner] + rest + [again]
            # What the new process and the one that left still send (a watch, a lease revoked) is not the next
            # release's.
            time.sleep(0.3)
        result = {
            "name": f"processes-{store}", "kind": "processes", "store": store,
            "scenario": f"{count} waiting processes on one key: the next leader, its order and the server's requests",
            "processes": count, "releases": releases, "inversions": inversions,
            "median_ms": round(statistics.median(latencies), 2),
            "p90_ms": round(sorted(latencies)[int(len(latencies) * 0.9)], 2),
            "read_median_ms": round(statistics.median(read_latencies), 2),
        }
        if requests:
            result["server_requests_per_release_median"] = statistics.median(requests)
            result["server_requests_per_release_max"] = max(requests)
        if by_method:
            # Each method's messages per release, over all releases (a method absent from a release counts 0).
            result["server_requests_by_method"] = {name: round(sum(values) / releases, 2)
                                                   for name, values in sorted(by_method.items())}
        print(json.dumps(result))
    finally:
        for candidate in order:
            if candidate.process.poll() is None:
                candidate.process.send_signal(signal.SIGTERM)
        for candidate in order:
            try:
                candidate.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                candidate.process.kill()


if __name__ == "__main__":
    main()
