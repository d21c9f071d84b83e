"""What 1:1 chat costs behind the API: the worker's and PostgreSQL's CPU per delivered message.

Runs `messaging.py URL --skip-relay …` (its load: pairs of sockets, acked `message:send`) and
measures, from the start of its sending window until the notification windows it opened are
closed (every message due PUSH_DELAY later has been handled), the CPU of:

- the worker processes (`--worker-pid`, children included),
- the PostgreSQL backends of the bench database, split by whose connection they serve (the API
  processes', the workers', others'), plus Redis's server process,

and the Redis commands (INFO commandstats) and PostgreSQL transactions and rows written
(pg_stat_database, pg_stat_user_tables) per delivered message.

    uv run python bench/worker_cpu.py http://127.0.0.1:8110 --worker-pid W \\
        --database-url postgresql://postgres@127.0.0.1:5433/bench --redis-url redis://127.0.0.1:6391/0

`--direct` needs no API and no sockets (robust on a busy machine): this process publishes
`--rate` MessageCreated events per second for `--duration` seconds to the listeners as an API's
dispatcher would (`bus.deliver`), over the direct conversations of the database (`--pairs`),
both members marked online (so each message is checked PUSH_DELAY later), sender alternating,
nobody reading; the rest is measured the same way. Environment as for the worker (JWT_SECRET …).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psutil
import redis
from benchlib import cpu_seconds, find_listener_pids, host_port, local_ports, process_tree

HERE = os.path.dirname(os.path.abspath(__file__))
PENDING = "notifications:pending:*"


@dataclass
class Snapshot:
    at: float
    cpu: dict[int, float]  # pid -> CPU seconds (workers, API, Redis, PostgreSQL backends)
    backends: dict[int, int]  # PostgreSQL backend pid -> client port
    redis: dict[str, int]  # command -> calls
    db: dict[str, int]  # pg_stat_database counters
    tables: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # table -> ins, upd, del


async def _db_state(url: str) -> tuple[dict[int, int], dict[str, int], dict[str, tuple[int, int, int]]]:
    conn = await asyncpg.connect(url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        backends = {r["pid"]: r["client_port"] or 0 for r in await conn.fetch(
            "SELECT pid, client_port FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)}
        # Counters are flushed by each backend at the end of its transactions (at most every second).
        row = await conn.fetchrow("SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, "
                                  "tup_returned, tup_fetched FROM pg_stat_database WHERE datname = $1", name)
        tables = {f"{r['schemaname']}.{r['relname']}": (r["n_tup_ins"], r["n_tup_upd"], r["n_tup_del"])
                  for r in await conn.fetch("SELECT schemaname, relname, n_tup_ins, n_tup_upd, n_tup_del "
                                            "FROM pg_stat_user_tables")}
        return backends, dict(row), tables
    finally:
        await conn.close()


def snapshot(args: argparse.Namespace, r: redis.Redis, watched: list[psutil.Process]) -> Snapshot:
    with ThreadPoolExecutor(1) as pool:  # callable from inside a running event loop too
        backends, db, tables = pool.submit(asyncio.run, _db_state(args.database_url)).result()
    procs = watched + [p for pid in backends for p in process_tree([pid])]
    cpu = {p.pid: cpu_seconds(p) for p in procs}
    stats = r.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return Snapshot(time.monotonic(), cpu, backends, calls, db, tables)


def wait_windows_closed(r: redis.Redis, workers: list[psutil.Process], limit: float) -> float:
    """Seconds until no message window is pending and the workers went quiet (at most `limit`)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = sum(cpu_seconds(p) for p in workers)
        time.sleep(1.0)
        busy = sum(cpu_seconds(p) for p in workers) - before
        if next(r.scan_iter(PENDING, count=1000), None) is None and busy < 0.05:
            break
    return time.monotonic() - started


