#!/usr/bin/env python3
"""One scenario measured with two builds of Baton in one loop on one store: the baseline (old) and this
checkout's build (new), for `scripts/bench --baseline REV`.

- handover: graceful handover between two `baton campaign` processes, as bench_handover.py measures it;
- handover-run: graceful handover between two `baton run` processes, as bench_handover_run.py measures it;
- latency: `baton-bench latency` (acquire and renew of one sequential client), ROUNDS rounds per build in BLOCKS
  blocks, each block one process; a build's figure is the median of its blocks' medians (p90: of their p90s), as
  the command prints percentiles, not samples. With --cpu N every block's process runs on CPU N only (taskset),
  for both builds alike. Those percentiles are rounded to 10 µs, about 10% of a Redis round trip, too coarse to
  tell 5% from 11% there; so each block is also timed by the wall clock, beside a process of no counted rounds,
  which gives each build's mean time of a whole round (acquire, renew, release) to the microsecond.

The builds take turns, old, new, new, old, old, new, ... (round by round for handover, block by block for
latency), so that a change in the machine's load weighs on both alike and neither always goes first. Each build
has a key of its own. A warm-up round of each build comes first and is not counted (latency: each process warms
up its own connections).

Usage: bench_baseline.py handover|handover-run OLD_BATON NEW_BATON STORE_URL ROUNDS [--name NAME]
       bench_baseline.py latency OLD_BATON_BENCH NEW_BATON_BENCH STORE_URL ROUNDS [--blocks BLOCKS] [--name NAME]
                         [--cpu N]
Prints one JSON object per comparison (latency: acquire, renew and the whole round), of kind "baseline-comparison": each build's
figures under "old" and "new", "ratio_median" and "ratio_p90" (new ÷ old) and "within_10_percent" (the medians'
ratio at most 1.10).
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import bench_handover
import bench_handover_run
from benchlib import store_name, summarize

TOLERANCE = 1.10
SCENARIOS = {
    "handover": "graceful handover, library (SIGTERM to the leader's `baton campaign` until the successor is elected)",
    "handover-run": "graceful handover, `baton run` (SIGTERM to the leader until the successor's command runs)",
}
ROUND_SCENARIO = "acquire, renew and release: a whole round's mean by the wall clock (one client, sequential)"


def turns(count):
    """The order of the builds in `count` pairs of turns: old new, new old, old new, ..."""
    for pair in range(count):
        yield from (("old", "new") if pair % 2 == 0 else ("new", "old"))


def handovers(kind, binaries, store, rounds):
    """Samples in milliseconds of each build's handovers, taken in turn."""
    one_round = bench_handover.one_round if kind == "handover" else bench_handover_run.one_round
    keys = {build: f"bench-baseline-{kind}-{os.getpid()}-{build}" for build in binaries}
    samples = {build: [] for build in binaries}
    for build in ("old", "new"):  # warm-up
        one_round(binaries[build], store, keys[build], 0)
    for number, build in enumerate(turns(rounds)):
        samples[build].append(one_round(binaries[build], store, keys[build], number // 2 + 1))
    figures = {}
    for build in ("old", "new"):
        figures[build] = {**summarize(samples[build]), "samples_ms": [round(s, 2) for s in samples[build]]}
    return figures


def latency_blocks(programs, store, rounds, blocks, name, cpu=None):
    """Each build's `baton-bench latency` results, block by block: {operation: {build: [result, ...]}}, and the
    wall-clock time of each build's whole rounds (see `round_figures`): {build: {"full": [s, ...], "empty": [...]}}."""
    per_block = max(1, rounds // blocks)
    pinned = ["taskset", "-c", str(cpu)] if cpu is not None else []
    found = {}
    walls = {"old": {"full": [], "empty": []}, "new": {"full": [], "empty": []}}
    for build in turns(blocks):
        for count, label in ((0, "empty"), (per_block, "full")):
            started = time.monotonic()
            output = subprocess.run(pinned + [programs[build], "latency", "--store", store, "--count", str(count),
                                              "--name", name], capture_output=True, text=True, check=True).stdout
            walls[build][label].append(time.monotonic() - started)
            if count == 0:
                continue
            for line in output.splitlines():
                if line.strip():
                    result = json.loads(line)
                    found.setdefault(result["scenario"], {"old": [], "new": []})[build].append(result)
    return found, walls


def round_figures(walls, per_block):
    """One build's mean time of a whole round (acquire, renew, release: what the process does per counted round),
    in milliseconds to the microsecond, from wall clocks: the median time of a block's process less the median time
    of a process of no counted rounds (start-up, connecting, the 10 warm-up rounds), over the rounds of a block.
    `baton-bench` rounds its percentiles to 10 µs, which is about 10% of a Redis round trip; this figure is not
    rounded, and both builds' are taken the same way."""
    full, empty = statistics.median(walls["full"]), statistics.median(walls["empty"])
    per_round = (full - empty) / per_block * 1000
    return {
        "rounds": per_block * len(walls["full"]),
        "blocks": len(walls["full"]),
        "median_ms": round(per_round, 4),
        # A mean has no p90; the blocks' spread stands in for it: the 90th percentile of the blocks' full times.
        "p90_ms": round((sorted(walls["full"])[int(0.9 * (len(walls["full"]) - 1))] - empty) / per_block * 1000, 4),
        "block_seconds": [round(w, 4) for w in walls["full"]],
        "empty_seconds": [round(w, 4) for w in walls["empty"]],
    }


def latency_figures(results):
    """One build's figures from its blocks: the medians of the blocks' percentiles."""
    return {
        "rounds": sum(r["rounds"] for r in results),
        "blocks": len(results),
        "median_ms": round(statistics.median(r["median_ms"] for r in results), 3),
        "p90_ms": round(statistics.median(r["p90_ms"] for r in results), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in results), 3),
        "block_medians_ms": [r["median_ms"] for r in results],
        "block_p90s_ms": [r["p90_ms"] for r in results],
    }


def comparison(name, scenario, store, figures, interleaving):
    old, new = figures["old"], figures["new"]
    ratio_median = new["median_ms"] / old["median_ms"]
    return {
        "name": name,
        "kind": "baseline-comparison",
        "scenario": scenario,
        "operation": scenario.split(" latency")[0] if name.startswith("latency") else None,
        "store": store,
        "interleaving": interleaving,
        "old": old,
        "new": new,
        "ratio_median": round(ratio_median, 3),
        "ratio_p90": round(new["p90_ms"] / old["p90_ms"], 3),
        "within_10_percent": ratio_median <= TOLERANCE,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["handover", "handover-run", "latency"])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("store")
    parser.add_argument("rounds", type=int)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--name")
    parser.add_argument("--cpu", type=int)
    arguments = parser.parse_args()
    programs = {"old": arguments.old, "new": arguments.new}
    store = store_name(arguments.store)
    name = arguments.name or f"{arguments.kind}-{store}"
    if arguments.kind == "latency":
        blocks = max(1, arguments.blocks)
        found, walls = latency_blocks(programs, arguments.store, arguments.rounds, blocks, name, arguments.cpu)
        interleaving = f"{blocks} blocks per build of {arguments.rounds // blocks} rounds, in turn"
        for scenario, results in found.items():
            figures = {build: latency_figures(results[build]) for build in ("old", "new")}
            print(json.dumps(comparison(name, scenario, store, figures, interleaving)))
        per_block = max(1, arguments.rounds // blocks)
        figures = {build: round_figures(walls[build], per_block) for build in ("old", "new")}
        print(json.dumps(comparison(name, ROUND_SCENARIO, store, figures,
                                    interleaving + "; wall clock of each block less that of a block of no rounds")))
    else:
        figures = handovers(arguments.kind, programs, arguments.store, arguments.rounds)
        print(json.dumps(comparison(name, SCENARIOS[arguments.kind], store, figures,
                                    f"{arguments.rounds} rounds per build, one by one in turn")))


if __name__ == "__main__":
    main()
