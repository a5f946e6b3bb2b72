"""Helpers shared by the Python drivers of scripts/bench."""
import json
import os
import queue
import socket
import subprocess
import threading
import time

def _pump(stream, lines):
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put("")


def read_line(stream, what, timeout=30.0):
    """Reads one line from `stream`, failing after `timeout` seconds or at the end of the stream.

    A thread per stream reads its lines into a queue: select() on the descriptor would miss lines already read
    into the stream's buffer."""
    lines = getattr(stream, "baton_lines", None)
    if lines is None:
        lines = stream.baton_lines = queue.Queue()
        threading.Thread(target=_pump, args=(stream, lines), daemon=True).start()
    try:
        line = lines.get(timeout=max(0.0, timeout))
    except queue.Empty:
        raise RuntimeError(f"timed out waiting for {what}") from None
    if not line:
        lines.put("")  # the end stays the end for the next reader
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
