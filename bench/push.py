"""Push delivery: one worker process against the fake FCM server (tests/e2e/push_fakes.py).

    uv run python bench/push.py [--jobs 5000] [--batch 1] [--threads 32] [--rate 200] [--duration 10] [--pairs 50]

Self-contained: starts PostgreSQL and Redis from the local binaries in a temporary directory,
migrates, starts the lean fake FCM `messages:send` server (bench/fake_fcm.py: its own process,
uvloop + httptools) and the tests' fake OAuth token endpoint (tests/e2e/push_fakes.py, in a
thread), one `chatty worker --processes 1` and, for phase 2, one `chatty api`. Everything binds
127.0.0.1 and stops by itself.

1. Baseline: this process POSTs `messages:send` straight to the fake FCM (keep-alive, 32 in
   flight): what the fake and the loopback allow (mostly this process's aiohttp client).
2. Push jobs/s: `--jobs` unread notifications (one FCM device each) are written to the database,
   then enqueued as `notifications.push` jobs of `--batch` notifications each, on the bulk lane
   (the worker's event loop fetches up to WORKER_BULK_MAX_JOBS at a time and runs them as one
   batch: src/infra/bulk_queue.py; `--no-bulk`: on Dramatiq's `push` queue, through its worker
   threads, src/infra/thread_batch.py, as before the fourth session); rate = pushes /
   (last push - first enqueue). CPU per push is printed gross and net of the worker's idle CPU,
   then that of every other process (Redis, PostgreSQL, the fake FCM, this bench) and the Redis
   commands per push. `--batches-running`: push batches side by side in the worker.
   Also prints the TCP connections the worker opened to FCM (keep-alive: a handful, not one per job)
   and the ratio to the baseline.
3. Message→push: `--pairs` direct conversations whose recipients have no socket (pushed at once)
   and one FCM device; senders POST messages open-loop at `--rate` msg/s for `--duration` s; for
   each message, the time from the start of its POST to the first push covering its seq
   (a burst on one conversation collapses into one alert per version). Prints p50/p95/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import redis as redis_lib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import cpu_seconds, signup, summary_ms  # noqa: E402

from src.infra.local_services import free_port, start_postgres, start_redis  # noqa: E402
from src.infra.tasks import TaskQueue, create_broker  # noqa: E402
from src.modules.notifications.jobs import PUSH, push_items  # noqa: E402
from tests.e2e.harness import ApiProcess, WorkerProcess  # noqa: E402
from tests.e2e.push_fakes import FakeFcm  # noqa: E402


class Footprint:
    """CPU seconds of every process a push involves, and the commands Redis ran, so far."""

    def __init__(self, pg_dir: Path, redis_url: str, redis_pid: int, **processes: psutil.Process) -> None:
        self._postmaster = psutil.Process(int((pg_dir / "postmaster.pid").read_text().split()[0]))
        self._redis = redis_lib.Redis.from_url(redis_url)
        self._processes = {"redis": psutil.Process(redis_pid), **processes}

    def now(self) -> dict[str, float]:
        cpu = {name: cpu_seconds(p) for name, p in self._processes.items()}
        cpu["postgres"] = sum(cpu_seconds(p) for p in [self._postmaster, *self._postmaster.children()])
        stats = self._redis.info("commandstats")
        stats.pop("cmdstat_info", None)
        cpu["redis commands"] = sum(v["calls"] for v in stats.values())
        cpu.update({f"redis {name.removeprefix('cmdstat_')}": v["calls"] for name, v in stats.items()})
        return cpu

    @staticmethod
    def per_push(before: dict[str, float], after: dict[str, float], n: int) -> str:
        delta = {name: (after[name] - before.get(name, 0)) / n for name in after}
        cpu = ", ".join(f"{name} {v * 1000:.3f} ms" for name, v in delta.items() if not name.startswith("redis "))
        commands = ", ".join(f"{name.removeprefix('redis ')} {v:.2f}" for name, v in delta.items()
                             if name.startswith("redis ") and v >= 0.01)
        return f"{cpu}; Redis commands per push: {commands}"


class LeanFcm:
    """bench/fake_fcm.py in its own process, and what it recorded (fetched by `refresh`)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.pushes: list[tuple[float, str | None, int | None]] = []  # (at, conversation_id, seq)
        self.peers = 0
        self._process: subprocess.Popen[str] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> LeanFcm:
        self._process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_fcm.py"), str(self.port)],
                                         stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None and self._process.stdout.readline().strip() == "ready"
        return self

    @property
    def process(self) -> psutil.Process:
        assert self._process is not None
        return psutil.Process(self._process.pid)

    async def refresh(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.get(f"{self.base_url}/stats?since={len(self.pushes)}") as response:
            stats = await response.json()
        self.pushes.extend(tuple(p) for p in stats["pushes"])
        self.peers = stats["peers"]

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)

