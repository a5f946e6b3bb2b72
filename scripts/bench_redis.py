#!/usr/bin/env python3
"""Redis store cost of scripts/bench, counted by the server itself.

steady: store operations at steady state, from `INFO commandstats`: a leader alone (`baton campaign --ttl 3s`)
for a while, then the same leader with a waiting candidate. The leader should renew at most once per ttl/3;
the candidate should send nothing (it waits on pub/sub). The candidate's own commands are told apart from the
leader's by their connection, in the server's MONITOR stream over the second window (the leader's connections are
those seen in the first).

Usage: bench_redis.py steady BATON_BINARY PORT SECONDS LABEL
Prints one JSON object.
"""
import json
import os
import signal
import subprocess
import sys
import time

from benchlib import read_line, wait_for_event


def redis_cli(port, *args):
    return subprocess.check_output(["redis-cli", "-p", str(port), *args], text=True)


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


def measure(port, seconds):
    """Counts the window's commands: (INFO commandstats, client commands by connection address from MONITOR)."""
    monitor = subprocess.Popen(["redis-cli", "-p", str(port), "MONITOR"], stdout=subprocess.PIPE, text=True)
    read_line(monitor.stdout, "MONITOR to start")  # "OK"
    redis_cli(port, "CONFIG", "RESETSTAT")
    time.sleep(seconds)
    stats = commandstats(port)
    monitor.terminate()
    lines = monitor.communicate(timeout=30)[0].splitlines()
    by_client = {}
    for line in lines:
        # 1700000000.123456 [0 127.0.0.1:54321] "EVALSHA" ...; calls made inside a script come from [0 lua].
        parts = line.split(" ", 3)
        if len(parts) < 4 or not parts[2].endswith("]") or parts[2] == "lua]":
            continue
        words = [word.strip('"').lower() for word in parts[3].split(" ", 2)[:2]]
        command = f"{words[0]}|{words[1]}" if words[0] == "config" and len(words) > 1 else words[0]
        if command in TOP_LEVEL:
            address = parts[2].rstrip("]")
            by_client[address] = by_client.get(address, 0) + 1
    return stats, by_client


def steady(binary, port, seconds, label):
    key = f"bench-steady-{os.getpid()}"
    leader = campaign(binary, port, key, "leader")
    wait_for_event(leader, "elected")
    time.sleep(1)
    alone, leader_clients = measure(port, seconds)
    follower = campaign(binary, port, key, "follower")
    wait_for_event(follower, "following")
    time.sleep(1)
    both, clients = measure(port, seconds)
    for process in (follower, leader):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    leader_ops = sum(n for name, n in alone.items() if name in TOP_LEVEL)
    # The commands of connections the leader-alone window did not see are the candidate's (redis-cli's own
    # CONFIG RESETSTAT and INFO are not client commands of Baton, and are not counted).
    follower_ops = sum(n for address, n in clients.items() if address not in leader_clients)
    return {
        "scenario": f"steady state over {seconds} s, ttl 3 s ({label})",
        "store": "redis",
        "kind": "count", "name": "store-cost-redis",
        "leader_ops": leader_ops,
        "leader_ops_per_ttl_third": round(leader_ops / (seconds / 1.0), 2),
        "note": "client commands only (Lua-internal calls excluded); the follower's are those of connections "
                "the leader-alone window did not show, in the server's MONITOR stream; a waiting candidate polls "
                "only while its change feed is down",
        "follower_ops": follower_ops,
        "commands_leader_alone": alone,
        "commands_leader_and_follower": both,
        "command": f"INFO commandstats around baton campaign --ttl 3s ({label})",
    }


def main():
    mode = sys.argv[1]
    if mode == "steady":
        print(json.dumps(steady(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
