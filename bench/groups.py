"""One big group: every member's socket receives every message, and what a send costs PostgreSQL.

    uv run python bench/groups.py [URL] [--members 1000] [--rate 20] [--duration 30] \
        [--database-url postgresql://…] [--procs 2] [--no-deflate] [--json]

A group of `--members` users (created once, cached with the users in bench/.cache/), each
with one connected socket (raw Engine.IO clients spread over `--procs` processes). A separate
socket of the owner sends `message:send` (acked) at `--rate` messages/s for `--duration` s; the
body carries its send time. Every member socket must receive each acked message once as
`message:new` (the sending socket is skipped by design). Prints delivered/expected, lost,
duplicates, p50/p95/p99 send→receive latency, and, with `--database-url`, the rows PostgreSQL
wrote per message (inserts + updates + deletes in schema `messaging`, from pg_stat_user_tables,
over the sending window). Baseline in the same run: `GET /health/live` latency, and the ratio.
Also the receiving processes' own CPU per frame and event-loop lag: when they run late, part of
the tail is the load generator's, not the server's. Target: nothing lost, p99 ≤ 100 ms.

Run the bench API with ACCESS_TOKEN_TTL=86400 and WRITE_LIMIT_PER_USER / SEND_LIMIT_PER_USER /
SIGNUP_LIMIT_PER_IP raised (see bench/README.md). Everything binds 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CpuWatch, find_listener_pid, host_port, summary_ms
from loadgen import raise_fd_limit
from population import CACHE_DIR, ensure_users
from sockets import RawSocket

MAX_MEMBERS, MAX_DURATION = 1024, 120.0


def _group_cache(url: str) -> Path:
    host, port = host_port(url)
    return CACHE_DIR / f"group_{host}_{port}.json"


async def ensure_group(url: str, users: list[dict[str, Any]]) -> str:
    """A group owned by users[0] with every user in it (created once, cached)."""
    path = _group_cache(url)
    owner = users[0]
    headers = {"Authorization": f"Bearer {owner['token']}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        if path.exists():
            cached = json.loads(path.read_text())
            async with session.get(f"{url}/api/v1/groups/{cached['id']}/members", params={"limit": 1},
                                   headers=headers) as response:
                if response.status == 200 and cached.get("members") == len(users):
                    return str(cached["id"])
        body = {"name": "bench group", "member_ids": [u["id"] for u in users[1:256]]}
        async with session.post(f"{url}/api/v1/groups", json=body, headers=headers) as response:
            if response.status != 201:
                raise SystemExit(f"POST /groups: {response.status} {await response.text()}")
            group_id = (await response.json())["id"]
        for start in range(256, len(users), 100):
            ids = [u["id"] for u in users[start:start + 100]]
            async with session.post(f"{url}/api/v1/groups/{group_id}/members", json={"user_ids": ids},
                                    headers=headers) as response:
                if response.status != 200:
                    raise SystemExit(f"POST members: {response.status} {await response.text()}")
    CACHE_DIR.mkdir(exist_ok=True)
    path.write_text(json.dumps({"id": group_id, "members": len(users)}))
    print(f"group {group_id} created with {len(users)} members", flush=True)
    return str(group_id)


class LightSocket(RawSocket):
    """A raw socket that decodes events with msgspec (a third of `json`'s CPU per frame)."""

    def _dispatch(self, body: str) -> None:
        event, *args = _decode(body[body.index("["):])
        handler = self._handlers.get(event)
        if handler is not None:
            handler(args[0] if args else None)


_decode = msgspec.json.Decoder().decode


async def _sample_lag(lags: list[float], period: float = 0.01) -> None:
    """How late this process's event loop wakes up (a busy receiver delays the frames it reads)."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - started - period)


def receiver(url: str, tokens: list[str], group_id: str, deflate: bool, ready: Any, start: Any, done: Any,
             out: Any, socket_class: type[RawSocket] = LightSocket) -> None:
    """One process: connect these sockets, record every `message:new` of the group until `done`, and
    the process's CPU and event-loop lag between `start` and `done` (is the load generator the bottleneck?)."""
    raise_fd_limit()

    async def run() -> None:
        got: dict[str, int] = {}
        spread: dict[str, tuple[float, float]] = {}  # message id → (first, last) latency in this process
        latencies: list[float] = []
        lags: list[float] = []
        dupes = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            sockets = [socket_class(session, url, {"token": t}, deflate=deflate) for t in tokens]
            seen: list[set[str]] = [set() for _ in sockets]

            def on_new(i: int):  # type: ignore[no-untyped-def]
                def handle(payload: Any) -> None:
                    nonlocal dupes
                    now = time.time()
                    if payload.get("conversation_id") != group_id:
                        return
                    mid = payload["id"]
                    if mid in seen[i]:
                        dupes += 1
                        return
                    seen[i].add(mid)
                    got[mid] = got.get(mid, 0) + 1
                    latency = now - float(payload["body"].split("=", 1)[1])
                    latencies.append(latency)
                    first, last = spread.get(mid, (latency, latency))
                    spread[mid] = (min(first, latency), max(last, latency))
                return handle

            gate = asyncio.Semaphore(50)

            async def connect(i: int, s: RawSocket) -> bool:
                s.on("message:new", on_new(i))
                async with gate:
                    try:
                        await s.connect()
                        return True
                    except Exception:
                        return False

            connected = sum(await asyncio.gather(*(connect(i, s) for i, s in enumerate(sockets))))
            ready.put(connected)
            await asyncio.to_thread(start.wait)
            cpu = time.process_time()
            sampler = asyncio.create_task(_sample_lag(lags))
            await asyncio.to_thread(done.wait)
            cpu = time.process_time() - cpu
            sampler.cancel()
            dropped = sum(1 for s in sockets if not s.connected)
            await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
        out.put({"got": got, "latencies": latencies, "dupes": dupes, "dropped": dropped, "cpu": cpu,
                 "lags": lags, "spread": spread})

    asyncio.run(run())


async def send_load(url: str, token: str, group_id: str, rate: float, duration: float,
                    ack_latencies: list[float] | None = None, failures: dict[str, int] | None = None) -> list[str]:
    """Send at `rate` for `duration` from one socket; the ids of the acked messages (each ack's
    latency in `ack_latencies`, refusals and other failures by error code in `failures`)."""
    acked: list[str] = []
    failures = {} if failures is None else failures
    async with aiohttp.ClientSession() as session:
        sock = RawSocket(session, url, {"token": token})
        await sock.connect()
        started = time.monotonic()
        pending = []

        async def one(k: int) -> None:
            sent = time.perf_counter()
            try:
                ack = await sock.call("message:send", {"conversation_id": group_id,
                                                       "client_msg_id": uuid.uuid4().hex,
                                                       "body": f"bench k{k} t={time.time()}"})
            except TimeoutError:
                ack = {"error": {"code": "ack timed out"}}
            if ack and ack.get("ok"):
                acked.append(ack["data"]["id"])
                if ack_latencies is not None:
                    ack_latencies.append(time.perf_counter() - sent)
            else:
                code = str((ack or {}).get("error", {}).get("code", "no ack"))
                failures[code] = failures.get(code, 0) + 1

        k = 0
        while time.monotonic() - started < duration:
            pending.append(asyncio.create_task(one(k)))
            k += 1
            await asyncio.sleep(max(0.0, k / rate - (time.monotonic() - started)))
        await asyncio.gather(*pending, return_exceptions=True)
        await sock.close()
    return acked


async def health_latency(url: str, n: int = 300) -> dict[str, float]:
    samples = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            t = time.perf_counter()
            async with session.get(f"{url}/health/live") as response:
                await response.read()
            samples.append(time.perf_counter() - t)
    return summary_ms(samples)


async def rows_written(database_url: str, group_id: str, schema: str = "messaging") -> tuple[int, int]:
    """(rows written so far in `schema`, messages stored in the group)."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables "
            "WHERE schemaname = $1", schema)
        stored = await conn.fetchval("SELECT last_seq FROM messaging.conversations WHERE id = $1",
                                     uuid.UUID(group_id))
        return int(rows), int(stored)
    finally:
        await conn.close()


class BehindTheApi:
    """The worker's CPU (`--worker-pid`, children included), Redis's commands and CPU (`--redis-url`)
    and the rows written in schema notifications, from the start of the sending window until the
    notification work the messages caused is done (no window due, the workers quiet)."""

    DUE_KEYS = ("notifications:due", "notifications:due:conversations")  # per recipient, per conversation

    def __init__(self, worker_pids: list[int], redis_url: str | None, database_url: str | None,
                 group_id: str) -> None:
        import psutil

        self._workers = [p for pid in worker_pids for p in (psutil.Process(pid),
                                                            *psutil.Process(pid).children(recursive=True))]
        self._redis = None
        self._redis_proc = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url)
            pid = find_listener_pid(int(self._redis.connection_pool.connection_kwargs.get("port", 6379)))
            self._redis_proc = psutil.Process(pid) if pid else None
        self._db, self._group = database_url, group_id

    def _state(self) -> tuple[float, float, dict[str, int], int]:
        from benchlib import cpu_seconds

        workers = sum(cpu_seconds(p) for p in self._workers)
        redis_cpu = cpu_seconds(self._redis_proc) if self._redis_proc else 0.0
        calls = ({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in self._redis.info("commandstats").items()}
                 if self._redis else {})
        rows = asyncio.run(rows_written(self._db, self._group, "notifications"))[0] if self._db else 0
        return workers, redis_cpu, calls, rows

    def start(self) -> BehindTheApi:
        self._before = self._state()
        return self

    def wait_done(self, limit: float = 120.0) -> float:
        """Seconds waited until no notification window is due or pending and the workers are quiet."""
        from benchlib import cpu_seconds

        started = time.monotonic()
        while time.monotonic() - started < limit:
            busy = sum(cpu_seconds(p) for p in self._workers)
            time.sleep(1.0)
            busy = sum(cpu_seconds(p) for p in self._workers) - busy
            if (self._redis is None or not any(self._redis.zcard(k) for k in self.DUE_KEYS)) and busy < 0.05:
                break
        return time.monotonic() - started

    def report(self, messages: int) -> None:
        after = self._state()
        n = max(1, messages)
        workers, redis_cpu = after[0] - self._before[0], after[1] - self._before[1]
        calls = {k: v - self._before[2].get(k, 0) for k, v in after[2].items()}
        calls = {k: v for k, v in calls.items() if v > 0 and k not in ("info", "zcard")}
        top = ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:6])
        if self._workers:
            print(f"worker CPU: {workers:.2f} s = {workers / n * 1000:.1f} ms per message (until the notification "
                  f"windows were done)")
        if self._redis is not None:
            print(f"Redis: {sum(calls.values()) / n:.1f} commands per message ({top}); "
                  f"server CPU {redis_cpu / n * 1000:.2f} ms per message")
        if self._db:
            print(f"rows written in schema notifications per message: {(after[3] - self._before[3]) / n:.1f}")


def api_processes(url: str) -> list[int]:
    """The API listening on `url`'s port and its worker processes (empty when not on this machine)."""
    import psutil

    pid = find_listener_pid(host_port(url)[1])
    if pid is None:
        return []
    return [pid, *(c.pid for c in psutil.Process(pid).children())]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--database-url", help="the bench API's database, for rows written per message")
    p.add_argument("--no-deflate", action="store_true", help="receivers do not offer permessage-deflate")
    p.add_argument("--json", action="store_true", help="receivers decode frames with `json` (as before), not msgspec")
    p.add_argument("--worker-pid", type=int, action="append",
                   help="a `chatty worker` process (repeatable): its CPU per message until the notifications are done")
    p.add_argument("--redis-url", help="the bench API's Redis: commands and server CPU per message")
    args = p.parse_args()
    raise_fd_limit()
    url = args.url.rstrip("/")
    members = min(max(2, args.members), MAX_MEMBERS)
    duration = min(max(1.0, args.duration), MAX_DURATION)
    users = asyncio.run(ensure_users(url, members))
    group_id = asyncio.run(ensure_group(url, users))

    ctx = mp.get_context("spawn")
    ready, out, start, done = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    tokens = [u["token"] for u in users]
    deflate = not args.no_deflate
    procs = [ctx.Process(target=receiver, args=(url, tokens[i::args.procs], group_id, deflate, ready, start, done, out,
                                                RawSocket if args.json else LightSocket),
                         daemon=True) for i in range(args.procs)]
    for proc in procs:
        proc.start()
    connected = sum(ready.get(timeout=600) for _ in procs)
    print(f"{connected}/{members} member sockets connected; sending {args.rate:g} msg/s for {duration:g} s",
          flush=True)
    time.sleep(2)
    before = asyncio.run(rows_written(args.database_url, group_id)) if args.database_url else (0, 0)
    api_pids = api_processes(url)
    behind = BehindTheApi(args.worker_pid or [], args.redis_url, args.database_url, group_id).start()
    cpu = CpuWatch(api_pids).start()
    start.set()
    started = time.monotonic()
    ack_latencies: list[float] = []
    failures: dict[str, int] = {}
    acked = asyncio.run(send_load(url, users[0]["token"], group_id, args.rate, duration, ack_latencies, failures))
    time.sleep(5)  # drain
    api_cores, window = cpu.stop(), time.monotonic() - started
    done.set()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(10)
    time.sleep(1)  # statistics are flushed by the backends about once a second
    after = asyncio.run(rows_written(args.database_url, group_id)) if args.database_url else (0, 0)

    expected = len(acked) * connected
    acked_set = set(acked)
    delivered = sum(n for r in results for mid, n in r["got"].items() if mid in acked_set)
    lat = summary_ms([x for r in results for x in r["latencies"]])
    health = asyncio.run(health_latency(url))
    print(f"acked {len(acked)} messages (not acked: {failures or 'none'}); "
          f"delivered {delivered}/{expected} (lost {expected - delivered}), "
          f"duplicates {sum(r['dupes'] for r in results)}, sockets dropped {sum(r['dropped'] for r in results)}")
    print(f"send→receive ms: p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  p99 {lat['p99']:.1f}  max {lat['max']:.1f}")
    firsts: dict[str, float] = {}
    lasts: dict[str, float] = {}
    for r in results:
        for mid, (first, last) in r["spread"].items():
            firsts[mid] = min(first, firsts.get(mid, first))
            lasts[mid] = max(last, lasts.get(mid, last))
    first_ms = summary_ms(list(firsts.values()))
    spread_ms = summary_ms([lasts[mid] - firsts[mid] for mid in firsts])
    ack_ms = summary_ms(ack_latencies)
    print(f"where the time goes, ms: send→ack p50 {ack_ms['p50']:.1f} p99 {ack_ms['p99']:.1f}; send→first member "
          f"p50 {first_ms['p50']:.1f} p99 {first_ms['p99']:.1f}; first→last member p50 {spread_ms['p50']:.1f} "
          f"p99 {spread_ms['p99']:.1f} (before the fan-out starts vs the fan-out itself)")
    print(f"baseline GET /health/live ms: p50 {health['p50']:.1f}  p99 {health['p99']:.1f}; "
          f"p99 ratio group delivery / health: {lat['p99'] / health['p99']:.1f}")
    if args.database_url:
        rows, stored = after[0] - before[0], after[1] - before[1]
        print(f"rows written in schema messaging per message: {rows / max(1, stored):.1f} "
              f"({rows} rows for {stored} messages stored, group of {members})")
    frames = sum(n for r in results for n in r["got"].values())
    if api_pids:
        cpu_s = api_cores * window
        print(f"API CPU ({len(api_pids)} processes): {cpu_s:.2f} s over {window:.0f} s ({api_cores:.2f} cores); "
              f"{cpu_s / max(1, len(acked)) * 1000:.1f} ms per message, "
              f"{cpu_s / max(1, frames) * 1e6:.0f} µs per delivered frame (send path included; "
              f"{frames} frames of every group message received, acked or not)")
    receivers_cpu = sum(r["cpu"] for r in results)
    lags = summary_ms([x for r in results for x in r["lags"]])
    print(f"load generator: {args.procs} receiving processes used {receivers_cpu:.2f} s of CPU over {window:.0f} s "
          f"({receivers_cpu / window:.2f} cores), {receivers_cpu / max(1, frames) * 1e6:.0f} µs per frame; their event "
          f"loops ran late p50 {lags['p50']:.1f}  p99 {lags['p99']:.1f}  max {lags['max']:.1f} ms (a late receiver "
          f"adds that to the latencies above)")
    waited = behind.wait_done()
    print(f"notification work behind the API done {waited:.0f} s after the health check; load average "
          f"{os.getloadavg()[0]:.2f}")
    behind.report(len(acked))
    met = delivered == expected and lat["p99"] <= 100
    print(f"target: nothing lost, p99 ≤ 100 ms: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
