"""Call setups across two API processes: invite → incoming → accept → accepted → ICE signals → end.

    uv run python bench/calls.py                      # spawns PostgreSQL, Redis, two APIs (temp dir)
    uv run python bench/calls.py URL1 URL2            # against two running APIs on one Redis
    options: --calls 500 --rate 100 --pairs 100 --signals 4

Callers' sockets are on the first API, callees' on the second, so every `call:incoming`,
`call:accepted` and `call:signal` crosses processes through Redis. Setups start at `--rate` per
second (`--calls` in all) over `--pairs` caller/callee pairs (a pair's next call starts once its
previous one ended; with 100 pairs at 100/s a pair calls once a second). Prints p50/p95/p99/max of
invite → `call:incoming` (sent to received, one clock) and of signal relay (`call:signal` sent by
one peer → received by the other), errors (error acks, timeouts, missing events), and, as the
baseline measured in the same run, a socket round trip without calls (`call:signal` on no call,
answered by an error ack from the first API) with the ratio of the p99s. Target: p99 ≤ 50 ms.
Everything binds 127.0.0.1 and stops by itself (bounded: setups unfinished 30 s after the last
start count as errors). BENCH_KEEP=1 keeps the spawned stack's directory (the APIs' logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CpuWatch, find_listener_pid, free_port, host_port, signup, summary_ms
from population import ensure_users
from sockets import RawSocket

ROOT = Path(__file__).resolve().parents[1]


class Stack:
    """PostgreSQL, Redis and two `chatty api` processes under a temporary directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chatty-bench-calls-"))
        self.dir.chmod(0o755)
        self.services: list[Any] = []
        self.apis: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []

    def start(self) -> Stack:
        sys.path.insert(0, str(ROOT))
        from src.infra.local_services import start_postgres, start_redis

        pg = start_postgres(self.dir / "pg", database="bench", fsync=False)
        self.services.append(pg)
        redis = start_redis(self.dir / "redis")
        self.services.append(redis)
        env = {**os.environ, "DATABASE_URL": pg.url, "REDIS_URL": redis.url, "LOG_LEVEL": "WARNING",
               "JWT_SECRET": "bench-secret-bench-secret-bench-secret-0", "ACCESS_TOKEN_TTL": "3600",
               "SIGNUP_LIMIT_PER_IP": "100000/hour", "WRITE_LIMIT_PER_USER": "100000/minute",
               "CALL_SIGNAL_LIMIT_PER_USER": "100000/second"}
        subprocess.run([sys.executable, "-m", "src.cli", "migrate"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        for i in range(2):
            port = free_port()
            log = (self.dir / f"api{i}.log").open("wb")
            self.apis.append(subprocess.Popen(
                [sys.executable, "-m", "src.cli", "api", "--port", str(port)], cwd=ROOT,
                env={**env, "RUN_OUTBOX_RELAY": "true" if i == 0 else "false"}, stdout=log, stderr=subprocess.STDOUT))
            self.urls.append(f"http://127.0.0.1:{port}")
        return self

    async def wait_ready(self) -> None:
        async with aiohttp.ClientSession() as session:
            for url in self.urls:
                for _ in range(900):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(f"{url}/health/live") as response:
                            if response.status == 200:
                                break
                    await asyncio.sleep(0.1)
                else:
                    raise SystemExit(f"{url} did not start; see {self.dir}")

    def stop(self) -> None:
        for proc in self.apis:
            proc.terminate()
        for proc in self.apis:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
            proc.kill()
        for service in reversed(self.services):
            service.stop()
        if os.environ.get("BENCH_KEEP"):  # keep the APIs' logs
            print(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class Peer:
    """A user's socket; event arrival times by (event, key)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, user: dict[str, Any]) -> None:
        self.user = user
        self.socket = RawSocket(session, url, {"token": user["access_token"]}, deflate=False)
        self.waiters: dict[tuple[str, str], asyncio.Future[float]] = {}
        for event in ("call:incoming", "call:accepted", "call:ended"):
            self.socket.on(event, lambda data, e=event: self._arrived(e, data.get("call_id") or data.get("id")))
        self.socket.on("call:signal", lambda data: self._arrived("call:signal", data["payload"]["candidate"]))

    def _arrived(self, event: str, key: str) -> None:
        future = self.expect(event, key)
        if not future.done():
            future.set_result(time.perf_counter())

    def expect(self, event: str, key: str) -> asyncio.Future[float]:
        """The arrival time of `event` for `key` (a future, created by whichever comes first)."""
        return self.waiters.setdefault((event, key), asyncio.get_running_loop().create_future())

    async def got(self, event: str, key: str, wait: float = 10) -> float:
        try:
            return await asyncio.wait_for(self.expect(event, key), wait)
        finally:
            self.waiters.pop((event, key), None)

    async def ok(self, event: str, data: Any) -> Any:
        ack = await self.socket.call(event, data)
        if not ack or not ack.get("ok"):
            raise RuntimeError(f"{event}: {ack}")
        return ack["data"]


class Results:
    def __init__(self) -> None:
        self.incoming: list[float] = []
        self.relay: list[float] = []
        self.baseline: list[float] = []
        self.errors: dict[str, int] = {}
        self.done = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def one_call(caller: Peer, callee: Peer, signals: int, results: Results) -> None:
    """One full setup; latencies into `results`, any failure counted by kind."""
    try:
        sent = time.perf_counter()
        call_id = (await caller.ok("call:invite", {"user_id": callee.user["user"]["id"], "media": "audio"}))["call_id"]
        results.incoming.append(await callee.got("call:incoming", call_id) - sent)
        accepted = caller.expect("call:accepted", call_id)
        await callee.ok("call:accept", {"call_id": call_id})
        await asyncio.wait_for(accepted, 10)
        caller.waiters.pop(("call:accepted", call_id), None)
        for i in range(signals):
            src, dst = (caller, callee) if i % 2 == 0 else (callee, caller)
            candidate = f"candidate:{i} 1 udp 2130706431 127.0.0.1 {40000 + i} typ host ufrag {uuid.uuid4().hex}"
            arrival = dst.expect("call:signal", candidate)
            sent = time.perf_counter()
            await src.ok("call:signal", {"call_id": call_id, "to_user_id": dst.user["user"]["id"], "kind": "ice",
                                         "payload": {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0}})
            results.relay.append(await asyncio.wait_for(arrival, 10) - sent)
            dst.waiters.pop(("call:signal", candidate), None)
        ended = callee.expect("call:ended", call_id)
        await caller.ok("call:end", {"call_id": call_id})
        await asyncio.wait_for(ended, 10)
        callee.waiters.pop(("call:ended", call_id), None)
        results.done += 1
    except (TimeoutError, RuntimeError, ConnectionError) as exc:
        results.error(type(exc).__name__ if not isinstance(exc, RuntimeError) else str(exc)[:60])


async def baseline(peer: Peer, count: int, rate: float, results: Results) -> None:
    """Socket round trips that touch no call: `call:signal` for an unknown call (an error ack)."""
    payload = {"call_id": str(uuid.uuid4()), "to_user_id": str(uuid.uuid4()), "kind": "ice",
               "payload": {"candidate": "", "sdpMid": "0"}}
    for _ in range(count):
        sent = time.perf_counter()
        await peer.socket.call("call:signal", payload)
        results.baseline.append(time.perf_counter() - sent)
        await asyncio.sleep(1 / rate)


async def run(urls: list[str], args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.monotonic()
        sem = asyncio.Semaphore(8)

        async def new_user() -> dict[str, Any]:
            async with sem:
                return await signup(session, urls[0], "bc")

        if args.spawned:
            users = await asyncio.gather(*(new_user() for _ in range(2 * args.pairs + 1)))
        else:  # running APIs: users cached across runs (population.py), no argon2 each time
            users = [{"access_token": u["token"], "user": {"id": u["id"]}}
                     for u in await ensure_users(urls[0], 2 * args.pairs + 1)]
        print(f"signed up {len(users)} users in {time.monotonic() - started:.1f} s", flush=True)
        callers = [Peer(session, urls[0], u) for u in users[:args.pairs]]
        callees = [Peer(session, urls[1], u) for u in users[args.pairs:2 * args.pairs]]
        probe = Peer(session, urls[0], users[-1])
        await asyncio.gather(*(p.socket.connect() for p in [*callers, *callees, probe]))
        results, warm = Results(), Results()
        for pair in range(min(args.pairs, 10)):  # warm the permission cache and connections
            await one_call(callers[pair], callees[pair], 1, warm)
        pids = [pid for url in urls if (pid := find_listener_pid(host_port(url)[1]))]
        redis_pid = find_listener_pid(args.redis_port) if args.redis_port else None
        api_cpus = [CpuWatch([pid]).start() for pid in pids]
        client_cpu = CpuWatch([os.getpid()]).start()
        redis_cpu = CpuWatch([redis_pid]).start() if redis_pid else None
        locks = [asyncio.Lock() for _ in range(args.pairs)]

        async def scheduled(k: int) -> None:
            await asyncio.sleep(k / args.rate)
            async with locks[k % args.pairs]:
                await one_call(callers[k % args.pairs], callees[k % args.pairs], args.signals, results)

        began = time.perf_counter()
        jobs = [asyncio.ensure_future(scheduled(k)) for k in range(args.calls)]
        # One socket, so under the server's per-socket event limit (20/s): faster, it was refused
        # (`rate_limited` acks, cheaper than the path measured) and then disconnected as a flood.
        probe_rate = min(args.rate, 10.0)
        jobs.append(asyncio.ensure_future(baseline(probe, round(args.calls / args.rate * probe_rate), probe_rate,
                                                   results)))
        _, late = await asyncio.wait(jobs, timeout=30 + args.calls / args.rate)
        for job in late:  # bounded: what did not finish in time counts as an error
            job.cancel()
            results.error("unfinished")
        elapsed = time.perf_counter() - began
        api_cores, client_cores = [c.stop() for c in api_cpus], client_cpu.stop()
        redis_cores = redis_cpu.stop() if redis_cpu else float("nan")
        await asyncio.gather(*(p.socket.close() for p in [*callers, *callees, probe]))

    def show(name: str, values: list[float]) -> dict[str, float]:
        s = summary_ms(values)
        print(f"{name:<28} n={len(values):<5} p50 {s['p50']:6.1f} ms  p95 {s['p95']:6.1f} ms  "
              f"p99 {s['p99']:6.1f} ms  max {s['max']:6.1f} ms")
        return s

    print(f"{results.done}/{args.calls} call setups completed in {elapsed:.1f} s "
          f"({results.done / elapsed:.0f}/s), errors: {results.errors or 0}; "
          f"CPU (cores): APIs {' + '.join(f'{c:.2f}' for c in api_cores)}, "
          f"this generator {client_cores:.2f}, Redis {redis_cores:.2f}")
    # CPU seconds of both APIs (the baseline probe's cheap error acks included) per completed setup
    api_ms = sum(api_cores) * elapsed * 1000 / max(results.done, 1)
    print(f"API CPU per call setup: {api_ms:.1f} ms (both processes; {args.signals} signals each); "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    incoming = show("invite -> call:incoming", results.incoming)
    relay = show("call:signal relay", results.relay)
    base = show("baseline socket round trip", results.baseline)
    met = "met" if max(incoming["p99"], relay["p99"]) <= 50 else "NOT met"
    print(f"p99 ratio to baseline: incoming {incoming['p99'] / base['p99']:.1f}x, "
          f"relay {relay['p99'] / base['p99']:.1f}x; target p99 <= 50 ms: {met}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("urls", nargs="*", help="two API base URLs sharing PostgreSQL and Redis (default: spawn)")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--signals", type=int, default=4)
    parser.add_argument("--redis-port", type=int, default=0, help="to report Redis's CPU (set when spawning)")
    args = parser.parse_args()
    if args.urls and len(args.urls) != 2:
        parser.error("give two URLs, or none to spawn a stack")
    if any(host_port(u)[0] not in ("127.0.0.1", "localhost") for u in args.urls):
        parser.error("loopback URLs only")
    stack = None if args.urls else Stack().start()
    args.spawned = stack is not None
    try:
        if stack:
            asyncio.run(stack.wait_ready())
            args.redis_port = stack.services[1].port
        asyncio.run(run(args.urls or stack.urls, args))  # type: ignore[union-attr]
    finally:
        if stack:
            stack.stop()


if __name__ == "__main__":
    main()
