"""Presence churn: does sockets coming and going slow the chat down?

    uv run python bench/presence.py [URL] [--churn-sockets 5000] [--churn-rate 200] \
        [--pairs 250] [--rate 500] [--duration 30]

Two phases of the same 1:1 chat (`--pairs` pairs of sockets sharing a direct conversation,
`message:send` acked at `--rate` msg/s in total, the partner must receive each once): first
alone (the baseline), then while `--churn-sockets` other users (each a contact of one chat
user, so their transitions are announced to someone online) connect and disconnect at
`--churn-rate` connections per second. Prints both phases' delivered/sent and p50/p95/p99
send→receive latency and the ratio of the p99s. Target: churn p99 at most 1.5 times the baseline p99.

Users are cached (bench/population.py); run the bench API with ACCESS_TOKEN_TTL=86400 and
permissive limits (bench/README.md), and a worker (presence announcements run there).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import sys
import time
import uuid
from typing import Any

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CpuWatch, find_listener_pid, host_port, summary_ms
from loadgen import raise_fd_limit
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
        await asyncio.gather(*(s.close() for s in senders + receivers), return_exceptions=True)
    return {"sent": sent, "acked": acked, "delivered": len(received), **summary_ms(latencies)}


async def churn(url: str, users: list[dict[str, Any]], rate: float, stop: asyncio.Event) -> tuple[int, int]:
    """Connect users' sockets at `rate`/s, each held 0.5-5 s then closed, until `stop`: (connections
    tried, connections that connected)."""
    count = connected = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def cycle(user: dict[str, Any]) -> None:
            nonlocal connected
            sock = RawSocket(session, url, {"token": user["token"]}, deflate=False)
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


async def churn_cost(url: str, churners: list[dict[str, Any]], rate: float, duration: float) -> None:
    """Churn alone for `duration` s: the API's CPU (the process on the port and its children) per
    connect + disconnect, robust to a busy machine where latency figures are not."""
    import psutil

    pid = find_listener_pid(host_port(url)[1])
    if pid is None:
        raise SystemExit("churn-only needs the API on this machine")
    pids = [pid, *(c.pid for c in psutil.Process(pid).children())]
    stop = asyncio.Event()
    cpu = CpuWatch(pids).start()
    started = time.monotonic()
    churning = asyncio.create_task(churn(url, churners, rate, stop))
    await asyncio.sleep(duration)
    stop.set()
    tried, cycles = await churning
    await asyncio.sleep(2)  # the last disconnects
    cores, elapsed = cpu.stop(), time.monotonic() - started
    print(f"churn only: {cycles} connect+disconnect cycles ({tried} tried) at {rate:g}/s over {len(churners)} users; "
          f"API CPU "
          f"{cores * elapsed:.2f} s ({cores:.2f} cores): {cores * elapsed / max(1, cycles) * 1000:.2f} ms per cycle")
    if FAILURES:
        print(f"failed connects: {dict(FAILURES.most_common(3))}")


def report(name: str, r: dict[str, Any]) -> None:
    print(f"[{name}] sent {r['sent']}, acked {r['acked']}, delivered {r['delivered']}; send→receive ms: "
          f"p50 {r['p50']:.1f}  p95 {r['p95']:.1f}  p99 {r['p99']:.1f}", flush=True)


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
        await churn_cost(url, churners, args.churn_rate, args.duration)
        return
    await chat(url, pairs, conversations, args.rate, min(5.0, args.duration))  # warm-up: caches, first connects
    baseline = await chat(url, pairs, conversations, args.rate, args.duration)
    report("chat alone", baseline)
    stop = asyncio.Event()
    churning = asyncio.create_task(churn(url, churners, args.churn_rate, stop))
    await asyncio.sleep(3)  # churn up to speed
    loaded = await chat(url, pairs, conversations, args.rate, args.duration)
    stop.set()
    tried, cycles = await churning
    report("chat + churn", loaded)
    ratio = loaded["p99"] / baseline["p99"]
    print(f"churn: {cycles} connections ({tried} tried) at {args.churn_rate:g}/s over {len(churners)} users; "
          f"p99 ratio churn/alone {ratio:.2f}; target ≤ 1.5: {'met' if ratio <= 1.5 else 'NOT met'}")


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
    args = p.parse_args()
    args.churn_sockets = min(max(1, args.churn_sockets), MAX_CHURN)
    args.duration = min(max(1.0, args.duration), MAX_DURATION)
    raise_fd_limit()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
