#!/usr/bin/env python3
"""Writes BENCHMARKS.md and bench-results.json from the JSON lines the scenarios of scripts/bench printed.

Usage: bench_report.py --quick|--full|--some BUILD_SECONDS RUN_SECONDS RESULT...

Results of kind "baseline-comparison" (scripts/bench --baseline, which describes the two builds in the environment:
BATON_BENCH_BASELINE_REV, BATON_BENCH_BASELINE_COMMIT, BATON_BENCH_CURRENT_COMMIT, BATON_BENCH_COMMAND) go to a
section of their own, "Against the baseline", and to bench-results.json's `baseline_comparisons`, one part per
baseline commit (a run against another baseline keeps the others'); a run of nothing else leaves the rest of both
files as they were.
"""
import json
import os
import platform
import subprocess
import sys
import time


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.check_output(["nproc"], text=True).strip()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cores} cores ({model}), {memory:.0f} GiB, Linux {platform.release()}"


def ms(value):
    return "–" if value is None else f"{value} ms"


def summary_rows(r):
    """The main table's rows for one result: its own, and one more for a second peer."""
    row = summary_row(r)
    if row is None:
        return []
    rows = [row]
    second = r.get("second_peer")
    if second:
        rows.append((row[0], row[1], row[2], f"{second['peer']}: {ms(second['median_ms'])}",
                     f"{r['median_ms'] / second['median_ms']:.2f}", row[5]))
    return rows


def summary_row(r):
    """(scenario, store, Baton's figure, the peer's figure or the bound, ratio, command) for the main table."""
    kind, name = r.get("kind"), r.get("name", "")
    command = f"`scripts/bench {name}`"
    if kind == "failed":
        return (name, "–", f"**failed** (status {r['status']}; its output is above the report in the run's log)",
                "–", "–", command)
    if kind == "handover":
        peer = f"{r['peer']}: {ms(r['peer_median_ms'])}" if "peer" in r else "–"
        ratio = f"{r['median_ms'] / r['peer_median_ms']:.2f}" if "peer" in r else "–"
        return r["scenario"], r["store"], f"median {ms(r['median_ms'])}", peer, ratio, command
    if kind == "failover":
        bound = r["ttl_s"] * 1000
        return (r["scenario"], r["store"], f"median {ms(r['median_ms'])}", f"bound: ttl = {bound:.0f} ms",
                f"{r['median_ms'] / bound:.2f} of ttl", command)
    if kind == "latency":
        return r["scenario"], r["store"], f"median {ms(r['median_ms'])}, p99 {ms(r['p99_ms'])}", "–", "–", command
    if kind == "throughput":
        return (r["scenario"], r["store"], f"{r['baton_per_second']}/s", f"{r['peer']}: {r['peer_per_second']}/s",
                f"{r['ratio']:.2f}", f"`{r['command']}`")
    if kind == "http":
        return None
    if kind == "scale-leases":
        kept = f"{r['leaders_at_end']}/{r['leases']} still leading"
        elected = f"all elected in {r['elected_in_s']} s" if r.get("all_elected") else "not all elected"
        return (r["scenario"], r["store"],
                f"{r['cpu_percent_of_one_core']}% of one core, {r['rss_mib']} MiB resident, {kept}, {elected}; "
                f"renews {r['renews_per_s']}/s of {r['renews_expected_per_s']}/s needed",
                "bound: 25% of one core, 250 MB (238 MiB), elected within 30 s",
                f"{r['cpu_percent_of_one_core'] / 25:.2f} of CPU, {r['rss_mib'] / 238:.2f} of memory", command)
    if kind == "waiters":
        return (r["scenario"], r["store"], f"{r['acquires_per_release']} acquire attempts per release "
                f"(next leader in {ms(r.get('median_ms'))})", "a queue: 1", f"{r['acquires_per_release']}×", command)
    if kind == "semaphore":
        bound = 15 if r["store"] == "postgres" else 10
        return (r["scenario"], r["store"], f"median {ms(r['median_ms'])}, p90 {ms(r['p90_ms'])}; "
                f"{r['acquires_per_release']} acquire requests per release",
                f"bound: median {bound} ms", f"{r['median_ms'] / bound:.2f}", command)
    if kind == "shards":
        ttl = r["ttl_s"]
        worst = max(r[f"{change}_max_s"] for change in ("join", "leave", "crash"))
        ratio = max(r[f"{change}_moves_ratio_max"] for change in ("join", "leave", "crash"))
        return (r["scenario"], r["store"],
                "; ".join(f"{change}: median {r[f'{change}_median_s']} s (max {r[f'{change}_max_s']} s), "
                          f"moved {r[f'{change}_moves']} of fewest {r[f'{change}_fewest']}"
                          for change in ("join", "leave", "crash")) + f" (ttl {ttl} s, {r['rounds']} rounds)",
                f"bound: even within 3 ttl ({3 * ttl} s) of each change, moves ≤ 1.2× the fewest",
                f"{worst / (3 * ttl):.2f} of the time, {ratio:.2f}× the moves", command)
    if kind == "processes":
        counted = r.get("server_requests_per_release_median")
        requests = (f"{counted:g} requests per release at the server (max {r['server_requests_per_release_max']:g})"
                    if counted is not None else "requests not counted at the server")
        return (r["scenario"], r["store"], f"next leader in {ms(r['median_ms'])} (p90 {ms(r['p90_ms'])}); "
                f"{r['inversions']} inversions of the order of asking in {r['releases']} releases; {requests}",
                "bound: 0 inversions; 2 requests beyond the new leader's own; 10 ms (PostgreSQL 15 ms)",
                f"{r['inversions']} inversions", command)
    if kind == "store-cost":
        return (r["scenario"], r["store"], f"leader {r['leader_requests_per_min']}/min, each waiting candidate "
                f"{r['waiting_requests_per_min']}/min", f"renews needed: {r['expected_leader_renews_per_min']}/min",
                f"{r['leader_requests_per_min'] / r['expected_leader_renews_per_min']:.2f}", command)
    if kind == "watchers":
        return (r["scenario"], r["store"], f"{r['rss_mib']} MiB resident ({r['idle_rss_mib']} MiB before), "
                f"/alive p50 {ms(r['alive_p50_ms'])}, p99 {ms(r['alive_p99_ms'])}",
                "bound: 300 MiB, p99 10 ms", f"{r['rss_mib'] / 300:.2f} of memory", command)
    if kind == "slow-reader":
        return (r["scenario"], r["store"], f"closed {r['closed_after_s']} s after it stopped reading "
                f"({r['changes']} changes of 4 KiB; {r['send_queue_kib']} KiB queued in the kernel)",
                f"write timeout: {r['write_timeout_s']} s",
                f"{r['closed_after_s'] / r['write_timeout_s']:.2f}", command)
    if kind == "count":
        return (r["scenario"], r["store"], f"leader {r['leader_ops']} commands, waiting candidate "
                f"{r['follower_ops']}", "–", "–", f"`{r['command']}`")
    return None


