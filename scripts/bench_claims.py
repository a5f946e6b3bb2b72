#!/usr/bin/env python3
"""Claim throughput through Baton's store against the store's own benchmark tool doing the equivalent write.

A claim of a fresh round is one conditional create. Baton (`baton-bench claims`: CONCURRENCY tasks in one
process, each claim a new round) is run side by side with the peer, with the same concurrency and number of
operations, three alternating runs, medians compared:
- redis: `redis-benchmark ... SET k:__rand_int__ v NX PX 10000` (Baton's claim script is `SET round candidate NX
  PX retention`); Baton's lease acquires of fresh keys (the full lease script with its token counter and
  publish) are measured in the same runs, for information;
- postgres: `pgbench` running `INSERT ... ON CONFLICT DO NOTHING` of a random round into a table of the same
  shape, one statement per transaction (Baton's claim is one statement too, a function that applies the round
  rules under the row lock; its pool has as many connections as pgbench has clients, kept open as pgbench's are).

Usage: bench_claims.py STORE_URL COUNT
Prints one JSON object.
"""
import json
import os
import re
import statistics
import subprocess
import sys

from benchlib import store_name

CONCURRENCY = 50

PGBENCH_SCRIPT = """\\set r random(1, 2000000000)
INSERT INTO bench_claims (system, round, candidate, expires_at)
VALUES ('bench', :r, 'candidate', clock_timestamp() + interval '10 seconds') ON CONFLICT DO NOTHING;
"""


def baton(url, count, *flags):
    if store_name(url) == "postgres":
        # A pooled client with as many connections as the peer has clients, kept open as pgbench keeps its own
        # (pool_min_conns: the pool's connections beyond it are closed when idle, which costs a timer per request).
        url += ("&" if "?" in url else "?") + f"pool_max_conns={CONCURRENCY}&pool_min_conns={CONCURRENCY - 1}"
    output = subprocess.check_output([os.environ["BATON_BENCH"], "claims", "--store", url, "--concurrency",
                                      str(CONCURRENCY), "--count", str(count), *flags], text=True)
    return json.loads(output.strip().splitlines()[-1])


def redis_peer(url, count):
    port = url.rsplit(":", 1)[1].split("/")[0]
    output = subprocess.check_output(
        ["redis-benchmark", "-p", port, "-c", str(CONCURRENCY), "-n", str(count), "-r", "1000000", "--csv",
         "SET", "k:__rand_int__", "v", "NX", "PX", "10000"], text=True)
    row = [line for line in output.splitlines() if line.startswith('"SET')][-1]
    subprocess.check_call(["redis-cli", "-p", port, "FLUSHALL"], stdout=subprocess.DEVNULL)
    return float(row.split(",")[1].strip('"'))


def postgres_peer(url, count, script):
    output = subprocess.check_output(
        ["pgbench", "-n", "-c", str(CONCURRENCY), "-j", "2", "-t", str(max(1, count // CONCURRENCY)), "-f", script,
         url], text=True, stderr=subprocess.STDOUT)
    return float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output).group(1))


def main():
    url, count = sys.argv[1], int(sys.argv[2])
    store = store_name(url)
    if store == "redis":
        peer, command = (lambda: redis_peer(url, count)), \
            f"redis-benchmark -c {CONCURRENCY} -n {count} -r 1000000 SET k:__rand_int__ v NX PX 10000"
    elif store == "postgres":
        script = f"/tmp/bench-claims-{os.getpid()}.sql"
        with open(script, "w") as f:
            f.write(PGBENCH_SCRIPT)
        subprocess.check_call(["psql", "-q", url, "-c", "CREATE TABLE IF NOT EXISTS bench_claims (system text, round "
                               "bigint, candidate text, expires_at timestamptz, PRIMARY KEY (system, round))"])
        peer, command = (lambda: postgres_peer(url, count, script)), \
            f"pgbench -c {CONCURRENCY} -j 2 -t {count // CONCURRENCY} (INSERT ... ON CONFLICT DO NOTHING)"
    else:
        raise SystemExit(f"bench_claims.py: no peer for the {store} store")
    ours, theirs, acquires, runs = [], [], [], []
    for _ in range(3):
        run = baton(url, count)
        runs.append(run)
        ours.append(run["per_second"])
        if store == "redis":
            acquires.append(baton(url, count, "--acquires")["per_second"])
        theirs.append(peer())
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    middle = sorted(runs, key=lambda r: r["per_second"])[1]
    result = {
        "name": f"claims-{store}",
        "kind": "throughput",
        "scenario": f"claims of fresh rounds per second, {CONCURRENCY} concurrent",
        "store": store,
        "baton_per_second": round(ours_median),
        "peer": command.split(" ")[0],
        "peer_per_second": round(theirs_median),
        "ratio": round(ours_median / theirs_median, 2),
        "baton_samples": ours,
        "peer_samples": [round(x) for x in theirs],
        "baton_claim_p50_ms": middle.get("median_ms"),
        "baton_claim_p99_ms": middle.get("p99_ms"),
        "operations": count,
        "command": f"baton-bench claims --concurrency {CONCURRENCY}"
                   + (f" (pool_max_conns={CONCURRENCY}, pool_min_conns={CONCURRENCY - 1})" if store == "postgres" else "")
                   + f" --count {count} vs {command}",
    }
    if acquires:
        result["baton_lease_acquires_per_second"] = round(statistics.median(acquires))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
