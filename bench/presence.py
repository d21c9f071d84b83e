"""Presence churn: does sockets coming and going slow the chat down?

    uv run python bench/presence.py [URL] [--churn-sockets 5000] [--churn-rate 200] \
        [--pairs 250] [--rate 500] [--duration 30]

Two phases of the same 1:1 chat (`--pairs` pairs of sockets sharing a direct conversation,
`message:send` acked at `--rate` msg/s in total, the partner must receive each once): first
alone (the baseline), then while `--churn-sockets` other users (each a contact of one chat
user, so their transitions are announced to someone online) connect and disconnect at
`--churn-rate` connections per second. Prints both phases' delivered/sent and p50/p95/p99
send→receive latency and the ratio of the p99s. Target: churn p99 at most 1.5 times the baseline p99.

The churn runs in a process of its own (`--churn-in-process`: in the chat's process, as before
the fifth session): real clients are separate devices, and 200 client connects/s in the chat's
event loop made that loop late and inflated the chat latency it measured. Each phase prints how
late the chat generator's loop ran (bench/lateness.py) and, per process, the cores used: the API
(the process on the port and its children), `--worker-pid` and its children, Redis
(`--redis-port`), the PostgreSQL backends of `--pg-database`, and the bench's own processes.

Users are cached (bench/population.py); run the bench API with ACCESS_TOKEN_TTL=86400 and
permissive limits (bench/README.md), and a worker (presence announcements run there).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import random
import sys
import time
import uuid
from typing import Any

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psutil
from benchlib import CpuWatch, cpu_seconds, find_listener_pid, host_port, summary_ms
from lateness import LoopLateness
from loadgen import raise_fd_limit
from messaging import start_relay
from population import ensure_direct_conversations, ensure_users
from sockets import RawSocket

MAX_CHURN, MAX_DURATION = 10_000, 120.0
FAILURES: collections.Counter[str] = collections.Counter()  # churn connects that failed, by error


async def chat(url: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]], conversations: list[str],
               rate: float, duration: float) -> dict[str, Any]:
    """Pairs of sockets; each message goes a → b; latencies at b."""
    latencies: list[float] = []
    sent = acked = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        senders = [RawSocket(session, url, {"token": a["token"]}, deflate=False) for a, _ in pairs]
        receivers = [RawSocket(session, url, {"token": b["token"]}, deflate=False) for _, b in pairs]
        received: set[str] = set()

        def on_new(payload: Any) -> None:
            if payload.get("id") in received:
                return
            received.add(payload["id"])
            latencies.append(time.time() - float(str(payload.get("body", "t=0")).split("t=", 1)[1]))

        for r in receivers:
            r.on("message:new", on_new)
        gate = asyncio.Semaphore(50)

        async def connect(s: RawSocket) -> None:
            async with gate:
                for _ in range(20):  # a 503 (the API refuses new sockets while overloaded): retry as told
                    try:
                        await s.connect()
                        return
                    except aiohttp.WSServerHandshakeError as exc:
                        if exc.status != 503:
                            raise
                        await asyncio.sleep(float((exc.headers or {}).get("Retry-After", 1)))
                await s.connect()

        await asyncio.gather(*(connect(s) for s in senders + receivers))
        lateness = LoopLateness().start()
        started = time.monotonic()
        tasks = []

        async def one(i: int) -> None:
            nonlocal acked
            ack = await senders[i].call("message:send", {"conversation_id": conversations[i],
                                                         "client_msg_id": uuid.uuid4().hex,
                                                         "body": f"churn t={time.time()}"})
            if ack and ack.get("ok"):
                acked += 1

        k = 0
        while time.monotonic() - started < duration:
            tasks.append(asyncio.create_task(one(k % len(pairs))))
            k += 1
            sent += 1
            await asyncio.sleep(max(0.0, k / rate - (time.monotonic() - started)))
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(3)
        late = lateness.stop()
        await asyncio.gather(*(s.close() for s in senders + receivers), return_exceptions=True)
    return {"sent": sent, "acked": acked, "delivered": len(received), "late": late, **summary_ms(latencies)}


def _auth(user: dict[str, Any], relay: bool) -> dict[str, Any]:
    """How a churning user signs in: a token for Chatty; the bare relay's own keys (`relay`)."""
    return {"user": user["id"], "partner": user["id"]} if relay else {"token": user["token"]}


