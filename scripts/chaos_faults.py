#!/usr/bin/env python3
"""One chaos run on one store (called by scripts/chaos): starts the candidates, injects faults on a seeded
schedule, then asks `baton-chaos check` to judge the records.

Candidates campaign for one key: `baton run --retry` processes whose command is `baton-chaos record`, and
library workers (`baton-chaos worker`). On a store reached over TCP each candidate talks to it through a
`baton-chaos proxy` of its own, so one candidate can lose the store while its process keeps running. A
candidate that exits (killed, or stopped gracefully) is started again.

Faults (each written to records/faults.log on CLOCK_MONOTONIC before it is injected):
  kill       SIGKILL to the leader's campaigning process (baton run's command dies with it)
  term       SIGTERM to it: a graceful stop and handover
  stop       SIGSTOP to the leader's process groups for 1.3-2 ttl, then SIGCONT (pause/resume records)
  blackhole  the leader's proxy holds all traffic for 1.5-2.5 ttl (a partition; late bytes arrive after)
  cut        the leader's proxy closes its connections and refuses new ones for 0.3 s
  delay      the leader's proxy delays every chunk by 0.1-0.3 ttl for 2 s
  restart    the store restarts keeping its data (DIR/restart; on Redlock one node of three; none on S3, whose
             moto server keeps its objects in memory only)
  wipe       the store restarts without its data (DIR/wipe; Redis only)
"""

import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

KEY = "chaos"
RUN_CANDIDATES = 3
LIBRARY_WORKERS = 2


def now():
    return time.monotonic_ns()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds(duration):
    """Parses 1s / 800ms."""
    if duration.endswith("ms"):
        return int(duration[:-2]) / 1000
    return float(duration[:-1])


