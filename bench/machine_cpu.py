"""What a message costs the whole machine: CPU of every process on its path, in one window.

Used by `messaging.py --machine`. A sampler thread reads every watched process's CPU every
0.25 s from the start of the chatty phase's sending window to its end (drain and socket close
included), so processes that start meanwhile (new PostgreSQL backends, Dramatiq children) count
from zero and those that end keep what was last read. The table is taken over the steady part
of the sending window: from `--machine-skip` s after the first send (by then the worker's
notification checks, PUSH_DELAY after each message, run at the sending rate) to the last send,
divided by the messages sent in that interval and delivered; the last column is the whole run's
CPU seconds (the sockets' close and the drain included). Groups:

- the API processes (listening on the URL's port, children included),
- the worker processes (`--worker-pid`, children included),
- PostgreSQL: the backends of the bench database, split by whose connection they serve (the
  client port in their process title matched against the API's and the worker's sockets), the
  backends of other databases, and the shared background processes (WAL writer, checkpointer …),
- the Redis server (the process listening on the Redis URL's port),
- the load generator (this process and its children: the generator processes, reaped ones
  included through `children_user`/`children_system`),
- the rest of the machine (the whole machine's busy time minus all of the above).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil
from benchlib import find_listener_pid, local_ports, process_tree

_BACKEND = re.compile(r"^postgres: \S+ (\S+) [\d.:a-f\[\]]+\((\d+)\)")


def _cpu(proc: psutil.Process) -> float | None:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return None


def _self_and_reaped() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class _Seen:
    group: str
    first: float  # CPU seconds at the start (0 for a process started during the window)
    last: float


@dataclass
class _Sample:
    at: float  # time.time()
    cpu: dict[int, float]  # pid -> CPU seconds since the start
    machine: float  # busy CPU seconds of the whole machine since the start


GENERATOR = "load generator (this bench)"
ORDER = ["API", "worker", "PostgreSQL for the API", "PostgreSQL for the worker", "PostgreSQL for others (bench db)",
         "PostgreSQL background (shared)", "PostgreSQL, other databases", "Redis server", GENERATOR]
OUTSIDE = (GENERATOR, "rest of the machine", "PostgreSQL, other databases")


def _busy(before: Any, after: Any) -> float:
    idle = (after.idle + getattr(after, "iowait", 0)) - (before.idle + getattr(before, "iowait", 0))
    return (sum(after) - sum(before)) - idle


@dataclass
class MachineWatch:
    """Samples the CPU of every process a message touches; `report()` prints one table."""

    api_pids: list[int]
    worker_pids: list[int]
    database_url: str
    redis_url: str
    interval: float = 0.25
    _seen: dict[int, _Seen] = field(default_factory=dict)
    _samples: list[_Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> MachineWatch:
        parts = urlsplit(self.database_url)
        self._db_name = parts.path.lstrip("/")
        self._postmaster = find_listener_pid(parts.port or 5432)
        self._redis = find_listener_pid(urlsplit(self.redis_url).port or 6379)
        self._started_at = time.time()
        self._machine0 = psutil.cpu_times()
        self._gen0 = _self_and_reaped()
        self._live0 = {p.pid: _cpu(p) or 0.0 for p in psutil.Process().children(recursive=True)}
        self._api_ports: set[int] = set()
        self._worker_ports: set[int] = set()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, name="machine-cpu", daemon=True)
        self._thread.start()
        return self

    def _groups(self) -> dict[int, tuple[psutil.Process, str]]:
        api, worker = process_tree(self.api_pids), process_tree(self.worker_pids)
        # Connection pools open sockets during the run: refresh the ports each sample.
        self._api_ports |= local_ports(api)
        self._worker_ports |= local_ports(worker)
        out = {p.pid: (p, GENERATOR) for p in psutil.Process().children(recursive=True)}
        out |= {p.pid: (p, "API") for p in api}
        out |= {p.pid: (p, "worker") for p in worker}
        if self._redis:
            with contextlib.suppress(psutil.Error):
                out[self._redis] = (psutil.Process(self._redis), "Redis server")
        if self._postmaster:
            with contextlib.suppress(psutil.Error):
                master = psutil.Process(self._postmaster)
                out[master.pid] = (master, "PostgreSQL background (shared)")
                for child in master.children():
                    out[child.pid] = (child, self._pg_group(child))
        return out

    def _pg_group(self, proc: psutil.Process) -> str:
        try:
            title = " ".join(proc.cmdline())
        except psutil.Error:
            return "PostgreSQL background (shared)"
        m = _BACKEND.match(title)
        if not m:
            return "PostgreSQL background (shared)"
        if m.group(1) != self._db_name:
            return "PostgreSQL, other databases"
        port = int(m.group(2))
        if port in self._api_ports:
            return "PostgreSQL for the API"
        if port in self._worker_ports:
            return "PostgreSQL for the worker"
        return "PostgreSQL for others (bench db)"

    def _sample(self, first: bool = False) -> None:
        for pid, (proc, group) in self._groups().items():
            cpu = _cpu(proc)
            if cpu is None:
                continue
            seen = self._seen.get(pid)
            if seen is None:
                born_before = first
                with contextlib.suppress(psutil.Error):
                    born_before = born_before or proc.create_time() < self._started_at
                # A process seen late but older than the window: its CPU before it is unknown,
                # so it counts from now (rare: the tree is sampled every `interval`).
                self._seen[pid] = _Seen(group, cpu if born_before else 0.0, cpu)
            else:
                seen.last = cpu
                if seen.group.startswith("PostgreSQL for others") and group != seen.group:
                    seen.group = group  # its client's port became known later
        cpu = {pid: max(0.0, seen.last - seen.first) for pid, seen in self._seen.items()}
        self._samples.append(_Sample(time.time(), cpu, _busy(self._machine0, psutil.cpu_times())))

    def _groups_of(self, sample: _Sample) -> dict[str, float]:
        """CPU seconds per group at `sample`, each process in the group it was last seen in."""
        groups: dict[str, float] = {}
        for pid, cpu in sample.cpu.items():
            group = self._seen[pid].group
            groups[group] = groups.get(group, 0.0) + cpu
        return groups

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self._sample()

    def stop(self) -> None:
        """Stop sampling (the whole window's generator CPU includes its reaped processes)."""
        self._stop.set()
        self._thread.join(5)
        self._sample()
        live = sum(_cpu(p) or 0.0 for p in psutil.Process().children(recursive=True))
        self._generator = _self_and_reaped() - self._gen0 + live - sum(self._live0.values())

    def report(self, sent_at: list[float], skip: float) -> None:
        """Print CPU per message and cores per group over the steady part of the sending window:
        from `skip` s after the first send (the notification checks, PUSH_DELAY later, have begun)
        to the last send; `sent_at`: the send time (time.time()) of each delivered message."""
        if not sent_at or len(self._samples) < 2:
            print("[machine] nothing to report")
            return
        first, last = min(sent_at), max(sent_at)
        a = next((s for s in self._samples if s.at >= first + skip), self._samples[0])
        b = next((s for s in reversed(self._samples) if s.at <= last), self._samples[-1])
        if b.at - a.at < 2.0:  # too short a run for the skip: take the whole sending window
            a = next((s for s in self._samples if s.at >= first), self._samples[0])
        n = sum(1 for t in sent_at if a.at <= t <= b.at)
        t = max(1e-9, b.at - a.at)
        ga, gb = self._groups_of(a), self._groups_of(b)
        rows = [(g, gb.get(g, 0.0) - ga.get(g, 0.0)) for g in ORDER]
        rows.append(("rest of the machine", (b.machine - a.machine) - sum(v for _, v in rows)))
        whole = self._samples[-1]
        whole_groups = {**self._groups_of(whole), GENERATOR: self._generator}
        whole_rows = {g: whole_groups.get(g, 0.0) for g in ORDER}
        whole_rows["rest of the machine"] = whole.machine - sum(whole_rows.values())
        print(f"\n[machine] CPU per delivered message while sending steadily: {n} messages sent in "
              f"{t:.1f} s ({n / t:.0f}/s; from {a.at - first:.1f} s after the first send to the last); "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'process group':>34} | {'µs / message':>12} | {'cores':>5} | whole run: CPU s (connect excluded; "
              f"close and drain included)")
        print(f"{'-' * 34} | {'-' * 12} | {'-' * 5} | {'-' * 10}")
        for name, cpu in rows:
            print(f"{name:>34} | {1e6 * cpu / max(1, n):12,.0f} | {cpu / t:5.2f} | {whole_rows[name]:7.2f}")
        ours = sum(v for g, v in rows if g not in OUTSIDE)
        ours_whole = sum(v for g, v in whole_rows.items() if g not in OUTSIDE)
        print(f"{'chatty, all of it (API … Redis)':>34} | {1e6 * ours / max(1, n):12,.0f} | {ours / t:5.2f} | "
              f"{ours_whole:7.2f}")
        busy = b.machine - a.machine
        print(f"{'whole machine':>34} | {1e6 * busy / max(1, n):12,.0f} | {busy / t:5.2f} | {whole.machine:7.2f}",
              flush=True)
