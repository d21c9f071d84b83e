"""What a message costs the whole machine: CPU of every process on its path, in one window.

Used by `messaging.py --machine` (the sending window of the chatty phase, plus `--machine-tail`
seconds for the notification checks that fall PUSH_DELAY after the last messages). A sampler
thread reads every watched process's CPU every 0.25 s, so processes that start during the window
(new PostgreSQL backends, Dramatiq children) count from zero and those that end keep what was
last read. Groups:

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
from urllib.parse import urlsplit

import psutil

_BACKEND = re.compile(r"^postgres: \S+ (\S+) [\d.:a-f\[\]]+\((\d+)\)")


def _cpu(proc: psutil.Process) -> float | None:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return None


def _listener(port: int) -> int | None:
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return c.pid
    return None


def _tree(pids: list[int]) -> list[psutil.Process]:
    procs: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
    return procs


def _local_ports(procs: list[psutil.Process]) -> set[int]:
    ports: set[int] = set()
    for p in procs:
        with contextlib.suppress(psutil.Error):
            ports |= {c.laddr.port for c in p.net_connections(kind="tcp") if c.laddr}
    return ports


def _self_and_reaped() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class _Seen:
    group: str
    first: float  # CPU seconds at the start (0 for a process started during the window)
    last: float


@dataclass
class MachineWatch:
    """Samples the CPU of every process a message touches; `report()` prints one table."""

    api_pids: list[int]
    worker_pids: list[int]
    database_url: str
    redis_url: str
    interval: float = 0.25
    _seen: dict[int, _Seen] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> MachineWatch:
        parts = urlsplit(self.database_url)
        self._db_name = parts.path.lstrip("/")
        self._postmaster = _listener(parts.port or 5432)
        redis = urlsplit(self.redis_url)
        self._redis = _listener(redis.port or 6379)
        self._t0 = time.monotonic()
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
        api, worker = _tree(self.api_pids), _tree(self.worker_pids)
        # Connection pools open sockets during the run: refresh the ports each sample.
        self._api_ports |= _local_ports(api)
        self._worker_ports |= _local_ports(worker)
        out = {p.pid: (p, "API") for p in api}
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

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()
        self._elapsed = time.monotonic() - self._t0
        after = psutil.cpu_times()
        idle = (after.idle + getattr(after, "iowait", 0)) - (self._machine0.idle + getattr(self._machine0, "iowait", 0))
        self._machine = (sum(after) - sum(self._machine0)) - idle
        live = sum(_cpu(p) or 0.0 for p in psutil.Process().children(recursive=True))
        self._generator = _self_and_reaped() - self._gen0 + live - sum(self._live0.values())

    def report(self, messages: int, label: str = "") -> None:
        """Print CPU per message and cores per group (call after stop())."""
        totals: dict[str, float] = {}
        for seen in self._seen.values():
            totals[seen.group] = totals.get(seen.group, 0.0) + max(0.0, seen.last - seen.first)
        totals["load generator (this bench)"] = self._generator
        order = ["API", "worker", "PostgreSQL for the API", "PostgreSQL for the worker",
                 "PostgreSQL for others (bench db)", "PostgreSQL background (shared)",
                 "PostgreSQL, other databases", "Redis server", "load generator (this bench)"]
        rows = [(g, totals.get(g, 0.0)) for g in order]
        accounted = sum(v for _, v in rows)
        rows.append(("rest of the machine", self._machine - accounted))
        n, t = max(1, messages), max(1e-9, self._elapsed)
        print(f"\n[machine{label}] CPU per delivered message, {messages} messages, window {t:.1f} s "
              f"(sending, drain, close, tail); load average {os.getloadavg()[0]:.2f}")
        print(f"{'process group':>34} | {'CPU s':>7} | {'µs / message':>12} | {'cores':>5}")
        print(f"{'-' * 34} | {'-' * 7} | {'-' * 12} | {'-' * 5}")
        for name, cpu in rows:
            print(f"{name:>34} | {cpu:7.2f} | {1e6 * cpu / n:12,.0f} | {cpu / t:5.2f}")
        outside = ("load generator (this bench)", "rest of the machine", "PostgreSQL, other databases")
        server = sum(v for g, v in rows if g not in outside)
        print(f"{'chatty, all of it (API … Redis)':>34} | {server:7.2f} | {1e6 * server / n:12,.0f} | "
              f"{server / t:5.2f}")
        print(f"{'whole machine':>34} | {self._machine:7.2f} | {1e6 * self._machine / n:12,.0f} | "
              f"{self._machine / t:5.2f}", flush=True)
