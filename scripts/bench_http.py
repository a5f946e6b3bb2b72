#!/usr/bin/env python3
"""HTTP service throughput and latency: v1 elect (new rounds, repeated losers), v2 acquire and renew, and /alive.

Starts one `baton serve` (the release build) on a free loopback port with a fresh SQLite store, then loads it with
wrk, one scenario after the other, for the same duration and with the same number of connections, so that the
three rows can be compared side by side:

- v1 elect, new rounds: every request claims a round nobody claimed yet (one SQLite write each), answered 202;
- v1 elect, repeated losers: every request claims one round won before the run by another candidate, with gone's
  default identity (the remote ip:port), answered 204;
- v2 acquire, new keys: every request acquires a key nobody held (`POST /v2/leases/{key}`), answered 200;
- v2 renew: every request renews one held lease (`PUT /v2/leases/{key}` with its holder and token), answered 200;
- /alive: the same server's cheapest route, which does not touch the store.

After the runs the server's own /metrics are read to check that every elect was answered as expected (all 202,
then all 204, no errors).

Usage: bench_http.py BATON_BINARY WORK_DIR SECONDS CONNECTIONS
Prints one JSON object per line: {"scenario", "store", "requests_per_s", "p50_ms", "p90_ms", "p99_ms",
"requests", "errors", "seconds", "connections", "tool"}.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

V2_ACQUIRE_LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/v2/leases/bench-key-" .. counter, {["Content-Type"] = "application/json"},
                    '{"holder": "bench", "ttl_ms": 60000}')
end
"""

V2_RENEW_LUA = """
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"holder": "bench", "token": TOKEN, "ttl_ms": 60000}'
"""

NEW_ROUNDS_LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/v1/elect/bench/round-" .. counter .. "?candidate=host-a")
end
"""


def start_server(binary, store):
    process = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", "0", "--store", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
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


def seconds_to_ms(text):
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    value, unit = float(match.group(1)), match.group(2)
    return round(value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit], 3)


def wrk(url, seconds, connections, script=None):
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        command += ["-s", script]
    output = subprocess.run(command + [url], check=True, capture_output=True, text=True).stdout
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
        match = re.search(pattern, output)
        if match:
            errors += sum(int(group) for group in match.groups())
    return {
        "requests_per_s": round(float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1)), 1),
        "p50_ms": seconds_to_ms(percentiles["50"]),
        "p90_ms": seconds_to_ms(percentiles["90"]),
        "p99_ms": seconds_to_ms(percentiles["99"]),
        "requests": requests,
        "errors": errors,
    }


def count(metrics, route, status, method="GET"):
    pattern = re.escape(f'baton_http_requests_total{{route="{route}",method="{method}",status="{status}"}}') + r" (\d+)"
    match = re.search(pattern, metrics)
    return int(match.group(1)) if match else 0


def main():
    binary, work, seconds, connections = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = f"sqlite:{os.path.join(work, 'http.db')}"
    process, port = start_server(binary, store)
    base = f"http://127.0.0.1:{port}"
    script = os.path.join(work, "new_rounds.lua")
    with open(script, "w") as f:
        f.write(NEW_ROUNDS_LUA)
    try:
        with urllib.request.urlopen(f"{base}/api/v1/elect/bench/decided?candidate=winner") as answer:
            assert answer.status == 202
        acquire_script = os.path.join(work, "v2_acquire.lua")
        with open(acquire_script, "w") as f:
            f.write(V2_ACQUIRE_LUA)
        request = urllib.request.Request(f"{base}/v2/leases/bench-renewed", method="POST",
                                         data=b'{"holder": "bench", "ttl_ms": 600000}',
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            token = json.loads(answer.read())["token"]
        renew_script = os.path.join(work, "v2_renew.lua")
        with open(renew_script, "w") as f:
            f.write(V2_RENEW_LUA.replace("TOKEN", str(token)))
        elect = "/api/v1/elect/{system}/{round}"
        rows = [
            ("v1 elect, new rounds (202)", wrk(base + "/", seconds, connections, script)),
            ("v1 elect, repeated losers (204)", wrk(f"{base}/api/v1/elect/bench/decided", seconds, connections)),
            ("v2 acquire, new keys (200)", wrk(base + "/", seconds, connections, acquire_script)),
            ("v2 renew (200)", wrk(f"{base}/v2/leases/bench-renewed", seconds, connections, renew_script)),
            ("/alive", wrk(f"{base}/alive", seconds, connections)),
        ]
        with urllib.request.urlopen(f"{base}/metrics") as answer:
            metrics = answer.read().decode()
        won, lost = count(metrics, elect, 202), count(metrics, elect, 204)
        acquired = count(metrics, "/v2/leases/{key}", 200, "POST")
        renewed = count(metrics, "/v2/leases/{key}", 200, "PUT")
        failed = sum(int(n) for n in re.findall(r'baton_http_requests_total\{[^}]*status="(?:5\d\d|409)"\} (\d+)', metrics))
        # wrk counts requests it finished; the server may have answered a few more that wrk cut off at the end.
        if (won < rows[0][1]["requests"] or lost < rows[1][1]["requests"] or acquired < rows[2][1]["requests"]
                or renewed < rows[3][1]["requests"] or failed):
            raise RuntimeError(f"unexpected answers: {won} × 202, {lost} × 204, {acquired} acquired, {renewed} renewed, "
                               f"{failed} × 409/5xx")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    for name, row in rows:
        store_used = "none (same server, on sqlite)" if name == "/alive" else "sqlite"
        print(json.dumps({"name": "http", "kind": "http", "scenario": name, "store": store_used, **row, "seconds": seconds,
                          "connections": connections, "tool": "wrk"}))


if __name__ == "__main__":
    main()
