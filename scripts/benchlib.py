"""Helpers shared by the Python drivers of scripts/bench."""
import json
import os
import select
import socket
import subprocess
import time


def read_line(stream, what, timeout=30.0):
    """Reads one line from `stream`, failing after `timeout` seconds or at the end of the stream."""
    ready, _, _ = select.select([stream], [], [], max(0.0, timeout))
    if not ready:
        raise RuntimeError(f"timed out waiting for {what}")
    line = stream.readline()
    if not line:
        raise RuntimeError(f"the process ended before {what}")
    return line


def wait_for_event(process, event, timeout=30.0):
    """Reads the JSON lines `baton campaign` prints until one has this `event`; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        record = json.loads(read_line(process.stdout, repr(event), deadline - time.monotonic()))
        if record.get("event") == event:
            return record


def summarize(samples_ms):
    """Percentiles of millisecond samples through baton-bench's HDR histogram (the binary named by
    $BATON_BENCH): {"rounds", "median_ms", "p90_ms", "p99_ms", "min_ms", "max_ms"}."""
    output = subprocess.run([os.environ["BATON_BENCH"], "summary"], input="\n".join(map(str, samples_ms)),
                            capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def store_name(url):
    scheme = url.split(":", 1)[0]
    return {"postgresql": "postgres", "rediss": "redis", "etcds": "etcd"}.get(scheme, scheme)
