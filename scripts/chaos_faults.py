#!/usr/bin/env python3
"""One chaos run on one store (called by scripts/chaos): starts the candidates, injects faults on a seeded
schedule, then asks `baton-chaos check` to judge the records.

Candidates campaign for one key: `baton run --retry` processes whose command is `baton-chaos record`, and
library workers (`baton-chaos worker`). On a store reached over TCP each candidate talks to it through a
`baton-chaos proxy` of its own, so one candidate can lose the store while its process keeps running. A
candidate that exits (killed, or stopped gracefully) is started again.

With --permits N, the candidates are library workers of a semaphore of N (`baton-chaos worker --permits N`,
--candidates of them, 8 by default) on a key of their own. Each slot is judged as one key: its work records go
to records-semaphore/slot-S/, and so do the faults aimed at a holder of that slot (faults on the store, pauses
and the finish go to every slot's log). One owner per slot at a time means never more than N working holders.
A slot must be held again within the general bound (10 ttl + 5 s), not the 3 ttl the election runs check after a
blackhole, drop-waiters or partition.

With --shards M, the candidates are members of a sharded key of M shards (`baton-chaos worker --shards M`,
--candidates of them), judged as a semaphore's are: each shard's records go to records-shards/slot-S/, one owner per
shard at a time, held again within the general bound.

With --netns, every candidate of a network store runs with its proxy on a host of its own: a network namespace
joined by a veth to the bridge whose address the store listens on (scripts/chaos sets up the bridge and the store).

Faults are dealt from a shuffled deck in which the newer kinds (stop-baton, resign-busy, drop-waiters, partition)
appear twice, so that each comes up about as often as needed for a long run; a kind that does not fit the current
leader (stop-baton needs a `baton run` leader, resign-busy a library one) waits for a leader it fits. --quick deals
the newer kinds first, with shorter stops and partitions, and hands the key on (a `term` fault) when the next newer
kind does not fit the leader.

Faults (each written to records/faults.log on CLOCK_MONOTONIC before it is injected):
  kill       SIGKILL to the leader's campaigning process (baton run's command dies with it)
  term       SIGTERM to it: a graceful stop and handover
  stop       SIGSTOP to the leader's process groups for 1.3-2 ttl, then SIGCONT (pause/resume records)
  stop-baton SIGSTOP to a `baton run` leader's own pid only (not its command's group) for 1.5-3 ttl, then SIGCONT;
             no pause record: the command must be stopped by the deadline although `baton` cannot act
  resign-busy  a library leader's body ignores cancellation for 0.15-0.3 ttl (less than its term has left) while
             the worker resigns (SIGUSR1): the next term must not start before the body returned
  drop-waiters  every waiting candidate's proxy turns its open connections silent (bytes dropped both ways,
             sockets open; new connections pass) and the leader is killed (-9); a new term must begin within
             3 ttl (checked with --fault-bound); once it has, or after 3 ttl + 0.25 s, the silent connections
             are closed
  partition  (--netns) iptables DROP both ways on the leader's namespace for 1.5-2.5 ttl, then flushed; a new term
             must begin within 3 ttl
  blackhole  the leader's proxy holds all traffic for 1.5-2.5 ttl (a partition; late bytes arrive after); a new
             term must begin within 3 ttl
  cut        the leader's proxy closes its connections and refuses new ones for 0.3 s
  delay      the leader's proxy delays every chunk by 0.1-0.3 ttl for 2 s
  restart    the store restarts keeping its data (DIR/restart; on Redlock one node of three; none on S3, whose
             moto server keeps its objects in memory only)
  wipe       the store restarts without its data (DIR/wipe; Redis only)
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

KEY = "chaos"
SEMAPHORE_KEY = "chaos-semaphore"
SHARDED_KEY = "chaos-sharded"
RUN_CANDIDATES = 3
LIBRARY_WORKERS = 2
NEW_KINDS = ["stop-baton", "resign-busy", "drop-waiters", "partition"]


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
        self.permits = options.permits
        self.shards = options.shards
        # A semaphore's slots and a sharded key's shards are each judged as one key.
        self.slotted = bool(self.permits or self.shards)
        if self.slotted:
            kind = "semaphore" if self.permits else "shards"
            self.records = os.path.join(options.dir, f"records-{kind}")
            self.slots = [os.path.join(self.records, f"slot-{slot}") for slot in range(self.permits or self.shards)]
            for slot in self.slots:
                os.makedirs(slot, exist_ok=True)
            self.fault_logs = [open(os.path.join(slot, "faults.log"), "a", buffering=1) for slot in self.slots]
        else:
            self.records = os.path.join(options.dir, "records")
            self.slots = [self.records]
            self.fault_logs = [open(os.path.join(self.records, "faults.log"), "a", buffering=1)]
        self.networked = not options.url.startswith("sqlite:")
        self.netns = options.netns if self.networked else None
        self.candidates = []  # dicts: name, command, control, process, restart_at, hold_until, namespace, ...
        self.proxies = []
        self.namespaces = []
        self.injected = 0

    # --- records -----------------------------------------------------------------------------------------------

    def note(self, text, time=None, slot=None):
        """Writes a fault record: to the log of `slot` (a fault aimed at a holder of it), else to every log."""
        line = f"{time if time is not None else now()} {text}\n"
        for index, log in enumerate(self.fault_logs):
            if slot is None or index == slot:
                log.write(line)

    def note_fault(self, kind, campaigner, token, slot, time=None):
        """Writes `fault KIND CAMPAIGNER TOKEN` to the log of the slot the fault is aimed at. A sharded key's member
        holds several shards at once: the fault is noted in each shard it works on, with its token there."""
        holdings = self.holdings(campaigner) if self.shards else {}
        if not holdings:
            holdings = {slot: token}
        for held, held_token in holdings.items():
            self.note(f"fault {kind} {campaigner} {held_token if token != '-' else '-'}", time, slot=held)

    def holdings(self, campaigner):
        """The slots whose newest work record, written in the last 300 ms, is `campaigner`'s: {slot: token}."""
        held = {}
        for slot, directory in enumerate(self.slots):
            newest = None
            for name in os.listdir(directory):
                if not name.endswith(".log") or name == "faults.log":
                    continue
                record = newest_record(os.path.join(directory, name))
                if record and (newest is None or record[0] > newest[0]):
                    newest = record
            if newest and newest[1] == campaigner and now() - newest[0] <= 300_000_000:
                held[slot] = newest[3]
        return held

    def leader(self):
        """The newest work record, if written in the last 300 ms: (campaigner pid, writer pid, token, slot); with
        --permits, of the holder of any slot that wrote last."""
        newest = None
        for slot, directory in enumerate(self.slots):
            for name in os.listdir(directory):
                if not name.endswith(".log") or name == "faults.log":
                    continue
                record = newest_record(os.path.join(directory, name))
                if record and (newest is None or record[0] > newest[0]):
                    newest = (*record, slot)
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

    def proxied_url(self, control, namespace=None):
        """Starts a proxy for every host:port of the URL (of an s3:// URL: its endpoint's) and returns the URL
        through them. With a namespace, the proxy runs in it and listens on the namespace's own loopback."""
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
            in_namespace(namespace, [self.bin("baton-chaos"), "proxy", "--control", control] + maps),
            stdout=subprocess.DEVNULL, stderr=open(control + ".log", "a"), start_new_session=True)
        self.proxies.append(proxy)
        for address in through:
            wait_for_port(int(address.split(":")[1]), namespace)
        return head + ",".join(through) + tail

    # --- hosts of their own (--netns) ---------------------------------------------------------------------------

    def add_namespace(self, index):
        """Creates namespace PREFIX-INDEX joined to the bridge by a veth (PREFIXhINDEX on the bridge,
        PREFIXnINDEX inside, address .(10+INDEX) of the bridge's /24) and returns (namespace, inner interface)."""
        prefix, bridge, address = self.netns["prefix"], self.netns["bridge"], self.netns["address"]
        namespace, outer, inner = f"{prefix}-{index}", f"{prefix}h{index}", f"{prefix}n{index}"
        subprocess.run(["ip", "netns", "del", namespace], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", outer], stderr=subprocess.DEVNULL)
        self.namespaces.append(namespace)
        network = address.rsplit(".", 1)[0]
        for command in (
            ["ip", "netns", "add", namespace],
            ["ip", "link", "add", outer, "type", "veth", "peer", "name", inner],
            ["ip", "link", "set", inner, "netns", namespace],
            ["ip", "link", "set", outer, "master", bridge, "up"],
            ["ip", "netns", "exec", namespace, "ip", "addr", "add", f"{network}.{10 + index}/24", "dev", inner],
            ["ip", "netns", "exec", namespace, "ip", "link", "set", inner, "up"],
            ["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"],
        ):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"chaos {self.options.store}: {' '.join(command)}: {done.stderr.strip()}")
        return namespace, inner

    def remove_namespaces(self):
        for namespace in self.namespaces:
            subprocess.run(["ip", "netns", "del", namespace], stderr=subprocess.DEVNULL)
        self.namespaces = []

    def iptables(self, candidate, *arguments):
        subprocess.run(["ip", "netns", "exec", candidate["namespace"], "iptables", "-w", *arguments], check=True)

    def bin(self, name):
        return os.path.join(self.options.bin, name)

    def start_candidates(self):
        count = self.options.candidates if self.slotted else RUN_CANDIDATES + LIBRARY_WORKERS
        for index in range(count):
            library = self.slotted or index >= RUN_CANDIDATES
            name = (f"sem-{index}" if self.permits else f"shard-{index}" if self.shards
                    else f"lib-{index}" if library else f"run-{index}")
            control = os.path.join(self.options.dir, f"{name}.control")
            stubborn = os.path.join(self.options.dir, f"{name}.stubborn")
            namespace, interface = self.add_namespace(index) if self.netns else (None, None)
            url = self.proxied_url(control, namespace) if self.networked else self.options.url
            if self.permits:
                command = [self.bin("baton-chaos"), "worker", "--store", url, "--key", SEMAPHORE_KEY, "--id", name,
                           "--permits", str(self.permits), "--ttl", self.options.ttl, "--log", self.records,
                           "--stubborn-file", stubborn]
            elif self.shards:
                command = [self.bin("baton-chaos"), "worker", "--store", url, "--key", SHARDED_KEY, "--id", name,
                           "--shards", str(self.shards), "--ttl", self.options.ttl, "--log", self.records,
                           "--stubborn-file", stubborn]
            elif library:
                command = [self.bin("baton-chaos"), "worker", "--store", url, "--key", KEY, "--id", name,
                           "--ttl", self.options.ttl, "--log", self.records, "--stubborn-file", stubborn]
            else:
                command = [self.bin("baton"), "run", "--store", url, "--key", KEY, "--id", name,
                           "--ttl", self.options.ttl, "--retry", "--quiet", "--",
                           self.bin("baton-chaos"), "record", "--log", self.records]
            candidate = {"name": name, "command": command, "control": control, "stubborn": stubborn,
                         "library": library, "namespace": namespace, "interface": interface, "process": None,
                         "restart_at": 0, "hold_until": 0, "generation": 0}
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
        # `ip netns exec` sets the namespace and execs the command: the process keeps the pid Popen returns.
        candidate["process"] = subprocess.Popen(in_namespace(candidate["namespace"], command), stdout=log,
                                                stderr=log, start_new_session=True)

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
                candidate["restart_at"] = max(time.monotonic() + self.random.uniform(0.1, 0.5),
                                              candidate["hold_until"])
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
        self.remove_namespaces()

    # --- faults ------------------------------------------------------------------------------------------------

    def kinds(self):
        # A semaphore's candidates and a sharded key's members are all library workers: no `baton` to stop on its
        # own.
        kinds = ["kill", "term", "stop", "resign-busy"] if self.slotted else ["kill", "term", "stop", "stop-baton",
                                                                              "resign-busy"]
        if self.networked:
            kinds += ["blackhole", "cut", "delay", "drop-waiters"]
        if self.netns:
            kinds.append("partition")
        if os.path.exists(os.path.join(self.options.dir, "restart")):
            kinds.append("restart")
        if os.path.exists(os.path.join(self.options.dir, "wipe")):
            kinds.append("wipe")
        return kinds

    def deck(self, first=False):
        """A shuffled deck of every kind, the newer ones twice; with first, the newer ones once each ahead."""
        kinds = self.kinds()
        newer = [kind for kind in kinds if kind in NEW_KINDS]
        if first:
            # The kinds that fit any leader first: the others may have to wait for a leader they fit.
            anyone = [kind for kind in newer if kind not in ("stop-baton", "resign-busy")]
            typed = [kind for kind in newer if kind in ("stop-baton", "resign-busy")]
            rest = [kind for kind in kinds if kind not in NEW_KINDS]
            for part in (anyone, typed, rest):
                self.random.shuffle(part)
            return anyone + typed + rest
        deck = kinds + newer
        self.random.shuffle(deck)
        return deck

    @staticmethod
    def fits(kind, candidate):
        """Whether a kind of fault can be aimed at this leader."""
        if kind == "stop-baton":
            return not candidate["library"]
        if kind == "resign-busy":
            return candidate["library"]
        return True

    def inject(self, kind):
        """Injects one fault; returns False (injecting nothing) when the kind does not fit the current leader."""
        if kind in ("restart", "wipe"):
            self.note(f"fault {kind} - -")
            subprocess.run([os.path.join(self.options.dir, kind), str(self.random.randrange(1000))], check=True)
            self.injected += 1
            return True
        leader = self.wait_for_leader(10 * self.ttl + 5)
        if leader is None:
            return True
        campaigner, writer, token, slot = leader
        candidate = self.candidate_of(campaigner)
        if candidate is None:
            return True
        if not self.fits(kind, candidate):
            return False
        target = f"{campaigner} {token}"
        if kind == "kill":
            self.note_fault("kill", campaigner, token, slot)
            signal_process(campaigner, signal.SIGKILL)
        elif kind == "term":
            self.note_fault("term", campaigner, token, slot)
            signal_process(campaigner, signal.SIGTERM)
        elif kind == "stop":
            # The writer of `baton run` is in the group of the keeper that baton forked; a library worker is its own.
            groups = {campaigner, group_of(writer)}
            stopped = now()
            self.note(f"pause {campaigner}", stopped)
            self.note_fault("stop", campaigner, token, slot, stopped)
            for group in groups:
                signal_group(group, signal.SIGSTOP)
            self.sleep(self.ttl * self.random.uniform(1.3, 2.0))
            self.note(f"resume {campaigner}")
            for group in groups:
                signal_group(group, signal.SIGCONT)
        elif kind == "stop-baton":
            # Only `baton` stops; its keeper and command run on. Nothing marks the command's records as those of a
            # paused holder: it must have been stopped by the term's deadline.
            self.note_fault("stop-baton", campaigner, token, slot)
            signal_process(campaigner, signal.SIGSTOP)
            self.sleep(self.ttl * self.random.uniform(1.5, 2.0 if self.options.quick else 3.0))
            signal_process(campaigner, signal.SIGCONT)
        elif kind == "resign-busy":
            with open(candidate["stubborn"], "w") as file:
                file.write(f"{int(self.ttl * 1000 * self.random.uniform(0.15, 0.3))}\n")
            self.note_fault("resign-busy", campaigner, token, slot)
            signal_process(campaigner, signal.SIGUSR1)
        elif kind == "drop-waiters":
            waiters = [other for other in self.candidates if other is not candidate]
            # Silent a little longer than the 3 ttl in which the checker wants the next term.
            silent = 3 * self.ttl + 0.25
            self.note_fault("drop-waiters", campaigner, token, slot)
            for waiter in waiters:
                with open(waiter["control"], "w") as file:
                    file.write("drop\n")
            # Every proxy reads its control file within 20 ms: the waiters are silent before the leader dies. The
            # leader comes back only after the fault, so that a waiter has to take over.
            time.sleep(0.1)
            # A candidate that exited comes back after the fault too (its new connections would not be silent).
            for other in self.candidates:
                if other is candidate or other["process"].poll() is not None:
                    other["hold_until"] = time.monotonic() + silent
                    if other["restart_at"]:
                        other["restart_at"] = max(other["restart_at"], other["hold_until"])
            signal_process(campaigner, signal.SIGKILL)
            # The fault ends when a waiter has taken over (a later term writes), or after `silent`.
            deadline = time.monotonic() + silent
            while time.monotonic() < deadline:
                self.sleep(0.05)
                found = self.leader()
                if found and found[3] == slot and found[2] > token:
                    break
            for waiter in waiters:
                with open(waiter["control"], "w") as file:
                    file.write("pass\n")
                waiter["hold_until"] = 0
                if waiter["restart_at"] > time.monotonic() + 0.5:
                    waiter["restart_at"] = time.monotonic() + self.random.uniform(0.1, 0.5)
            candidate["hold_until"] = 0
            if candidate["restart_at"] > time.monotonic() + 0.5:
                candidate["restart_at"] = time.monotonic() + self.random.uniform(0.1, 0.5)
            time.sleep(0.05)
        elif kind == "partition":
            interface = candidate["interface"]
            self.note_fault("partition", campaigner, token, slot)
            self.iptables(candidate, "-A", "OUTPUT", "-o", interface, "-j", "DROP")
            self.iptables(candidate, "-A", "INPUT", "-i", interface, "-j", "DROP")
            self.sleep(self.ttl * self.random.uniform(1.5, 2.0 if self.options.quick else 2.5))
            self.iptables(candidate, "-F")
        else:
            control = candidate["control"]
            if kind == "blackhole":
                self.note_fault("blackhole", campaigner, token, slot)
                self.control(control, "blackhole", self.ttl * self.random.uniform(1.5, 2.5))
            elif kind == "cut":
                self.note_fault("cut", campaigner, "-", slot)
                self.control(control, "cut", 0.3)
            elif kind == "delay":
                milliseconds = int(self.ttl * 1000 * self.random.uniform(0.1, 0.3))
                self.note_fault("delay", campaigner, "-", slot)
                self.control(control, f"delay {milliseconds}", 2.0)
        self.injected += 1
        return True

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
            deck = self.deck(first=self.options.quick)
            while time.monotonic() < end:
                self.sleep(self.random.uniform(0.3, 1.2) * self.ttl)
                if not deck:
                    deck = self.deck()
                # The first kind in the deck that fits the current leader (a stop-baton waits for a `baton run`
                # leader, a resign-busy for a library one).
                leader = self.leader()
                current = self.candidate_of(leader[0]) if leader else None
                index = next((i for i, kind in enumerate(deck) if current is None or self.fits(kind, current)), None)
                if index is None:
                    # Only kinds that do not fit this leader are left: they wait for a later leader.
                    deck += self.deck()
                    continue
                if self.options.quick and index != 0:
                    # --quick has no time to wait for a leader the next newer kind fits: a graceful stop of this
                    # leader (a fault of its own) hands the key on.
                    self.inject("term")
                    continue
                kind = deck.pop(index)
                if not self.inject(kind):
                    deck.insert(0, kind)
            # Time for the last fault to heal, so "elections continue" is judged at the end too.
            self.sleep(2 * self.ttl + 1)
            self.note("finish")
        finally:
            self.stop_all()
        bound = int((10 * self.ttl + 5) * 1000)
        stale = int((self.ttl + 1) * 1000)
        failed = 0
        for slot, records in enumerate(self.slots):
            label = (f"{self.options.store}-semaphore{self.permits}/{slot}" if self.permits
                     else f"{self.options.store}-shards{self.shards}/{slot}" if self.shards else self.options.store)
            # A leader again within 3 ttl after a blackhole (the leader's or the waiters') or a partition. Not for a
            # semaphore's slots: there drop-waiters silences the other slots' holders too, and every waiter follows
            # every slot (on S3, a poll per slot), so a slot is held again within the general bound; and a shard
            # moves only once the members have seen a member gone or back, so likewise.
            bounds = [] if self.slotted else [argument for kind in ("blackhole", "drop-waiters", "partition")
                                              for argument in ("--fault-bound", f"{kind}={int(3 * self.ttl * 1000)}")]
            checked = subprocess.run(
                [self.bin("baton-chaos"), "check", "--label", label, "--bound", str(bound), *bounds,
                 "--stale-window", str(stale), "--pause-gap", str(int(self.ttl * 500)),
                 "--summary", self.options.summary, records])
            failed = failed or checked.returncode
        return failed


