"""Helpers shared by the benchmarks: sign-up, a closed-loop load, percentiles, the API process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import psutil

PASSWORD = "Bench-Correct-Horse-9"


async def signup(session: aiohttp.ClientSession, base_url: str, prefix: str = "bench") -> dict:
    """Sign a fresh user up; the signup response (user, access_token, refresh_token …)."""
    username = f"{prefix}{uuid.uuid4().hex[:12]}"
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    for _ in range(30):  # a busy API answers 503 with Retry-After: wait as told (signups hash passwords)
        async with session.post(f"{base_url}/api/v1/auth/signup", json=body) as response:
            if response.status == 503:
                await asyncio.sleep(float(response.headers.get("Retry-After", 1)))
                continue
            if response.status != 201:
                raise RuntimeError(f"signup failed: {response.status} {await response.text()}")
            return await response.json()
    raise RuntimeError("signup failed: the API stayed overloaded")


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of already sorted values; nan when empty."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def summary_ms(latencies_s: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of latencies given in seconds."""
    values = sorted(latencies_s)
    return {name: percentile(values, p) * 1000 for name, p in
            (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))}


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def find_listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP `port` on this machine (None when unknown)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def process_tree(pids: list[int]) -> list[psutil.Process]:
    """These processes and all their descendants (those that vanished are left out)."""
    procs: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
    return procs


def local_ports(procs: list[psutil.Process]) -> set[int]:
    """Local TCP ports of these processes' connections (to match PostgreSQL's client_port)."""
    ports: set[int] = set()
    for p in procs:
        with contextlib.suppress(psutil.Error):
            ports |= {c.laddr.port for c in p.net_connections(kind="tcp") if c.laddr}
    return ports


def find_listener_pids(port: int) -> list[int]:
    """Every process listening on TCP `port` (`chatty api --workers N`: the supervisor and its workers)."""
    return sorted({conn.pid for conn in psutil.net_connections(kind="tcp")
                   if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid})


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        times = proc.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0


class CpuWatch:
    """CPU seconds a set of processes used between start() and stop(), as a share of one core."""

    def __init__(self, pids: Sequence[int]) -> None:
        self._procs = [psutil.Process(pid) for pid in pids]
        self._start: list[float] = []
        self._t0 = 0.0

    def start(self) -> CpuWatch:
        import time

        self._start = [cpu_seconds(p) for p in self._procs]
        self._t0 = time.monotonic()
        return self

    def stop(self) -> float:
        """Average cores used (1.0 = one core fully busy)."""
        import time

        elapsed = max(1e-9, time.monotonic() - self._t0)
        used = sum(cpu_seconds(p) - s for p, s in zip(self._procs, self._start, strict=True))
        return used / elapsed


@dataclass
class LoadResult:
    """What a closed-loop load measured (requests finished inside the measured window)."""

    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)


async def closed_loop(send: Callable[[int], Awaitable[str | None]], concurrency: int, warmup: float,
                      duration: float) -> LoadResult:
    """Keep `concurrency` requests in flight: `send(i)` makes request number i and returns None when
    it succeeded, or a short error kind. Requests started in the warm-up or ending after the window
    are not counted."""
    result = LoadResult()
    begin = time.perf_counter()
    measure_from, end = begin + warmup, begin + warmup + duration

    async def worker(n: int) -> None:
        i = n
        while (now := time.perf_counter()) < end:
            i += concurrency
            try:
                kind = await send(i)
            except (TimeoutError, aiohttp.ClientError) as exc:
                kind = type(exc).__name__
            done = time.perf_counter()
            if now < measure_from or done > end:
                continue
            if kind is None:
                result.ok += 1
                result.latencies.append(done - now)
            else:
                result.errors += 1
                result.kinds[kind] = result.kinds.get(kind, 0) + 1

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return result