def report(a: Snapshot, b: Snapshot, messages: int, groups: dict[str, list[psutil.Process]],
           ports: dict[str, set[int]], redis_pid: int | None) -> None:
    def used(pids: Any) -> float:  # a process gone by the end took its CPU seconds with it
        return sum(b.cpu[pid] - a.cpu.get(pid, 0.0) for pid in pids if pid in b.cpu)

    def per(value: float) -> str:
        return f"{1e6 * value / messages:,.0f} µs"

    n = max(1, messages)
    elapsed = b.at - a.at
    print(f"\n== behind the API: {messages} messages delivered, window {elapsed:.1f} s "
          f"(sending, then until every message window closed); load average {os.getloadavg()[0]:.2f}")
    for name, procs in groups.items():
        cpu = used([p.pid for p in procs])
        print(f"{name:>28}: {cpu:6.2f} CPU s  = {per(cpu)} per message")
    owners: dict[str, list[int]] = {"API": [], "worker": [], "other": []}
    for pid, port in {**a.backends, **b.backends}.items():
        owner = "worker" if port in ports["worker"] else "API" if port in ports["API"] else "other"
        owners[owner].append(pid)
    total = 0.0
    for owner, pids in owners.items():
        cpu = used(pids)
        total += cpu
        print(f"{'PostgreSQL backends of ' + owner:>28}: {cpu:6.2f} CPU s  = {per(cpu)} per message "
              f"({len(pids)} backends)")
    print(f"{'PostgreSQL, all backends':>28}: {total:6.2f} CPU s  = {per(total)} per message")
    if redis_pid:
        print(f"{'Redis server':>28}: {used([redis_pid]):6.2f} CPU s  = {per(used([redis_pid]))} per message")
    delta = {k: b.redis.get(k, 0) - a.redis.get(k, 0) for k in b.redis}
    top = sorted(((v, k) for k, v in delta.items() if v > 0), reverse=True)[:12]
    print(f"Redis commands per message (all clients): {sum(delta.values()) / n:.2f}: "
          + ", ".join(f"{k} {v / n:.2f}" for v, k in top))
    db = {k: b.db[k] - a.db[k] for k in b.db}
    print("PostgreSQL per message (this database, all clients): "
          + ", ".join(f"{k} {v / n:.2f}" for k, v in db.items()))
    rows = sorted(((sum(b.tables[t]) - sum(a.tables.get(t, (0, 0, 0))), t) for t in b.tables), reverse=True)
    print("rows written per message by table: " + ", ".join(
        f"{t} {v / n:.2f}" for v, t in rows if v > 0))


