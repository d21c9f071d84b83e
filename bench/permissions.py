"""Permission checks: `CanMessage` latency in-process (cache hit vs miss) and REST req/s.

    uv run python bench/permissions.py [--database-url URL] [--redis-url URL] [--iterations 5000]
                                       [--api http://127.0.0.1:8000 --concurrency 32 --duration 10]

In-process: builds a context the way src/app.py does (every module wired) against
DATABASE_URL / REDIS_URL (a migrated database), creates its own users (through the users
module's `UserRegistered` listener), then times `await queries.ask(CanMessage(...))` one at a
time: hits (answer cached) and misses (the pair's answers invalidated before each timed ask,
so the answer is computed from PostgreSQL: users, blocks, settings; then stored).

REST (with --api, 127.0.0.1 only): signs up a caller and some targets against the running
`chatty api`, then keeps `concurrency` `GET /api/v1/privacy/permissions/{id}` in flight over
keep-alive connections for `duration` seconds, and prints req/s and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CpuWatch, closed_loop, find_listener_pid, host_port, percentile, signup, summary_ms

MAX_ITERATIONS = 200_000
MAX_DURATION = 120.0
MAX_CONCURRENCY = 256
HIT_TARGET_P99_US = 500.0


def summary_us(latencies_ns: list[int]) -> dict[str, float]:
    values = sorted(latencies_ns)
    return {name: percentile(values, p) / 1000 for name, p in (("p50", 50), ("p99", 99), ("max", 100))}


async def _in_process(database_url: str, redis_url: str, iterations: int, pairs: int) -> dict[str, dict[str, float]]:
    import socketio

    from src.bootstrap import MODULES, build_context
    from src.common.events.users import UserRegistered
    from src.common.ids import new_id
    from src.common.queries.privacy import CanMessage
    from src.infra.config import Settings
    from src.modules.privacy.cache import PermissionCache
    from src.socket.emitter import SocketRealtime

    settings = Settings(database_url=database_url, redis_url=redis_url, _env_file=None,  # type: ignore[call-arg]
                        jwt_secret=os.environ.get("JWT_SECRET", "bench-" + "x" * 40), log_level="WARNING")
    manager = socketio.AsyncRedisManager(redis_url, write_only=True)
    ctx = build_context(settings, lambda redis: SocketRealtime(manager.emit, redis))
    for module in MODULES:
        module.build(ctx)
    try:
        users = [new_id() for _ in range(pairs + 1)]
        async with ctx.uow() as tx:  # the users module's listener creates the profiles
            for user_id in users:
                name = f"benchperm{user_id.hex[-12:]}"
                tx.publish(UserRegistered(user_id=user_id, username=name, email=f"{name}@example.com",
                                          display_name=name))
        actor, targets = users[0], users[1:]
        queries = [CanMessage(actor_id=actor, target_id=t) for t in targets]
        cache = PermissionCache(ctx.redis)

        async def timed(query: CanMessage) -> int:
            start = time.perf_counter_ns()
            decision = await ctx.queries.ask(query)
            elapsed = time.perf_counter_ns() - start
            assert decision.allowed, decision
            return elapsed

        misses: list[int] = []
        for i in range(max(1, iterations // 5)):
            query = queries[i % len(queries)]
            await cache.invalidate_pair(query.actor_id, query.target_id)
            misses.append(await timed(query))
        for query in queries:  # warm: every answer cached
            await timed(query)
        hits = [await timed(queries[i % len(queries)]) for i in range(iterations)]
        return {"hit": summary_us(hits), "miss": summary_us(misses)} | {
            "counts": {"hit": float(len(hits)), "miss": float(len(misses))}}
    finally:
        await ctx.redis.aclose()
        await ctx.db.dispose()


async def _rest(url: str, concurrency: int, duration: float, warmup: float, targets: int,
                watch: CpuWatch | None) -> tuple[int, int, list[float], dict[str, int], float]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as setup:
        async with setup.get(url + "/health/ready") as response:
            if response.status != 200:
                raise SystemExit(f"{url} is not ready: {response.status} {await response.text()}")
        caller = await signup(setup, url, "benchpermcaller")
        ids = [(await signup(setup, url, "benchpermtarget"))["user"]["id"] for _ in range(targets)]
    headers = {"Authorization": f"Bearer {caller['access_token']}"}
    paths = [f"{url}/api/v1/privacy/permissions/{i}" for i in ids]
    if watch:
        asyncio.get_running_loop().call_later(warmup, watch.start)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send(i: int) -> str | None:
            async with session.get(paths[i % len(paths)], headers=headers) as response:
                body: Any = await response.json()
                return None if response.status == 200 and body.get("can_message") is True \
                    else f"http_{response.status}"

        result = await closed_loop(send, concurrency, warmup, duration)
    cores = watch.stop() if watch else float("nan")
    return result.ok, result.errors, result.latencies, result.kinds, cores


def _loopback_only(url: str) -> str:
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"refusing {url}: this benchmark only loads 127.0.0.1")
    return url.rstrip("/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--iterations", type=int, default=5000, help=f"timed hits (≤ {MAX_ITERATIONS}); misses: 1/5")
    parser.add_argument("--pairs", type=int, default=50, help="actor/target pairs asked in turn")
    parser.add_argument("--api", help="URL of a running `chatty api` (127.0.0.1) for the REST part")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help=f"seconds (≤ {MAX_DURATION:.0f})")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()  # as in the API process (uvicorn)
    except ImportError:
        pass

    if not args.skip_in_process:
        if not args.database_url or not args.redis_url:
            raise SystemExit("set DATABASE_URL and REDIS_URL (or --database-url / --redis-url)")
        iterations = min(max(args.iterations, 100), MAX_ITERATIONS)
        result = asyncio.run(_in_process(args.database_url, args.redis_url, iterations, max(1, args.pairs)))
        print(f"CanMessage in-process, one ask at a time ({int(result['counts']['hit'])} hits, "
              f"{int(result['counts']['miss'])} misses):")
        for kind in ("hit", "miss"):
            s = result[kind]
            print(f"  {kind:4}  p50 {s['p50']:8.1f} µs   p99 {s['p99']:8.1f} µs   max {s['max']:8.1f} µs")
        verdict = "met" if result["hit"]["p99"] < HIT_TARGET_P99_US else "NOT met"
        print(f"  target: cached answer p99 < {HIT_TARGET_P99_US:.0f} µs: {verdict}")

    if args.api:
        url = _loopback_only(args.api)
        concurrency = min(max(args.concurrency, 1), MAX_CONCURRENCY)
        duration = min(max(args.duration, 1.0), MAX_DURATION)
        api_pid = find_listener_pid(host_port(url)[1])
        watch = CpuWatch([api_pid]) if api_pid else None
        print(f"GET /api/v1/privacy/permissions/{{id}} on {url}: {concurrency} connections, "
              f"{args.warmup:.0f} s warm-up, {duration:.0f} s measured; API pid {api_pid or 'unknown'}", flush=True)

        ok, errors, latencies, kinds, cores = asyncio.run(
            _rest(url, concurrency, duration, args.warmup, max(1, args.pairs), watch))
        s = summary_ms(latencies)
        print(f"  requests: {ok} ok, {errors} errors{' ' + str(kinds) if kinds else ''}")
        print(f"  throughput: {ok / duration:,.0f} req/s")
        print(f"  latency ms: p50 {s['p50']:.2f}  p95 {s['p95']:.2f}  p99 {s['p99']:.2f}  max {s['max']:.2f}")
        print(f"  API process cpu: {cores:.2f} cores; machine has {psutil.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