def newest_record(path):
    """The newest start or tick record of a work log: (time, campaigner pid, writer pid, token), or None."""
    try:
        with open(path, "rb") as file:
            file.seek(max(0, os.path.getsize(path) - 300))
            lines = file.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        fields = line.split()
        if len(fields) == 6 and fields[1] in ("start", "tick"):
            return (int(fields[0]), int(fields[5]), int(fields[4]), int(fields[2]))
    return None


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


def in_namespace(namespace, command):
    return ["ip", "netns", "exec", namespace] + command if namespace else command


def wait_for_port(port, namespace=None, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if namespace:
            probe = subprocess.run(["ip", "netns", "exec", namespace, "bash", "-c",
                                    f"exec 3<>/dev/tcp/127.0.0.1/{port}"], stderr=subprocess.DEVNULL)
            if probe.returncode == 0:
                return
        else:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                pass
        time.sleep(0.02)
    raise SystemExit(f"the proxy did not listen on 127.0.0.1:{port}" + (f" in {namespace}" if namespace else ""))


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
    parser.add_argument("--quick", action="store_true", help="deal the newer kinds of fault first")
    parser.add_argument("--permits", type=int, default=None,
                        help="candidates of a semaphore of this many permits (library workers), each slot judged")
    parser.add_argument("--shards", type=int, default=None,
                        help="members of a sharded key of this many shards (library workers), each shard judged")
    parser.add_argument("--candidates", type=int, default=8,
                        help="with --permits, how many candidates; with --shards, how many members")
    parser.add_argument("--netns", type=json.loads, default=None,
                        help='hosts of their own: {"prefix": P, "bridge": BR, "address": BRIDGE_IP}')
    # SIGTERM (scripts/chaos being stopped) ends the run through its cleanup, which stops every candidate.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    signal.signal(signal.SIGINT, lambda number, frame: sys.exit(128 + number))
    sys.exit(Run(parser.parse_args()).run())


if __name__ == "__main__":
    main()
