"""Helpers shared by the Python drivers of scripts/bench."""
import json
import os
import select
import subprocess
import time


def read_line(stream, what, timeout=30.0):
    """Reads one line from a child's pipe `stream`, failing after `timeout` seconds or at the end of the stream.

    Reads the descriptor itself (select, then os.read) into a buffer of its own kept on the stream, never through
    the stream object's buffer, so a line that came with an earlier one is not left unseen, and a line is seen as
    soon as it arrives (every driver, Baton's and its peers', reads the same way)."""
    fd = stream.fileno()
    pending = getattr(stream, "baton_pending", b"")
    deadline = time.monotonic() + timeout
    while b"\n" not in pending:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            stream.baton_pending = pending
            raise RuntimeError(f"timed out waiting for {what}")
        chunk = os.read(fd, 65536)
        if not chunk:
            stream.baton_pending = pending
            raise RuntimeError(f"the process ended before {what}")
        pending += chunk
    line, pending = pending.split(b"\n", 1)
    stream.baton_pending = pending
    return line.decode() + "\n"


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


def store_name(url):
    scheme = url.split(":", 1)[0]
    return {"postgresql": "postgres", "rediss": "redis", "etcds": "etcd"}.get(scheme, scheme)