async def churn(url: str, users: list[dict[str, Any]], rate: float, stop: Any, relay: bool = False) -> tuple[int, int]:
    """Connect users' sockets at `rate`/s, each held 0.5-5 s then closed, until `stop` (anything with
    `is_set()`): (connections tried, connections that connected). `relay`: `url` is the bare relay."""
    count = connected = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def cycle(user: dict[str, Any]) -> None:
            nonlocal connected
            sock = RawSocket(session, url, _auth(user, relay), deflate=False)
            try:
                await sock.connect()
                connected += 1
                await asyncio.sleep(random.uniform(0.5, 5.0))
            except Exception as exc:
                FAILURES[repr(exc)[:60]] += 1
            await sock.close()

        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        while not stop.is_set():
            task = asyncio.create_task(cycle(users[count % len(users)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            count += 1
            await asyncio.sleep(max(0.0, count / rate - (time.monotonic() - started)))
        await asyncio.gather(*tasks, return_exceptions=True)
    return count, connected


def _churn_child(url: str, users: list[dict[str, Any]], rate: float, stop: Any, out: Any, relay: bool) -> None:
    raise_fd_limit()
    tried, connected = asyncio.run(churn(url, users, rate, stop, relay))
    out.put((tried, connected, dict(FAILURES)))


class Churn:
    """The churn generator, in a process of its own (default) or in this event loop (`in_process`)."""

    def __init__(self, url: str, users: list[dict[str, Any]], rate: float, *, in_process: bool,
                 relay: bool = False) -> None:
        self.in_process = in_process
        if in_process:
            self._stop: Any = asyncio.Event()
            self._task = asyncio.create_task(churn(url, users, rate, self._stop, relay))
            self.pid = os.getpid()
        else:
            ctx = multiprocessing.get_context("spawn")
            self._stop, self._out = ctx.Event(), ctx.Queue()
            self._proc = ctx.Process(target=_churn_child, args=(url, users, rate, self._stop, self._out, relay),
                                     daemon=True)
            self._proc.start()
            self.pid = self._proc.pid or 0

    async def stop(self) -> tuple[int, int]:
        """Stop connecting, wait for the sockets held to close: (connects tried, connects made)."""
        self._stop.set()
        if self.in_process:
            return await self._task
        tried, connected, failures = await asyncio.to_thread(self._out.get, True, 60)
        FAILURES.update(failures)
        await asyncio.to_thread(self._proc.join, 10)
        return tried, connected


class MachineCpu:
    """Cores used by each process of the system under test and by the bench, between start and stop."""

    def __init__(self, args: argparse.Namespace, url: str, churn_pid: int | None) -> None:
        groups: dict[str, list[psutil.Process]] = {}
        api = find_listener_pid(host_port(url)[1])
        if api is not None:
            groups["api"] = [psutil.Process(api), *psutil.Process(api).children(recursive=True)]
        if args.worker_pid:
            worker = psutil.Process(args.worker_pid)
            groups["worker"] = [worker, *worker.children(recursive=True)]
        if args.redis_port and (redis := find_listener_pid(args.redis_port)) is not None:
            groups["redis"] = [psutil.Process(redis)]
        if args.pg_database:
            groups["postgres"] = [p for p in psutil.process_iter(["cmdline"])
                                  if f" {args.pg_database} " in " ".join(p.info["cmdline"] or []) + " "]
        groups["bench chat"] = [psutil.Process(os.getpid())]
        if churn_pid and churn_pid != os.getpid():
            groups["bench churn"] = [psutil.Process(churn_pid)]
        self._groups = groups
        self._start = {name: sum(cpu_seconds(p) for p in procs) for name, procs in groups.items()}
        self._machine = psutil.cpu_times()
        self._t0 = time.monotonic()

    def stop(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self._t0)
        parts = [f"{name} {(sum(cpu_seconds(p) for p in procs) - self._start[name]) / elapsed:.2f}"
                 for name, procs in self._groups.items()]
        now = psutil.cpu_times()
        busy = sum(now) - now.idle - getattr(now, "iowait", 0.0)
        busy_before = sum(self._machine) - self._machine.idle - getattr(self._machine, "iowait", 0.0)
        parts.append(f"machine (every process) {(busy - busy_before) / elapsed:.2f} of {psutil.cpu_count()}")
        return "cores: " + ", ".join(parts)


async def churn_cost(url: str, churners: list[dict[str, Any]], rate: float, duration: float,
                     in_process: bool, worker_pid: int | None = None) -> None:
    """Churn alone for `duration` s: the API's CPU (the process on the port and its children) per
    connect + disconnect, robust to a busy machine where latency figures are not."""
    pid = find_listener_pid(host_port(url)[1])
    if pid is None:
        raise SystemExit("churn-only needs the API on this machine")
    pids = [pid, *(c.pid for c in psutil.Process(pid).children())]
    cpu = CpuWatch(pids).start()
    worker = None
    if worker_pid:
        parent = psutil.Process(worker_pid)
        worker = CpuWatch([worker_pid, *(c.pid for c in parent.children(recursive=True))]).start()
    started = time.monotonic()
    churning = Churn(url, churners, rate, in_process=in_process)
    await asyncio.sleep(duration)
    tried, cycles = await churning.stop()
    await asyncio.sleep(2)  # the last disconnects
    cores, elapsed = cpu.stop(), time.monotonic() - started
    print(f"churn only: {cycles} connect+disconnect cycles ({tried} tried) at {rate:g}/s over {len(churners)} users; "
          f"API CPU "
          f"{cores * elapsed:.2f} s ({cores:.2f} cores): {cores * elapsed / max(1, cycles) * 1000:.2f} ms per cycle")
    if worker is not None:
        worker_s = worker.stop() * elapsed
        print(f"worker CPU {worker_s:.2f} s: {worker_s / max(1, cycles) * 1000:.2f} ms per cycle "
              "(presence announcements "
              "and sweep; other APIs on the same Redis add theirs)")
    if FAILURES:
        print(f"failed connects: {dict(FAILURES.most_common(3))}")


def report(name: str, r: dict[str, Any], cpu: str) -> None:
    late = r["late"]
    print(f"[{name}] sent {r['sent']}, acked {r['acked']}, delivered {r['delivered']}; send→receive ms: "
          f"p50 {r['p50']:.1f}  p95 {r['p95']:.1f}  p99 {r['p99']:.1f}; chat generator's loop late ms: "
          f"p50 {late['p50']:.1f}  p99 {late['p99']:.1f}  max {late['max']:.1f}", flush=True)
    print(f"[{name}] {cpu}", flush=True)


async def main_async(args: argparse.Namespace) -> None:
    url = args.url.rstrip("/")
    total = 2 * args.pairs + args.churn_sockets
    users = await ensure_users(url, total)
    chatters, churners = users[:2 * args.pairs], users[2 * args.pairs:]
    pairs = [(chatters[i], chatters[i + 1]) for i in range(0, len(chatters), 2)]
    conversations = await ensure_direct_conversations(url, pairs)
    # Each churning user shares a conversation with one chat receiver: their transitions are announced.
    await ensure_direct_conversations(url, [(c, pairs[i % len(pairs)][1]) for i, c in enumerate(churners)])
    if args.churn_only:
        await churn_cost(url, churners, args.churn_rate, args.duration, args.churn_in_process, args.worker_pid)
        return
    await chat(url, pairs, conversations, args.rate, min(5.0, args.duration))  # warm-up: caches, first connects
    cpu = MachineCpu(args, url, None)
    baseline = await chat(url, pairs, conversations, args.rate, args.duration)
    report("chat alone", baseline, cpu.stop())
    relay = start_relay() if args.churn_against_relay else None  # the control: churn that costs Chatty nothing
    churning = Churn(relay[1] if relay else url, churners, args.churn_rate, in_process=args.churn_in_process,
                     relay=relay is not None)
    await asyncio.sleep(3)  # churn up to speed
    cpu = MachineCpu(args, url, churning.pid)
    loaded = await chat(url, pairs, conversations, args.rate, args.duration)
    usage = cpu.stop()
    tried, cycles = await churning.stop()
    if relay:
        relay[0].terminate()
        relay[0].wait()
    report("chat + churn" + (" (against the bare relay)" if relay else ""), loaded, usage)
    ratio = loaded["p99"] / baseline["p99"]
    where = "in the chat's process" if args.churn_in_process else "in its own process"
    where += ", against the bare relay: a control, not the target" if relay else ""
    print(f"churn ({where}): {cycles} connects made of {tried} tried at {args.churn_rate:g}/s over "
          f"{len(churners)} users; p99 ratio churn/alone {ratio:.2f}; "
          f"target ≤ 1.5: {'met' if ratio <= 1.5 else 'NOT met'}")
    if FAILURES:
        print(f"failed connects: {dict(FAILURES.most_common(3))}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    p.add_argument("--churn-sockets", type=int, default=5000)
    p.add_argument("--churn-rate", type=float, default=200.0)
    p.add_argument("--pairs", type=int, default=250)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--churn-only", action="store_true",
                   help="no chat: the API's CPU per connect + disconnect cycle of the churning sockets")
    p.add_argument("--churn-in-process", action="store_true",
                   help="run the churn in the chat generator's process and loop (before the fifth session)")
    p.add_argument("--churn-against-relay", action="store_true",
                   help="a control: the churn connects to a bare relay started here, so the machine carries the "
                        "churn's clients and a server's connects but Chatty does none of the work")
    p.add_argument("--worker-pid", type=int, help="the worker's pid (with its children), for the CPU breakdown")
    p.add_argument("--redis-port", type=int, help="the bench Redis' port, for the CPU breakdown")
    p.add_argument("--pg-database", help="the bench database's name: its PostgreSQL backends' CPU")
    args = p.parse_args()
    args.churn_sockets = min(max(1, args.churn_sockets), MAX_CHURN)
    args.duration = min(max(1.0, args.duration), MAX_DURATION)
    raise_fd_limit()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