HOW_TO_READ = """\
## How to read this

- **Graceful handover**: the leader is told to stop (SIGTERM); it releases the key and the store's change feed
  wakes the successor. Measured from the signal to reading the successor's "elected" line (library) or its
  command's first output (`baton run`, which includes starting `sh`). Bound: the store's round trips; no ttl
  involved. On etcd, Baton's rounds and the peers' alternate in one loop, so the machine's load weighs on all alike.
  The peer is `etcdctl elect` on the same etcd, where that store is in the run: its leader deletes its key on
  SIGINT and the successor, woken by its watch, reads once and prints. Baton on etcd needs fewer round trips: the
  leader's release hands the key over in one transaction, and the successor, seeing that in its watch, leads
  without a request (for as long as its last keep-alive guarantees). `baton run` also stops the leader's command
  before releasing and starts the successor's (`sh`, through a keeper process forked while it waited), work
  `etcdctl elect` does not do; so its row has a second peer that does: `etcdctl lock KEY -- CMD` with the same command, stopped
  with SIGINT to its process group as Ctrl-C would.
- **Crash failover**: the leader is killed with SIGKILL while holding the lease. The successor can only take
  over once the lease expires in the store; the leader renews every ttl/3, so expiry comes between 2/3 of the
  ttl and one ttl after the kill (kills land at spread points of the renew cycle). The bound is the ttl; the
  ratio column is the median over the ttl.
- **Processes**: 50 `baton campaign` processes (ttl 60 s) on one key, started one after the other once the one
  before waits, so the order of asking is known; 100 times the leader gets SIGTERM, the next leader is timed from
  the signal to the CLOCK_MONOTONIC stamp of its "elected" event (`monotonic_ns`, the clock the script reads, so
  the time the script takes to read 50 processes' output is left out: about 0.5 ms) and compared with that order,
  and the one that left starts again, last. Requests per release are counted by the server from the signal to the
  new leader's line (Redis: scripts run; etcd: gRPC messages received; PostgreSQL: statements in its log, with
  `log_statement=all`), including the release and the new leader's own; SQLite has no server to count them.
- **Latency** and **claims**: one store operation as a client sees it; claims of fresh rounds side by side with
  the store's own benchmark tool doing the equivalent conditional write (`redis-benchmark SET NX PX`, `pgbench`
  with `INSERT ... ON CONFLICT DO NOTHING`). Ratio = Baton ÷ peer (1.00 = as fast as the raw write).
- **HTTP service**: one `baton serve` on SQLite loaded by wrk (1 thread, keep-alive connections, same duration
  per row); ratio = throughput ÷ the same server's `/alive`, which does no store work.
- **Scale, 10,000 leases**: one process runs one `LeaderElector` per key, sharing one store, and holds all of them
  at ttl 10 s (3,000 renews per second needed; S3, priced per request, 1,000 at ttl 60 s). CPU is the process's
  own (user + system) over the window after every elector leads, as a share of one core; resident memory is VmRSS
  at the end (30–50 MiB of it is the process before any elector starts). "still leading"
  counts electors that lead at the end of the window.
- **Scale, 1,000 waiters**: 1,000 electors in one process campaign for one key (ttl 60 s); the leader resigns and
  the store requests that follow are counted. About 1,000 acquire attempts per release is a thundering herd (every
  waiter is woken and tries); 1 is a queue, which etcd is: its change feed names the next candidate, whose elector
  alone acquires, while the others see someone else named and keep waiting. (A waiter on a queue also asks again
  every third of its ttl to keep its place: store-cost's row.)
- **Semaphore**: 8 candidates of a `SemaphoreElector` of 3 permits (ttl 10 s) in one process, each taking a
  permit again and again; once all 3 slots are busy and the store is quiet, the longest holder returns from its
  work. Timed from that return (the release follows it) to the start of the next holder's work in the freed slot;
  the acquire requests that follow are counted (the new holder's, and the waiters' that leave the other slots'
  queues and join again behind).
- **Shards**: 12 shards of a key over `baton run --shards 12 --ttl 2s --retry -- sleep` processes, read every 20 ms
  by one listing from the bench process. Each round starts 4 members and waits for an even spread, then starts a
  fifth (join), SIGTERMs one (graceful leave) and SIGKILLs another (crash). Each change is timed from its start
  (the join's process start, the signal) to an even spread: every shard held by a live member, each member ⌊12/n⌋
  or ⌈12/n⌉. Every owner change seen on the way counts as a move, against the fewest an even spread needed (a
  crashed member's shards must move; a join needs ⌊12/5⌋). A crash waits for the member's presence and terms to
  expire (a ttl) and the next reading of the plan (a third of a ttl).
- **Idle SSE watchers**: one `baton serve` on SQLite holds 10,000 event streams, each on its own connection and
  key, opened by one asyncio client; resident memory (VmRSS) with all of them open, and 2,000 sequential `/alive`
  requests from another process meanwhile. **Slow reader**: one more stream whose client never reads (4 KiB receive
  buffer) while leader changes with 4 KiB of metadata are made on its key; the time counts from the first change
  to the server closing the connection, so it includes the time the kernel kept taking bytes into the socket's
  send buffer (shown); the write timeout runs from a write the kernel does not take in full.
- **Store cost**: store requests per minute through the store API (counted by a wrapper around it) by the leader
  and by each waiting candidate, at steady state; a leader needs 60 / (ttl/3) renews per minute. The change feed's
  own traffic (Redis pub/sub, PostgreSQL LISTEN, SQLite's inotify wake-ups) is not a request and is not counted;
  for Redis the server's own command counts are given as well.
"""


