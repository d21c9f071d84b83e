"""The feed: `GET /api/v1/posts/feed` under load, and the fan-out of one post to 10,000 followers.

    uv run python bench/feed.py [--concurrency 32] [--duration 10] [--warmup 2] [--authors 2000]
                                [--posts 50000] [--following 500] [--fanout-followers 10000]
                                [--workers 1] [--client lean|aiohttp] [--skip-fanout]

Self-contained and bounded: starts its own PostgreSQL and Redis (local binaries, a temporary
directory, 127.0.0.1 only), migrates, starts one `chatty api`, bulk-inserts a population with
COPY (authors with profiles, posts spread over 30 days with mixed public / followers privacy,
a reader following `--following` of the authors), signs the reader up, reads the feed once
(the timeline is rebuilt from PostgreSQL), then keeps `concurrency` requests in flight for
`duration` seconds on `/health/live` (baseline) and on `/api/v1/posts/feed` (first pages), and
prints req/s, p50/p99, the CPU per request of the API, PostgreSQL, Redis and the generator itself
(bench/httpload.py by default: the generator shares the machine's cores with the API), the
admission refusals by reason, and the ratio to the baseline. Then it times `posts.fanout` — the worker
task body — for one post of an author with `--fanout-followers` followers whose timelines exist,
run in-process as one worker would (timelines + `post:new` emits through Redis).
Targets: feed p99 ≤ 25 ms at 32 connections; fan-out to 10,000 followers ≤ 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import closed_loop, signup, summary_ms  # noqa: E402
from httpload import http_closed_loop  # noqa: E402

from src.infra.local_services import free_port, start_postgres, start_redis  # noqa: E402

MAX_DURATION = 60.0
METRICS_TOKEN = secrets.token_hex(16)


async def _populate(db_url: str, reader_id: uuid.UUID, authors: int, posts: int, following: int) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        ids = [uuid.uuid4() for _ in range(authors)]
        await conn.copy_records_to_table(
            "profiles", schema_name="users", columns=["id", "username", "email", "display_name"],
            records=[(a, f"a{a.hex[:20]}", f"a{a.hex[:20]}@example.com", f"Author {i}") for i, a in enumerate(ids)])
        await conn.copy_records_to_table(
            "follows", schema_name="follows", columns=["follower_id", "followee_id"],
            records=[(reader_id, a) for a in random.sample(ids, following)])
        now = datetime.now(UTC)
        rows = []
        for i in range(posts):
            at = now - timedelta(seconds=random.uniform(60, 30 * 86400))
            rows.append((uuid.uuid4(), ids[i % authors], f"bench post {i} about things", [], [],
                         "public" if i % 3 else "followers", 0, "{}", at))
        await conn.copy_records_to_table(
            "posts", schema_name="posts",
            columns=["id", "author_id", "body", "media_ids", "media_kinds", "privacy", "comment_count",
                     "reaction_counts", "created_at"], records=rows)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


class TreeCpu:
    """CPU seconds of a process and all its children, exited ones included (PostgreSQL's backends
    come and go), as a share of one core between start() and stop()."""

    def __init__(self, pid_file: str | None = None, pid: int | None = None) -> None:
        self._pid_file, self._pid, self._start, self._t0 = pid_file, pid, 0.0, 0.0

    def _total(self) -> float:
        import psutil

        try:
            pid = self._pid or int(Path(str(self._pid_file)).read_text().split()[0])
            root = psutil.Process(pid)
            t = root.cpu_times()
            total = t.user + t.system + t.children_user + t.children_system
            for child in root.children(recursive=True):
                try:
                    c = child.cpu_times()
                    total += c.user + c.system
                except psutil.Error:
                    pass
            return total
        except (OSError, ValueError, IndexError, psutil.Error):
            return 0.0

    def start(self) -> None:
        self._start, self._t0 = self._total(), time.monotonic()

    def stop(self) -> float:
        return (self._total() - self._start) / max(1e-9, time.monotonic() - self._t0)


class OwnCpu:
    """CPU of this process alone (the generator; TreeCpu would add the servers it started)."""

    def _total(self) -> float:
        t = os.times()
        return t.user + t.system

    def start(self) -> None:
        self._start, self._t0 = self._total(), time.monotonic()

    def stop(self) -> float:
        return (self._total() - self._start) / max(1e-9, time.monotonic() - self._t0)


def _service_pids(env: dict[str, str]) -> dict[str, str]:
    """The pid files of PostgreSQL (postmaster) and Redis, to measure their CPU too."""
    return {"PostgreSQL": env["BENCH_PG_PID_FILE"], "Redis": env["BENCH_REDIS_PID_FILE"]}


async def _load(url: str, headers: dict[str, str], args: argparse.Namespace, api_pid: int,
                others: dict[str, str]) -> tuple:
    """(ok, errors, latencies, API cores used while measuring, {service: cores}, generator cores)."""
    cpu = TreeCpu(pid=api_pid)  # with --workers, uvicorn's parent and its worker processes
    watches = {name: TreeCpu(pid_file) for name, pid_file in others.items()}
    generator = OwnCpu()
    # psutil walks /proc for the process trees: ~100 ms in which this loop reads no response, so
    # the snapshots are taken in the warm-up's last half second, not at the measured window's start.
    for watch in (cpu, generator, *watches.values()):
        asyncio.get_running_loop().call_later(max(0.0, args.warmup - 0.5), watch.start)
    if args.client == "lean":  # bench/httpload.py: a small share of the cores the API needs too
        result = await http_closed_loop(url, headers, args.concurrency, args.warmup, args.duration)
    else:
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:

            async def send(_: int) -> str | None:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    return None if response.status == 200 else f"http_{response.status}"

            result = await closed_loop(send, args.concurrency, args.warmup, args.duration)
    cores, mine = cpu.stop(), generator.stop()
    services = {name: watch.stop() for name, watch in watches.items()}
    if result.errors:
        print(f"  errors by kind: {result.kinds}", flush=True)
    return result.ok, result.errors, result.latencies, cores, services, mine


async def _refusals(base: str) -> dict[str, float]:
    """Admission refusals so far by reason (the API's /metrics; with --workers, every process's)."""
    async with aiohttp.ClientSession() as session, session.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as response:
        text = await response.text()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("chatty_admission_refused_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = found.get(reason, 0) + float(line.rsplit(" ", 1)[1])
    return found


async def _fanout(env: dict[str, str], followers: int) -> tuple[float, int]:
    import socketio

    from src.bootstrap import MODULES, build_context
    from src.infra.config import Settings
    from src.modules.posts.actors import fanout
    from src.socket.emitter import SocketRealtime

    settings = Settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"], _env_file=None,  # type: ignore[call-arg]
                        jwt_secret=env["JWT_SECRET"], log_level="WARNING")
    manager = socketio.AsyncRedisManager(settings.redis_url, write_only=True)
    ctx = build_context(settings, lambda redis: SocketRealtime(manager.emit, redis))
    for module in MODULES:
        module.build(ctx)
    author, post_id = uuid.uuid4(), uuid.uuid4()
    audience = [uuid.uuid4() for _ in range(followers)]
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        await conn.copy_records_to_table("follows", schema_name="follows", columns=["follower_id", "followee_id"],
                                         records=[(f, author) for f in audience])
        await conn.execute("INSERT INTO posts.posts (id, author_id, body, privacy) VALUES ($1, $2, 'hello', "
                           "'followers')", post_id, author)
    finally:
        await conn.close()
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for f in audience:
            pipe.zadd(f"feed:{f}", {"^": 0})
        await pipe.execute()
    start = time.perf_counter()
    await fanout(ctx, str(post_id))
    elapsed = time.perf_counter() - start
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for f in audience:
            pipe.zscore(f"feed:{f}", str(post_id))
        reached = sum(s is not None for s in await pipe.execute())
    await ctx.redis.aclose()
    await ctx.db.dispose()
    return elapsed, reached


async def _explain(env: dict[str, str], reader_id: uuid.UUID) -> None:
    """EXPLAIN ANALYZE of the feed's one statement for the reader's first page (as the API runs it
    when every timeline post is cached)."""
    from redis.asyncio import Redis

    from src.modules.posts.feed import _MERGE

    async with Redis.from_url(env["REDIS_URL"]) as r:
        ids = [uuid.UUID(m.decode()) for m in await r.zrevrangebyscore(f"feed:{reader_id}", "+inf", 1, start=0, num=42)]
    conn = await asyncpg.connect(env["DATABASE_URL"])
    try:
        for line in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + _MERGE[False], reader_id, ids, [], [reader_id],
                                     21):
            print("  " + line[0])
    finally:
        await conn.close()


async def _main(args: argparse.Namespace, env: dict[str, str], base: str, api_pid: int) -> None:
    async with aiohttp.ClientSession() as session:
        reader = await signup(session, base, "benchfeed")
    reader_id = uuid.UUID(reader["user"]["id"])
    headers = {"Authorization": f"Bearer {reader['access_token']}"}
    started = time.perf_counter()
    await _populate(env["DATABASE_URL"], reader_id, args.authors, args.posts, args.following)
    print(f"population: {args.authors} authors, {args.posts} posts, reader follows {args.following} "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    async with aiohttp.ClientSession() as session:
        for _ in range(50):  # the first read rebuilds the timeline in the background
            async with session.get(f"{base}/api/v1/posts/feed", headers=headers) as response:
                page = await response.json()
                if response.status == 503:  # refused by admission (a busy machine): said, and retried
                    print(f"  warm-up read refused: {page.get('code')}", flush=True)
                    await asyncio.sleep(0.5)
                    continue
                assert response.status == 200 and len(page["items"]) == 20, page
            await asyncio.sleep(0.05)
        singles = []
        for _ in range(20):
            t0 = time.perf_counter()
            async with session.get(f"{base}/api/v1/posts/feed", headers=headers) as response:
                await response.read()
            singles.append(time.perf_counter() - t0)
    from redis.asyncio import Redis

    async with Redis.from_url(env["REDIS_URL"]) as r:
        size = await r.zcard(f"feed:{reader_id}")
    print(f"timeline entries: {size}; one request at a time: p50 {summary_ms(singles)['p50']:.2f} ms", flush=True)
    if args.explain:
        await _explain(env, reader_id)
    if args.only_single:
        return
    figures, cpu = {}, {}
    for name, path in (("/health/live", "/health/live"), ("feed", "/api/v1/posts/feed")):
        refused_before = await _refusals(base)
        ok, errors, latencies, cores, services, mine = await _load(
            base + path, headers, args, api_pid, _service_pids(env))
        refused = {k: v - refused_before.get(k, 0) for k, v in (await _refusals(base)).items()
                   if v > refused_before.get(k, 0)}
        s = summary_ms(latencies)
        figures[name] = ok / args.duration
        per = args.duration / max(1, ok + errors) * 1e6
        cpu[name] = cores * per
        others = ", ".join(f"{service} {used * per:.0f} µs" for service, used in services.items())
        print(f"{name}: {ok / args.duration:,.0f} req/s, {errors} errors, p50 {s['p50']:.2f} ms, "
              f"p99 {s['p99']:.2f} ms (max {s['max']:.1f}); API {cores:.2f} cores, {cpu[name]:.0f} µs CPU per "
              f"request ({others}); generator ({args.client}) {mine:.2f} cores, {mine * per:.0f} µs per request; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        if refused:
            print(f"  admission refusals by reason: {refused}", flush=True)
        if name == "feed":
            verdict = "met" if s["p99"] <= 25 and errors == 0 else "NOT met"
            print(f"feed/health: throughput ratio {figures['feed'] / figures['/health/live']:.2f}, CPU per request "
                  f"ratio {cpu['feed'] / cpu['/health/live']:.1f}; target p99 ≤ 25 ms: {verdict}", flush=True)
    if args.skip_fanout:
        return
    elapsed, reached = await _fanout(env, args.fanout_followers)
    verdict = "met" if elapsed <= 5 and reached == args.fanout_followers else "NOT met"
    print(f"fan-out: one post to {args.fanout_followers} followers in {elapsed:.2f} s "
          f"({reached} timelines got it); target ≤ 5 s: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--authors", type=int, default=2000)
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--following", type=int, default=500)
    parser.add_argument("--fanout-followers", type=int, default=10_000)
    parser.add_argument("--only-single", action="store_true", help="stop after the sequential requests")
    parser.add_argument("--skip-fanout", action="store_true", help="stop after the feed load")
    parser.add_argument("--workers", type=int, default=1, help="API processes (`chatty api --workers`)")
    parser.add_argument("--port", type=int, default=0, help="the API's port (default: any free one)")
    parser.add_argument("--client", choices=["lean", "aiohttp"], default="lean",
                        help="the load generator: bench/httpload.py (default) or aiohttp (as before)")
    parser.add_argument("--explain", action="store_true", help="print the plan of the feed's main query")
    args = parser.parse_args()
    args.duration = min(max(args.duration, 1.0), MAX_DURATION)
    args.posts = min(args.posts, 500_000)
    args.following = min(args.following, args.authors)
    workdir = Path(tempfile.mkdtemp(prefix="chatty-bench-feed-"))
    workdir.chmod(0o755)
    pg = start_postgres(workdir / "pg", database="bench", fsync=False)
    redis = start_redis(workdir / "redis")
    api = None
    try:
        port = args.port or free_port()
        env = {**os.environ, "DATABASE_URL": pg.url, "REDIS_URL": redis.url, "JWT_SECRET": secrets.token_hex(24),
               "LOG_LEVEL": "WARNING", "METRICS_TOKEN": METRICS_TOKEN,
               "WRITE_LIMIT_PER_USER": "100000/minute", "SIGNUP_LIMIT_PER_IP": "1000/hour",
               "BENCH_PG_PID_FILE": str(pg.data_dir / "postmaster.pid"), "BENCH_REDIS_PID_FILE": str(redis.pid_file)}
        subprocess.run([sys.executable, "-m", "src.cli", "migrate"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)
        api = subprocess.Popen([sys.executable, "-m", "src.cli", "api", "--host", "127.0.0.1", "--port", str(port),
                                "--workers", str(args.workers)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120  # a loaded machine imports slowly
        while True:
            try:
                import urllib.request

                with urllib.request.urlopen(base + "/health/live", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the API did not start")
            time.sleep(0.2)
        print(f"API pid {api.pid} on {base}", flush=True)
        asyncio.run(_main(args, env, base, api.pid))
    finally:
        if api is not None:
            api.terminate()
            api.wait(10)
        redis.stop()
        pg.stop()


if __name__ == "__main__":
    main()