class Run:
    def __init__(self, options):
        self.options = options
        self.random = random.Random(f"{options.seed}/{options.store}")
        self.ttl = seconds(options.ttl)
        self.records = os.path.join(options.dir, "records")
        self.faults = open(os.path.join(self.records, "faults.log"), "a", buffering=1)
        self.networked = not options.url.startswith("sqlite:")
        self.candidates = []  # dicts: name, command, control, process, restart_at
        self.proxies = []
        self.injected = 0

    # --- records -----------------------------------------------------------------------------------------------

    def note(self, text, time=None):
        self.faults.write(f"{time if time is not None else now()} {text}\n")

    def leader(self):
        """The newest work record, if written in the last 300 ms: (campaigner pid, writer pid, token)."""
        newest = None
        for name in os.listdir(self.records):
            if not name.endswith(".log") or name == "faults.log":
                continue
            path = os.path.join(self.records, name)
            try:
                with open(path, "rb") as file:
                    file.seek(max(0, os.path.getsize(path) - 300))
                    lines = file.read().decode(errors="replace").splitlines()
            except OSError:
                continue
            for line in reversed(lines):
                fields = line.split()
                if len(fields) == 6 and fields[1] in ("start", "tick"):
                    record = (int(fields[0]), int(fields[5]), int(fields[4]), int(fields[2]))
                    if newest is None or record[0] > newest[0]:
                        newest = record
                    break
        if newest is None or now() - newest[0] > 300_000_000:
            return None
        return newest[1:]

    def wait_for_leader(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tend()
            found = self.leader()
            if found:
                return found
            time.sleep(0.05)
        return None

    # --- processes ---------------------------------------------------------------------------------------------

    def proxied_url(self, control):
        """Starts a proxy for every host:port of the URL (of an s3:// URL: its endpoint's) and returns the URL
        through them."""
        if self.options.url.startswith("s3://"):
            match = re.match(r"^(.*[?&]endpoint=https?://)([^/&]*)(.*)$", self.options.url)
        else:
            match = re.match(r"^([a-z]+://(?:[^@/]*@)?)([^/?]*)(.*)$", self.options.url)
        head, hosts, tail = match.groups()
        maps, through = [], []
        for host in hosts.split(","):
            port = free_port()
            maps += ["--map", f"{port}={host}"]
            through.append(f"127.0.0.1:{port}")
        with open(control, "w") as file:
            file.write("pass\n")
        proxy = subprocess.Popen(
            [self.bin("baton-chaos"), "proxy", "--control", control] + maps,
            stdout=subprocess.DEVNULL, stderr=open(control + ".log", "a"), start_new_session=True)
        self.proxies.append(proxy)
        for address in through:
            wait_for_port(int(address.split(":")[1]))
        return head + ",".join(through) + tail

    def bin(self, name):
        return os.path.join(self.options.bin, name)

    def start_candidates(self):
        for index in range(RUN_CANDIDATES + LIBRARY_WORKERS):
            library = index >= RUN_CANDIDATES
            name = f"lib-{index}" if library else f"run-{index}"
            control = os.path.join(self.options.dir, f"{name}.control")
            url = self.proxied_url(control) if self.networked else self.options.url
            if library:
                command = [self.bin("baton-chaos"), "worker", "--store", url, "--key", KEY, "--id", name,
                           "--ttl", self.options.ttl, "--log", self.records]
            else:
                command = [self.bin("baton"), "run", "--store", url, "--key", KEY, "--id", name,
                           "--ttl", self.options.ttl, "--retry", "--quiet", "--",
                           self.bin("baton-chaos"), "record", "--log", self.records]
            candidate = {"name": name, "command": command, "control": control, "process": None, "restart_at": 0,
                         "generation": 0}
            self.candidates.append(candidate)
            self.spawn(candidate)

    def spawn(self, candidate):
        """Starts the candidate's process. Every process campaigns under an identity of its own, as the contract
        asks (`baton run`'s default is hostname:pid): a restarted process with the identity of a dead one would
        renew the dead one's term and inherit its token."""
        log = open(os.path.join(self.options.dir, candidate["name"] + ".log"), "a")
        candidate["generation"] += 1
        command = list(candidate["command"])
        command[command.index("--id") + 1] = f"{candidate['name']}.{candidate['generation']}"
        candidate["process"] = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)

    def tend(self):
        """Starts again, after a short while, every candidate that exited. A proxy that exited is a fault of the
        harness, not of the store: the run stops."""
        for proxy in self.proxies:
            if proxy.poll() is not None:
                raise SystemExit(f"chaos {self.options.store}: a proxy exited ({proxy.returncode}): {proxy.args}")
        for candidate in self.candidates:
            process = candidate["process"]
            if process.poll() is None:
                continue
            if candidate["restart_at"] == 0:
                candidate["restart_at"] = time.monotonic() + self.random.uniform(0.1, 0.5)
            elif time.monotonic() >= candidate["restart_at"]:
                candidate["restart_at"] = 0
                self.spawn(candidate)

    def candidate_of(self, campaigner):
        for candidate in self.candidates:
            if candidate["process"].pid == campaigner:
                return candidate
        return None

    def sleep(self, duration):
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            self.tend()
            time.sleep(min(0.05, max(0, deadline - time.monotonic())))

    def stop_all(self):
        for candidate in self.candidates:
            try:
                os.killpg(candidate["process"].pid, signal.SIGKILL)
            except OSError:
                pass
            candidate["process"].wait()
        for proxy in self.proxies:
            proxy.kill()
            proxy.wait()

    # --- faults ------------------------------------------------------------------------------------------------

    def kinds(self):
        kinds = ["kill", "term", "stop"]
        if self.networked:
            kinds += ["blackhole", "cut", "delay"]
        if os.path.exists(os.path.join(self.options.dir, "restart")):
            kinds.append("restart")
        if os.path.exists(os.path.join(self.options.dir, "wipe")):
            kinds.append("wipe")
        return kinds

    def inject(self, kind):
        if kind in ("restart", "wipe"):
            self.note(f"fault {kind} - -")
            subprocess.run([os.path.join(self.options.dir, kind), str(self.random.randrange(1000))], check=True)
            self.injected += 1
            return
        leader = self.wait_for_leader(10 * self.ttl + 5)
        if leader is None:
            return
        campaigner, writer, token = leader
        candidate = self.candidate_of(campaigner)
        if candidate is None:
            return
        target = f"{campaigner} {token}"
        if kind == "kill":
            self.note(f"fault kill {target}")
            signal_process(campaigner, signal.SIGKILL)
        elif kind == "term":
            self.note(f"fault term {target}")
            signal_process(campaigner, signal.SIGTERM)
        elif kind == "stop":
            # The writer of `baton run` is in the group of the keeper that baton forked; a library worker is its own.
            groups = {campaigner, group_of(writer)}
            stopped = now()
            self.note(f"pause {campaigner}", stopped)
            self.note(f"fault stop {target}", stopped)
            for group in groups:
                signal_group(group, signal.SIGSTOP)
            self.sleep(self.ttl * self.random.uniform(1.3, 2.0))
            self.note(f"resume {campaigner}")
            for group in groups:
                signal_group(group, signal.SIGCONT)
        else:
            control = candidate["control"]
            if kind == "blackhole":
                self.note(f"fault blackhole {target}")
                self.control(control, "blackhole", self.ttl * self.random.uniform(1.5, 2.5))
            elif kind == "cut":
                self.note(f"fault cut {campaigner} -")
                self.control(control, "cut", 0.3)
            elif kind == "delay":
                milliseconds = int(self.ttl * 1000 * self.random.uniform(0.1, 0.3))
                self.note(f"fault delay {campaigner} -")
                self.control(control, f"delay {milliseconds}", 2.0)
        self.injected += 1

    def control(self, path, mode, duration):
        with open(path, "w") as file:
            file.write(mode + "\n")
        self.sleep(duration)
        with open(path, "w") as file:
            file.write("pass\n")
        time.sleep(0.05)

    def run(self):
        self.start_candidates()
        try:
            if self.wait_for_leader(30) is None:
                print(f"chaos {self.options.store}: no leader within 30 s; see {self.options.dir}/*.log",
                      file=sys.stderr)
            end = time.monotonic() + self.options.seconds
            kinds = self.kinds()
            while time.monotonic() < end:
                self.sleep(self.random.uniform(0.3, 1.2) * self.ttl)
                self.inject(self.random.choice(kinds))
            # Time for the last fault to heal, so "elections continue" is judged at the end too.
            self.sleep(2 * self.ttl + 1)
            self.note("finish")
        finally:
            self.stop_all()
        bound = int((10 * self.ttl + 5) * 1000)
        stale = int((self.ttl + 1) * 1000)
        checked = subprocess.run(
            [self.bin("baton-chaos"), "check", "--label", self.options.store, "--bound", str(bound),
             "--stale-window", str(stale), "--pause-gap", str(int(self.ttl * 500)), "--summary", self.options.summary,
             self.records])
        return checked.returncode


def signal_process(pid, number):
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def group_of(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return pid


def signal_group(group, number):
    try:
        os.killpg(group, number)
    except ProcessLookupError:
        pass


def wait_for_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"the proxy did not listen on 127.0.0.1:{port}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--ttl", default="1s")
    parser.add_argument("--summary", required=True)
    # SIGTERM (scripts/chaos being stopped) ends the run through its cleanup, which stops every candidate.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    signal.signal(signal.SIGINT, lambda number, frame: sys.exit(128 + number))
    sys.exit(Run(parser.parse_args()).run())


if __name__ == "__main__":
    main()