BASELINE_HEADING = "## Against the baseline"


def baseline_section(comparisons, previous, host, today):
    """One baseline's section after this run: this run's comparisons (`scripts/bench --baseline`, described by the
    environment it sets), joined to those of the run before (`previous`) when both compared the same two commits."""
    section = {"baseline_rev": os.environ.get("BATON_BENCH_BASELINE_REV"),
               "baseline_commit": os.environ.get("BATON_BENCH_BASELINE_COMMIT"),
               "current_commit": os.environ.get("BATON_BENCH_CURRENT_COMMIT"),
               "machine": host, "date": today, "commands": [os.environ.get("BATON_BENCH_COMMAND", "scripts/bench")],
               "results": comparisons}
    if previous and all(previous.get(k) == section[k] for k in ("baseline_commit", "current_commit")):
        again = {(r["name"], r["scenario"]) for r in comparisons}
        section["results"] = [r for r in previous["results"] if (r["name"], r["scenario"]) not in again] + comparisons
        section["commands"] = [c for c in previous["commands"] if c not in section["commands"]] + section["commands"]
    return section


def baseline_sections(comparisons, previous, host, today):
    """bench-results.json's `baseline_comparisons` after this run: the sections of the run before (`previous`, that
    file's content, whose `baseline_comparison` is read as one section), with this run's baseline's section made
    by `baseline_section` from the one before of the same baseline."""
    previous = previous or {}
    sections = previous.get("baseline_comparisons")
    if sections is None:
        sections = [previous["baseline_comparison"]] if previous.get("baseline_comparison") else []
    if not comparisons:
        return sections
    commit = os.environ.get("BATON_BENCH_BASELINE_COMMIT")
    same = next((s for s in sections if s.get("baseline_commit") == commit), None)
    return [s for s in sections if s.get("baseline_commit") != commit] + [
        baseline_section(comparisons, same, host, today)]


