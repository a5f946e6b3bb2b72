#!/usr/bin/env python3
"""Redis scenarios of scripts/bench.

claims: claims/s through RedisLeaseStore (`BatonRedisBench claims`: `claim` of fresh rounds, whose script is
`SET round candidate NX PX retention`) against `redis-benchmark` running the same `SET k:__rand_int__ v NX PX
10000`, side by side on one server with the same concurrency (50) and number of operations; three alternating
runs, medians compared. Lease acquires of fresh keys (`BatonRedisBench acquires`: the full lease script with its
token counter and publish) are measured in the same runs, for information.

steady: store operations at steady state, from `INFO commandstats`: a leader alone (`baton campaign --ttl 3s`)
for a while, then the same leader with a waiting candidate. The leader should renew at most once per ttl/3;
the candidate should send nothing (it waits on pub/sub).

Usage: bench_redis.py claims BENCH_BINARY PORT N
       bench_redis.py steady BATON_BINARY PORT SECONDS LABEL
Prints one JSON object.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time


def redis_cli(port, *args):
    return subprocess.check_output(["redis-cli", "-p", str(port), *args], text=True)


def claims(bench, port, count):
    ours, theirs, acquires = [], [], []
    for _ in range(3):
        out = subprocess.check_output(
            [bench, "claims", f"redis://127.0.0.1:{port}", "50", str(count), "10000"], text=True)
        ours.append(json.loads(out.strip().splitlines()[-1])["per_second"])
        out = subprocess.check_output(
            [bench, "acquires", f"redis://127.0.0.1:{port}", "50", str(count), "10000"], text=True)
        acquires.append(json.loads(out.strip().splitlines()[-1])["per_second"])
        out = subprocess.check_output(
            ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(count), "-r", "1000000", "--csv",
             "SET", "k:__rand_int__", "v", "NX", "PX", "10000"], text=True)
        row = [line for line in out.splitlines() if line.startswith('"SET')][-1]
        theirs.append(float(row.split(",")[1].strip('"')))
        redis_cli(port, "FLUSHALL")
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    return {
        "scenario": "claims/s, 50 concurrent (fresh keys)",
        "store": "redis",
        "kind": "throughput",
        "baton_per_second": round(ours_median),
        "redis_benchmark_per_second": round(theirs_median),
        "ratio": round(ours_median / theirs_median, 2),
        "baton_samples": ours,
        "baton_lease_acquires_per_second": round(statistics.median(acquires)),
        "baton_lease_acquires_samples": acquires,
        "redis_benchmark_samples": [round(x) for x in theirs],
        "operations": count,
        "command": f"BatonRedisBench claims (and acquires) redis://127.0.0.1:PORT 50 {count} 10000 vs "
                   f"redis-benchmark -c 50 -n {count} -r 1000000 SET k:__rand_int__ v NX PX 10000",
    }


# Commands a client sends; the others in INFO commandstats (HMGET, HSET, PEXPIRE, PTTL, PUBLISH, ...) are the
# calls made inside Baton's Lua scripts, counted there too.
TOP_LEVEL = {"evalsha", "eval", "get", "zrem", "hello", "ping", "subscribe", "unsubscribe", "config|get", "select",
             "auth"}


def commandstats(port):
    calls = {}
    for line in redis_cli(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, fields = line[len("cmdstat_"):].split(":", 1)
            calls[name] = int(fields.split(",")[0].split("=")[1])
    for ignored in ("info", "config|resetstat", "config"):
        calls.pop(ignored, None)
    return calls


def campaign(binary, port, key, holder):
    return subprocess.Popen(
        [binary, "campaign", key, "--store", f"redis://127.0.0.1:{port}", "--id", holder, "--ttl", "3s"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)


def wait_for(process, event, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited before printing {event!r}")
        if json.loads(line).get("event") == event:
            return
    raise RuntimeError(f"timed out waiting for {event!r}")


def measure(port, seconds):
    redis_cli(port, "CONFIG", "RESETSTAT")
    time.sleep(seconds)
    return commandstats(port)


def steady(binary, port, seconds, label):
    key = f"bench-steady-{os.getpid()}"
    leader = campaign(binary, port, key, "leader")
    wait_for(leader, "elected")
    time.sleep(1)
    alone = measure(port, seconds)
    follower = campaign(binary, port, key, "follower")
    wait_for(follower, "following")
    time.sleep(1)
    both = measure(port, seconds)
    for process in (follower, leader):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    leader_ops = sum(n for name, n in alone.items() if name in TOP_LEVEL)
    follower_ops = sum(n for name, n in both.items() if name in TOP_LEVEL) - leader_ops
    return {
        "scenario": f"steady state over {seconds} s, ttl 3 s ({label})",
        "store": "redis",
        "kind": "count",
        "leader_ops": leader_ops,
        "leader_ops_per_ttl_third": round(leader_ops / (seconds / 1.0), 2),
        "note": "client commands only (Lua-internal calls excluded); follower ops = both windows minus the "
                "leader-alone window, so ±1 renew of the leader shows as noise; a waiting candidate polls only "
                "while its change feed is down",
        "follower_ops": follower_ops,
        "commands_leader_alone": alone,
        "commands_leader_and_follower": both,
        "command": f"INFO commandstats around baton campaign --ttl 3s ({label})",
    }


def main():
    mode = sys.argv[1]
    if mode == "claims":
        print(json.dumps(claims(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    elif mode == "steady":
        print(json.dumps(steady(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