MAX_JOBS, MAX_DURATION, MAX_RATE = 50_000, 30.0, 2_000.0


async def wait_until(fcm: LeanFcm, predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    """Poll the fake's record (every 20 ms) until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    await fcm.refresh()
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not done within {timeout:.0f} s")
        await asyncio.sleep(0.02)
        await fcm.refresh()


async def baseline(fcm: LeanFcm, n: int, concurrency: int = 32) -> float:
    """Requests/s of direct keep-alive POSTs to the fake FCM."""
    url = f"{fcm.base_url}/v1/projects/{FakeFcm.project_id}/messages:send"
    headers = {"Authorization": "Bearer bench-bearer"}
    todo = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def loop() -> None:
            for i in todo:
                body = {"message": {"token": f"baseline-{i}", "data": {"type": "baseline"}}}
                async with session.post(url, json=body, headers=headers) as response:
                    await response.read()

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return n / (time.monotonic() - started)


async def unread_notifications(db_url: str, n: int) -> list[uuid.UUID]:
    """Ids of `n` new unread notifications, each of a new user with one FCM device."""
    conn = await asyncpg.connect(db_url)
    try:
        users = [uuid.uuid4() for _ in range(n)]
        notes = [uuid.uuid4() for _ in range(n)]
        await conn.copy_records_to_table("devices", schema_name="notifications",
                                         columns=["id", "user_id", "platform", "token", "token_hash"],
                                         records=[(uuid.uuid4(), u, "fcm", f"bench-{u}", u.bytes) for u in users])
        await conn.executemany(
            "INSERT INTO notifications.notifications (id, user_id, kind, actor_id, actor_ids, actor_count, "
            "event_count, data, in_app, push, email, version) "
            "VALUES ($1, $2, 'follow', $3, ARRAY[$3]::uuid[], 1, 1, '{}', true, true, false, 1)",
            [(note, user, uuid.uuid4()) for note, user in zip(notes, users, strict=True)])
        # Now, not in the measured window: autovacuum would wake for these rows within the minute.
        await conn.execute("VACUUM ANALYZE notifications.notifications, notifications.devices")
    finally:
        await conn.close()
    return notes


async def push_jobs(fcm: LeanFcm, redis_url: str, notes: list[uuid.UUID], batch: int = 1,
                    bulk: bool = True) -> tuple[float, int, float]:
    """(pushes/s, connections the worker opened, jobs/s this process enqueued) for these notifications, enqueued as
    `notifications.push` jobs of `batch` notifications (1: one job per notification, as a follow
    or reaction makes; more: as an event with many recipients makes)."""
    n = len(notes)
    tasks = TaskQueue(create_broker(redis_url), bulk=bulk)
    await fcm.refresh()
    before, peers_before = len(fcm.pushes), fcm.peers
    started = time.monotonic()
    for i in range(0, n, batch):
        tasks.enqueue(PUSH, items=push_items([(note, 1) for note in notes[i:i + batch]]))
    enqueued = time.monotonic() - started
    await wait_until(fcm, lambda: len(fcm.pushes) >= before + n, 120, f"{n} pushes")
    return n / (fcm.pushes[-1][0] - started), fcm.peers - peers_before, -(-n // batch) / enqueued


async def message_latency(api: ApiProcess, fcm: LeanFcm, pairs: int, rate: float, duration: float,
                          sampled: list[psutil.Process]) -> tuple[dict[str, float], int, int, float, float]:
    """Latencies (ms) from a message's POST to the push covering it; (summary, sent, covered, CPU
    seconds of the API and of the worker (`sampled[0]` and the rest) while sending and pushing)."""
    base = api.base_url
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        gate = asyncio.Semaphore(4)  # argon2 sign-ups: a few at a time, retried if the API sheds load

        async def one_user() -> dict:  # type: ignore[type-arg]
            async with gate:
                for attempt in range(5):
                    try:
                        return await signup(session, base)
                    except (aiohttp.ClientError, RuntimeError):
                        await asyncio.sleep(0.5 * (attempt + 1))
                return await signup(session, base)

        senders = await asyncio.gather(*(one_user() for _ in range(pairs)))
        recipients = await asyncio.gather(*(one_user() for _ in range(pairs)))
        conversations: list[str] = []
        for sender, recipient in zip(senders, recipients, strict=True):
            async with session.post(f"{base}/api/v1/devices", json={"platform": "fcm", "token": f"lat-{uuid.uuid4()}"},
                                    headers={"Authorization": f"Bearer {recipient['access_token']}"}) as r:
                assert r.status == 201, await r.text()
            async with session.post(f"{base}/api/v1/conversations", json={"user_id": recipient["user"]["id"]},
                                    headers={"Authorization": f"Bearer {sender['access_token']}"}) as r:
                conversations.append((await r.json())["id"])
        sent: list[tuple[str, int, float]] = []  # conversation, seq, POST start
        failed: list[int] = []

        async def post(i: int) -> None:
            t0 = time.monotonic()
            async with session.post(f"{base}/api/v1/conversations/{conversations[i % pairs]}/messages",
                                    json={"client_msg_id": uuid.uuid4().hex, "body": f"m{i}"},
                                    headers={"Authorization": f"Bearer {senders[i % pairs]['access_token']}"}) as r:
                body = await r.json()
            if r.status == 201:
                sent.append((body["conversation_id"], body["seq"], t0))
            else:
                failed.append(r.status)

        total = int(rate * duration)
        # Idle CPU (Dramatiq's consumer polls Redis every `--worker-timeout` ms; the API's timers):
        # subtracted below, so that a slow run does not count waiting as work per message.
        idle0, idle_started = [cpu_seconds(p) for p in sampled], time.monotonic()
        await asyncio.sleep(3)
        idle_s = time.monotonic() - idle_started
        idle_rate = [(cpu_seconds(p) - c) / idle_s for p, c in zip(sampled, idle0, strict=True)]
        cpu0 = [cpu_seconds(p) for p in sampled]
        started = time.monotonic()
        inflight = []
        for i in range(total):  # open loop: one POST every 1/rate s, whatever the answers do
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            inflight.append(asyncio.create_task(post(i)))
        await asyncio.gather(*inflight)
        last_seq: dict[str, int] = {}
        for c, s, _ in sent:
            last_seq[c] = max(last_seq.get(c, 0), s)

        def covered() -> bool:
            top: dict[str, int] = {}
            for _, c, s in fcm.pushes:
                if c in last_seq and s is not None:
                    top[c] = max(top.get(c, 0), s)
            return all(top.get(c, 0) >= s for c, s in last_seq.items())

        await wait_until(fcm, covered, 120, "pushes covering every message")
        elapsed = time.monotonic() - started
        cpu = [max(0.0, cpu_seconds(p) - c - r * elapsed) for p, c, r in zip(sampled, cpu0, idle_rate, strict=True)]
    pushes = sorted(((c, s, at) for at, c, s in fcm.pushes if c in last_seq and s is not None), key=lambda x: x[2])
    latencies = []
    for conversation, seq, t0 in sent:
        first = next(at for c, s, at in pushes if c == conversation and s >= seq)
        latencies.append(first - t0)
    if failed:
        print(f"  {len(failed)} sends failed: statuses {sorted(set(failed))}")
    return summary_ms(latencies), len(sent), len(latencies), cpu[0], sum(cpu[1:])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=32,
                        help="worker threads: jobs in flight, so the size of the worker's push batches")
    parser.add_argument("--batch", type=int, default=1, help="notifications per push job (1: one job each)")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--prefetch", type=int, default=256, help="dramatiq_queue_prefetch of the worker")
    parser.add_argument("--batches-running", type=int, default=0,
                        help="WORKER_BATCHES_RUNNING: push batches side by side in the worker (0: its default, 1)")
    parser.add_argument("--no-bulk", action="store_true",
                        help="enqueue on the `push` queue (Dramatiq's worker threads), not the bulk lane")
    parser.add_argument("--bulk-max-jobs", type=int, default=0,
                        help="WORKER_BULK_MAX_JOBS: jobs the bulk lane takes per fetch (0: the worker's default)")
    parser.add_argument("--worker-timeout", type=int, default=100,
                        help="dramatiq_worker_timeout (ms): how often idle threads and consumers wake")
    args = parser.parse_args()
    jobs, rate, duration = min(args.jobs, MAX_JOBS), min(args.rate, MAX_RATE), min(args.duration, MAX_DURATION)

    workdir = Path(tempfile.mkdtemp(prefix="chatty-bench-push-"))
    workdir.chmod(0o755)  # noqa: ASYNC240
    pg = start_postgres(workdir / "pg", database="bench", fsync=False)
    redis = start_redis(workdir / "redis")
    oauth = FakeFcm()  # the OAuth token endpoint (the service account's token_uri)
    oauth.start()
    fcm = LeanFcm().start()
    env = {"DATABASE_URL": pg.url, "REDIS_URL": redis.url, "JWT_SECRET": secrets.token_urlsafe(36),
           "LOG_LEVEL": "WARNING", "SIGNUP_LIMIT_PER_IP": "100000/hour", "SEND_LIMIT_PER_USER": "100000/second",
           "WRITE_LIMIT_PER_USER": "100000/minute", "ACCESS_TOKEN_TTL": "86400", **oauth.env(),
           "FCM_ENDPOINT": fcm.base_url}
    worker = api = None
    try:
        done = subprocess.run([sys.executable, "-m", "src.cli", "migrate"], cwd=ROOT, capture_output=True, text=True,  # noqa: ASYNC221
                              env={**os.environ, **env}, timeout=300)
        assert done.returncode == 0, done.stderr
        # Dramatiq's Redis consumer sleeps up to `dramatiq_worker_timeout` ms (default 1,000) whenever
        # its prefetch (default 2 per thread) is all in flight: at these rates that sleep dominates.
        tuning = {"dramatiq_worker_timeout": str(args.worker_timeout), "dramatiq_queue_prefetch": str(args.prefetch),
                  "WORKER_BATCHES_RUNNING": str(args.batches_running)}
        if args.bulk_max_jobs:
            tuning["WORKER_BULK_MAX_JOBS"] = str(args.bulk_max_jobs)
        worker = WorkerProcess({**env, **tuning}, processes=1, threads=args.threads).start()
        print(f"fake FCM baseline (direct keep-alive POSTs, 32 in flight): {await baseline(fcm, jobs):,.0f} req/s")
        warm_up = await unread_notifications(pg.url, 200)
        await push_jobs(fcm, redis.url, warm_up, bulk=not args.no_bulk)  # pools, OAuth token
        proc = psutil.Process(worker.pid)
        children = proc.children(recursive=True)
        idle0 = sum(cpu_seconds(p) for p in children)
        await asyncio.sleep(2)  # the worker's idle CPU (threads and consumers polling), for the net figure
        idle = (sum(cpu_seconds(p) for p in children) - idle0) / 2
        notes = await unread_notifications(pg.url, jobs)
        footprint = Footprint(workdir / "pg", redis.url, int(redis.pid_file.read_text()), fake_fcm=fcm.process,
                              bench=psutil.Process())
        cpu0, before, t0 = sum(cpu_seconds(p) for p in children), footprint.now(), time.monotonic()
        per_s, connections, enqueue_per_s = await push_jobs(fcm, redis.url, notes, max(1, args.batch),
                                                            bulk=not args.no_bulk)
        # From the first enqueue to the last push (and the ~20 ms poll that saw it).
        cpu_s, after, window = sum(cpu_seconds(p) for p in children) - cpu0, footprint.now(), time.monotonic() - t0
        direct = await baseline(fcm, jobs)
        cpu_ms, net_ms = cpu_s / jobs * 1000, max(cpu_s - idle * window, 0.0) / jobs * 1000
        lane = "Dramatiq's worker threads" if args.no_bulk else "bulk lane"
        print(f"push jobs: {jobs} notifications, {args.batch} per job, {lane}, one worker process "
              f"({args.threads} threads): "
              f"{per_s:,.0f} pushes/s (target >= 2,000), {connections} new TCP connection(s) to FCM, worker "
              f"{cpu_s / window:.0%} busy, {cpu_ms:.2f} ms CPU per push (~{1000 / cpu_ms:,.0f} pushes/s on a whole "
              f"core); net of its idle CPU ({idle:.0%}): {net_ms:.2f} ms; {per_s / direct:.2f} of the direct "
              f"baseline ({direct:,.0f} req/s); the bench enqueued {enqueue_per_s:,.0f} jobs/s")
        print(f"  CPU per push of the others: {Footprint.per_push(before, after, jobs)}")

        if rate <= 0:
            return
        api = ApiProcess(env).start(timeout=120)  # a loaded machine starts it slowly
        sampled = [psutil.Process(api.pid), *children]
        latency = asyncio.create_task(message_latency(api, fcm, args.pairs, rate, duration, sampled))
        summary, sent, covered, cpu_api, cpu_worker = await latency
        print(f"message->push, offline recipients, {rate:.0f} msg/s for {duration:.0f} s over {args.pairs} "
              f"conversations: {covered}/{sent} covered; p50 {summary['p50']:.0f} ms, p95 {summary['p95']:.0f} ms, "
              f"p99 {summary['p99']:.0f} ms (target <= 1,000), max {summary['max']:.0f} ms; CPU per message "
              f"(net of idle): API {cpu_api / max(sent, 1) * 1000:.2f} ms (everything: auth, insert, "
              f"listeners), worker {cpu_worker / max(sent, 1) * 1000:.2f} ms")
    finally:
        for process in (api, worker):
            if process is not None:
                process.stop()
        await fcm.stop()
        oauth.stop()
        redis.stop()
        pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