async def publish_direct(args: argparse.Namespace, started: Any) -> int:
    """Deliver `rate * duration` MessageCreated events to this process's listeners; the count."""
    import uuid

    import socketio

    sys.path.insert(0, os.path.dirname(HERE))
    from src.bootstrap import MODULES, build_context
    from src.common.events.messaging import MessageCreated
    from src.infra.config import Settings
    from src.socket.emitter import SocketRealtime

    settings = Settings(database_url=args.database_url, redis_url=args.redis_url,
                        jwt_secret=os.environ.get("JWT_SECRET", "bench-secret-bench-secret-bench-secret-0"))
    manager = socketio.AsyncRedisManager(settings.redis_url, write_only=True)
    ctx = build_context(settings, lambda redis: SocketRealtime(manager.emit, redis))
    for module in MODULES:
        module.build(ctx)
    conn = await asyncpg.connect(args.database_url)
    try:
        rows = await conn.fetch(
            "SELECT c.id, c.last_seq, array_agg(m.user_id ORDER BY m.user_id) AS users FROM messaging.conversations c "
            "JOIN messaging.members m ON m.conversation_id = c.id WHERE c.kind = 'direct' "
            "GROUP BY c.id HAVING count(*) = 2 ORDER BY c.id LIMIT $1", args.pairs)
    finally:
        await conn.close()
    if not rows:
        raise SystemExit("no direct conversations in this database: run messaging.py against its API once")
    online = {u for r in rows for u in r["users"]}
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for u in online:
            pipe.sadd(f"notifications:sockets:{u}", "bench-worker-cpu")
            pipe.expire(f"notifications:sockets:{u}", 600)
        await pipe.execute()
    seqs = {r["id"]: r["last_seq"] + 1_000_000 for r in rows}  # beyond anything read or stored
    total = int(args.rate * args.duration)
    gate = asyncio.Semaphore(64)
    errors = 0

    async def one(i: int) -> None:
        nonlocal errors
        row = rows[i % len(rows)]
        sender, recipient = row["users"][(i // len(rows)) % 2], row["users"][1 - (i // len(rows)) % 2]
        seqs[row["id"]] += 1
        event = MessageCreated(message_id=uuid.uuid4(), conversation_id=row["id"], sender_id=sender,
                               recipient_ids=[recipient], seq=seqs[row["id"]])
        async with gate:
            if await ctx.bus.deliver(event, inline=False):
                errors += 1

    started()
    t0 = time.monotonic()
    tasks = []
    for i in range(total):
        await asyncio.sleep(max(0.0, t0 + i / args.rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    print(f"published {total} MessageCreated events over {len(rows)} conversations in "
          f"{time.monotonic() - t0:.1f} s ({errors} failed deliveries)", flush=True)
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for u in online:
            pipe.srem(f"notifications:sockets:{u}", "bench-worker-cpu")
        await pipe.execute()
    await ctx.redis.aclose()
    await ctx.db.dispose()
    return total - errors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="the API (its processes are measured too; with --direct it may be down)")
    p.add_argument("--worker-pid", type=int, action="append", required=True,
                   help="a worker process (children included), repeatable")
    p.add_argument("--database-url", required=True, help="the bench API's database (postgresql://…)")
    p.add_argument("--redis-url", required=True, help="the bench API's Redis")
    p.add_argument("--settle", type=float, default=40.0, help="at most this many seconds for the windows to close")
    p.add_argument("--direct", action="store_true", help="publish the events from here: no API, no sockets")
    p.add_argument("--rate", type=float, default=500.0, help="messages per second")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of sending")
    p.add_argument("--pairs", type=int, default=1000, help="--direct: direct conversations used")
    args, rest = p.parse_known_args()
    r = redis.Redis.from_url(args.redis_url)
    api_pids = find_listener_pids(host_port(args.url)[1])
    workers, api = process_tree(args.worker_pid), process_tree(api_pids)
    redis_pid = next((c.pid for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN
                      and c.laddr and c.laddr.port == (r.connection_pool.connection_kwargs.get("port") or 6379)
                      and c.pid), None)
    watched = workers + api + process_tree([redis_pid] if redis_pid else [])
    if args.direct:
        holder: list[Snapshot] = []
        delivered = asyncio.run(publish_direct(args, lambda: holder.append(snapshot(args, r, watched))))
        waited = wait_windows_closed(r, workers, args.settle)
        end = snapshot(args, r, watched)
        print(f"(the windows closed {waited:.1f} s after the last event)")
        report(holder[0], end, delivered, {"worker processes": workers, "API processes": api},
               {"worker": local_ports(workers), "API": local_ports(api)}, redis_pid)
        return
    extra = ["--rate", str(args.rate), "--duration", str(args.duration), *(rest or ["--sockets", "2000"])]
    command = [sys.executable, os.path.join(HERE, "messaging.py"), args.url, "--skip-relay",
               *(x for w in args.worker_pid for x in ("--worker-pid", str(w))), *extra]
    print("running:", " ".join(command[1:]), flush=True)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    start: Snapshot | None = None
    delivered = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if start is None and "] sending for" in line:
            start = snapshot(args, r, watched)
        if m := re.search(r"\] delivered (\d+)/", line):
            delivered = int(m.group(1))
    proc.wait()
    if start is None:
        raise SystemExit("messaging.py never started sending")
    waited = wait_windows_closed(r, workers, args.settle)
    end = snapshot(args, r, watched)
    print(f"(the windows closed {waited:.1f} s after messaging.py ended)")
    ports = {"worker": local_ports(workers), "API": local_ports(api)}
    report(start, end, delivered, {"worker processes": workers, "API processes": api}, ports, redis_pid)


if __name__ == "__main__":
    main()
