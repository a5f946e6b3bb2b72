#!/usr/bin/env python3
"""10,000 idle Server-Sent Events watchers on one `baton serve`, and a client that stops reading.

Starts one `baton serve` (the release build) on a free loopback port with a fresh SQLite store and
`--write-timeout WRITE_TIMEOUT`, then:

1. opens WATCHERS event streams (`GET /v2/leases/watch-N/watch`), each on its own connection and key, from one
   asyncio process, 200 connections at a time; each counts as open once its first `leader` event arrived. The
   streams stay open and idle (only keep-alive comments flow) for the rest of the scenario;
2. reads the server's resident memory (VmRSS) before the watchers and with all of them open, and checks its
   `baton_http_open_streams` gauge;
3. times WATCHERS_ALIVE sequential `GET /alive` requests on one keep-alive connection from a separate process
   (so the watchers' event loop does not weigh on the timing): p50, p99;
4. slow reader: one more stream on a socket with a 4 KiB receive buffer that never reads; leader changes with
   4 KiB of metadata each are made on its key as fast as one client can (acquire, release, ...), until the
   server's `baton_http_write_timeouts_total` counts it. Reports the time from the first change made after the
   client stopped reading to the server closing the connection. That includes the time the kernel keeps taking
   the stream's bytes into the socket's send buffer (which grows to megabytes; its largest size, read from
   /proc/net/tcp, is reported): the write timeout runs from a write that the kernel does not take in full.

Usage: bench_watchers.py BATON_BINARY WORK_DIR WATCHERS [WRITE_TIMEOUT_S]
Prints one JSON line per result: {"kind": "watchers", ...} and {"kind": "slow-reader", ...}.
"""
import asyncio
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time

ALIVE_REQUESTS = 2000

ALIVE_TIMER = """
import http.client, json, sys, time
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
samples = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    connection.request("GET", "/alive")
    answer = connection.getresponse()
    answer.read()
    samples.append((time.perf_counter() - start) * 1000)
    assert answer.status == 200, answer.status
print(json.dumps(samples))
"""


def start_server(binary, store, write_timeout_s, watchers):
    process = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", "0", "--store", store,
         "--write-timeout", f"{int(write_timeout_s * 1000)}ms", "--max-streams", str(watchers + 10)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        match = re.search(r"listening on http://([0-9.]+):(\d+)", line)
        if match:
            return process, int(match.group(2))
    process.kill()
    raise RuntimeError("baton serve did not start")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.MULTILINE).group(1))
    return round(kib / 1024, 1)


def metric(port, series):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def percentile(samples, fraction):
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)


async def open_watcher(port, key, opened):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /v2/leases/{key}/watch HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    received = b""
    while b"event: leader" not in received:
        chunk = await reader.read(4096)
        if not chunk:
            raise RuntimeError(f"the stream of {key} ended: {received[:200]!r}")
        received += chunk
    if not received.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the stream of {key} was refused: {received[:200]!r}")
    opened.append(writer)
    # Idle from now on: read the keep-alive comments as they come, until the scenario closes the connection.
    while await reader.read(4096):
        pass


async def watchers_scenario(port, pid, count):
    opened = []
    tasks = []
    started = time.monotonic()
    # In batches of 200, each opened before the next starts, so the listen backlog never overflows.
    for batch in range(0, count, 200):
        for index in range(batch, min(count, batch + 200)):
            tasks.append(asyncio.create_task(open_watcher(port, f"watch-{index}", opened)))
        while len(opened) < min(count, batch + 200):
            failed = [t for t in tasks[batch:] if t.done() and not t.cancelled() and t.exception()]
            if failed:
                raise failed[0].exception()
            await asyncio.sleep(0.01)
    open_s = round(time.monotonic() - started, 1)
    await asyncio.sleep(5)  # settle
    rss = rss_mib(pid)
    streams = await asyncio.to_thread(metric, port, "baton_http_open_streams")
    timer = await asyncio.create_subprocess_exec(sys.executable, "-c", ALIVE_TIMER, str(port), str(ALIVE_REQUESTS),
                                                 stdout=asyncio.subprocess.PIPE)
    output, _ = await timer.communicate()
    samples = json.loads(output)
    for writer in opened:
        writer.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"open_s": open_s, "rss_mib": rss, "open_streams": streams, "alive_requests": len(samples),
            "alive_p50_ms": percentile(samples, 0.50), "alive_p99_ms": percentile(samples, 0.99)}


def send_queue(server_port, client_port):
    """Bytes in the server's send queue of its connection to `client_port` (from /proc/net/tcp), or None."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                return int(queues.split(":")[0], 16)
    return None


def slow_reader(port, write_timeout_s):
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))
    slow.sendall(b"GET /v2/leases/slow-reader/watch HTTP/1.1\r\nHost: localhost\r\n\r\n")
    before = metric(port, "baton_http_write_timeouts_total") or 0
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    metadata = "m" * 4096
    changes = 0
    started = time.monotonic()
    closed_at = None
    client_port = slow.getsockname()[1]
    # How much the kernel took for the slow client before the close: the server's send queue at its largest.
    largest = 0
    while time.monotonic() - started < 120:
        body = json.dumps({"holder": f"h{changes}", "ttl_ms": 60000, "metadata": metadata})
        client.request("POST", "/v2/leases/slow-reader", body=body, headers={"Content-Type": "application/json"})
        token = json.loads(client.getresponse().read())["token"]
        client.request("DELETE", "/v2/leases/slow-reader", body=json.dumps({"holder": f"h{changes}", "token": token}),
                       headers={"Content-Type": "application/json"})
        client.getresponse().read()
        changes += 2
        queued = send_queue(port, client_port)
        if queued is not None and queued > largest:
            largest = queued
        if (metric(port, "baton_http_write_timeouts_total") or 0) > before:
            closed_at = time.monotonic()
            break
    slow.close()
    if closed_at is None:
        raise RuntimeError(f"the slow reader was not disconnected within 120 s ({changes} changes)")
    return {"write_timeout_s": write_timeout_s, "closed_after_s": round(closed_at - started, 2),
            "send_queue_kib": round(largest / 1024),
            "changes": changes}


def main():
    binary, work, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    write_timeout_s = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < count + 1000:
        raise RuntimeError(f"the open-file limit ({hard}) is too low for {count} watchers; raise ulimit -n")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    store = f"sqlite:{os.path.join(work, 'watchers.db')}"
    process, port = start_server(binary, store, write_timeout_s, count)
    try:
        idle_rss = rss_mib(process.pid)
        row = asyncio.run(watchers_scenario(port, process.pid, count))
        print(json.dumps({"name": "http-watchers", "kind": "watchers", "scenario": f"{count} idle SSE watchers",
                          "store": "sqlite", "watchers": count, "idle_rss_mib": idle_rss, **row}))
        print(json.dumps({"name": "http-watchers", "kind": "slow-reader", "scenario": "slow reader disconnected",
                          "store": "sqlite", **slow_reader(port, write_timeout_s)}))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


if __name__ == "__main__":
    main()