def comparison_label(r):
    return f"{r['name']}, {r['operation']}" if r.get("operation") else r["name"]


def verdicts(section):
    """One line per comparison: the ratio new/old and whether it is within 10%."""
    lines = []
    for r in section["results"]:
        if r.get("failed"):
            lines.append(f"{r['name']}: failed (status {r['status']}; its output is above the report in the run's log)")
            continue
        verdict = "within 10%" if r["within_10_percent"] else f"NOT within 10% ({(r['ratio_median'] - 1) * 100:.0f}% slower)"
        lines.append(f"{comparison_label(r)}: new/old median {r['ratio_median']:.2f} ({ms(r['new']['median_ms'])} vs "
                     f"{ms(r['old']['median_ms'])}), p90 {r['ratio_p90']:.2f}: {verdict}")
    return lines


def baseline_lines(sections):
    """BENCHMARKS.md's section for the comparisons with baseline builds: one part per baseline."""
    lines = [BASELINE_HEADING, ""]
    for section in sections:
        if len(sections) > 1:
            lines += [f"### Against {section['baseline_rev']}", ""]
        lines += baseline_part(section) + [""]
    return lines[:-1]


def baseline_part(section):
    """The part of BENCHMARKS.md's baseline section for a comparison with one baseline build."""
    old, new = section.get("baseline_commit") or "unknown", section.get("current_commit") or "unknown"
    commands = ", ".join(f"`{c}`" for c in section["commands"])
    lines = [f"Measured by {commands} on {section['date']}: {section['machine']}. The baseline "
             f"{section['baseline_rev']} (old, commit {old[:12]}) and this build (new, commit {new[:12]}"
             f"{' with changes' if new.endswith('-dirty') else ''}), both release builds, in turn in one loop on the "
             "same store server: handovers round by round, latency in blocks of rounds (one `baton-bench latency` "
             "each; a build's median and p90 are the medians of its blocks', which `baton-bench` rounds to 10 µs; "
             "the row of a whole round is instead its mean to the microsecond by the wall clock: the median time "
             "of a block's process less that of a process of no counted rounds, over the block's rounds; its "
             "p90 is that of the blocks' times). Ratio = new ÷ old; within 10% when the medians' ratio is at "
             "most 1.10.", "",
             "| scenario | store | old median | old p90 | new median | new p90 | new/old median | new/old p90 | "
             "rounds per build | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in section["results"]:
        if r.get("failed"):
            lines.append(f"| {r['name']} | – | – | – | – | – | – | – | – | **failed** (status {r['status']}) |")
            continue
        scenario = r["scenario"]
        lines.append(f"| {scenario} | {r['store']} | {ms(r['old']['median_ms'])} | {ms(r['old']['p90_ms'])} | "
                     f"{ms(r['new']['median_ms'])} | {ms(r['new']['p90_ms'])} | {r['ratio_median']:.2f} | "
                     f"{r['ratio_p90']:.2f} | {r['new']['rounds']} | "
                     f"{'within 10%' if r['within_10_percent'] else '**not within 10%**'} |")
    return lines


def splice(text, section_lines):
    """`text` (BENCHMARKS.md) with its baseline section replaced by `section_lines`, or these added before "How to
    read this"."""
    block = "\n".join(section_lines) + "\n"
    if BASELINE_HEADING in text:
        start = text.index(BASELINE_HEADING)
        end = text.find("\n## ", start)
        return text[:start] + block + ("\n" + text[end + 1:] if end >= 0 else "")
    anchor = text.find("## How to read this")
    if anchor >= 0:
        return text[:anchor] + block + "\n" + text[anchor:]
    return text + ("\n" if text else "") + block


def report_comparisons_only(comparisons, host, today):
    """A run that only compared builds: the comparison's section of BENCHMARKS.md and of bench-results.json
    replaced, the rest of both left as they are."""
    try:
        with open("bench-results.json") as f:
            previous = json.load(f)
    except (OSError, ValueError):
        previous = {"machine": host, "date": today}
    sections = baseline_sections(comparisons, previous, host, today)
    previous.pop("baseline_comparison", None)
    previous["baseline_comparisons"] = sections
    with open("bench-results.json", "w") as f:
        json.dump(previous, f, indent=2)
    try:
        text = open("BENCHMARKS.md").read()
    except OSError:
        text = "# Benchmarks\n\n"
    lines = baseline_lines(sections)
    open("BENCHMARKS.md", "w").write(splice(text, lines))
    print("\n".join(lines + [""] + verdicts(sections[-1])))


# The bounds of the HTTP rows, by scenario (with 64 connections): throughput as a share of the same server's /alive.
HTTP_BOUNDS = {
    "v1 elect, new rounds (202)": "≥ 0.3×, p99 < 10 ms",
    "v1 elect, repeated losers (204)": "≥ 0.5×, p99 < 10 ms",
    "v2 acquire, new keys (200)": "≥ 0.3×, p99 < 10 ms",
    "v2 renew (200)": "p99 < 10 ms",
}


def main():
    mode, build_s, run_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    results = [json.loads(r) for r in sys.argv[4:]]
    comparisons = [r for r in results if r.get("kind") == "baseline-comparison"]
    results = [r for r in results if r.get("kind") != "baseline-comparison"]
    host = machine()
    today = time.strftime("%Y-%m-%d")
    if comparisons and not results:
        report_comparisons_only(comparisons, host, today)
        return
    previous_json = None
    measured = f"Measured by `scripts/bench{' --quick' if mode == '--quick' else ''}` on {today}: {host}."
    remeasured = []
    if mode == "--some":
        # Named scenarios: their rows replace the same scenarios' rows of the last run, in place.
        try:
            with open("bench-results.json") as f:
                previous = json.load(f)
        except (OSError, ValueError):
            previous = None
        previous_json = previous
        if previous and "results" in previous:
            names = [r.get("name") for r in results]
            merged, placed = [], set()
            for r in previous["results"]:
                if r.get("name") in names:
                    if r["name"] not in placed:
                        merged += [n for n in results if n.get("name") == r["name"]]
                        placed.add(r["name"])
                else:
                    merged.append(r)
            merged += [r for r in results if r.get("name") not in placed]
            results = merged
            # Every scenario measured again since the whole run, each with its own command.
            remeasured = previous.get("remeasured", [])
            again = sorted(set(names))
            remeasured = [r for r in remeasured if r["names"] != again and not set(r["names"]) <= set(again)]
            remeasured.append({"names": again, "date": today})
            shown = "; ".join(f"{', '.join(r['names'])} measured again by `scripts/bench {' '.join(r['names'])}` "
                              f"on {r['date']}" for r in remeasured)
            measured = (f"Measured by `scripts/bench{' --quick' if previous['mode'] == 'quick' else ''}` on "
                        f"{previous['date']}; {shown}: {host}.")
            mode, build_s, run_s = "--" + previous["mode"], previous["build_seconds"], previous["run_seconds"] + run_s
            today = previous["date"]
    sections = baseline_sections(comparisons, previous_json, host, time.strftime("%Y-%m-%d"))
    with open("bench-results.json", "w") as f:
        json.dump({"machine": host, "mode": mode.strip("-"), "build_seconds": build_s, "run_seconds": run_s,
                   "date": today, "remeasured": remeasured, "results": results,
                   **({"baseline_comparisons": sections} if sections else {})}, f, indent=2)
    lines = ["# Benchmarks", "",
             measured,
             "The machine is shared and noisy and the load generators run",
             "on the same cores as Baton: read medians and ratios measured side by side in this run, not lone absolute",
             f"numbers. Release build {build_s} s; scenarios {run_s} s. Each run also writes `bench-results.json` (every figure and sample; not committed).",
             "", "| scenario | store | Baton | peer in the same run, or the bound | ratio | command |",
             "|---|---|---|---|---|---|"]
    for r in results:
        for row in summary_rows(r):
            lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    handovers = [r for r in results if r.get("kind") in ("handover", "failover", "latency")]
    if handovers:
        lines += ["", "## Percentiles (HDR histogram)", "",
                  "| scenario | store | median | p90 | p99 | min | max | rounds |", "|---|---|---|---|---|---|---|---|"]
        for r in handovers:
            lines.append(f"| {r['scenario']} | {r['store']} | {ms(r['median_ms'])} | {ms(r['p90_ms'])} | "
                         f"{ms(r['p99_ms'])} | {ms(r['min_ms'])} | {ms(r['max_ms'])} | {r['rounds']} |")
            if "peer" in r:
                lines.append(f"| {r['peer']} (peer) | {r['store']} | {ms(r['peer_median_ms'])} | "
                             f"{ms(r.get('peer_p90_ms'))} | {ms(r.get('peer_p99_ms'))} | {ms(r.get('peer_min_ms'))} | "
                             f"{ms(r.get('peer_max_ms'))} | {r.get('peer_rounds', r['rounds'])} |")
            second = r.get("second_peer")
            if second:
                lines.append(f"| {second['peer']} (peer) | {r['store']} | {ms(second['median_ms'])} | "
                             f"{ms(second.get('p90_ms'))} | {ms(second.get('p99_ms'))} | {ms(second.get('min_ms'))} | "
                             f"{ms(second.get('max_ms'))} | {second['rounds']} |")
        notes = [f"- {r['scenario']} ({r['store']}): starting the command alone takes {r['command_start_ms']} ms "
                 "(median), included above." for r in handovers if "command_start_ms" in r]
        lines += [""] + notes if notes else []
    loads = [r for r in results if r.get("kind") == "http"]
    if loads:
        alive = next((r for r in loads if r["scenario"] == "/alive"), None)
        lines += ["", "## HTTP service: one `baton serve` on SQLite, side by side", "",
                  f"wrk, 1 thread, {loads[0]['connections']} keep-alive connections, {loads[0]['seconds']} s per row; "
                  "SQLite with `synchronous=FULL` (the default: every answered write is on the disk); every answer "
                  "checked against the server's /metrics.", "",
                  "| route | store | requests/s | p50 | p90 | p99 | requests | errors | throughput vs /alive | bound |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in loads:
            ratio = f"{r['requests_per_s'] / alive['requests_per_s']:.2f}" if alive else "–"
            lines.append(f"| {r['scenario']} | {r['store']} | {r['requests_per_s']:.0f} | {ms(r['p50_ms'])} | "
                         f"{ms(r['p90_ms'])} | {ms(r['p99_ms'])} | {r['requests']} | {r['errors']} | {ratio} | "
                         f"{HTTP_BOUNDS.get(r['scenario'], '–')} |")
    if sections:
        lines += [""] + baseline_lines(sections)
    lines += ["", HOW_TO_READ.rstrip()]
    text = "\n".join(lines) + "\n"
    open("BENCHMARKS.md", "w").write(text)
    print(text)
    if comparisons:
        print("\n".join(verdicts(sections[-1])))


if __name__ == "__main__":
    main()
