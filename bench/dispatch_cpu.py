"""The API's after-commit work for a 1:1 message, alone: CPU per MessageCreated through the bus.

    uv run python bench/dispatch_cpu.py [--events 2000] [--per-turn 1 3] [--rounds 4]

Builds the modules as an API process does (environment as for the API: DATABASE_URL, REDIS_URL …)
and hands `--events` MessageCreated events to the bus's dispatcher, `--per-turn` of them per
event-loop turn (2 ms apart), as committed sends hand them over; it prints this process's CPU per
event for each round (the dispatcher, the notifications listener's Redis script, the outbox
marks, the event loop's own turns). The recipients are made up (100 conversations): their
windows are deleted at the end, but a worker running meanwhile checks them (stop the bench
worker, or expect it busy). `--idle` also prints the loop's cost of the same turns without
events. CODE=path runs another checkout's `src` (a before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

sys.path.insert(0, os.environ.get("CODE", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


async def main(args: argparse.Namespace) -> None:
    import socketio

    from src.bootstrap import MODULES, build_context
    from src.common.events.messaging import MessageCreated
    from src.infra.config import Settings
    from src.socket.emitter import SocketRealtime

    settings = Settings()
    manager = socketio.AsyncRedisManager(settings.redis_url, write_only=True)
    ctx = build_context(settings, lambda redis: SocketRealtime(manager.emit, redis))
    for module in MODULES:
        module.build(ctx)
    users = [uuid.uuid4() for _ in range(200)]
    conversations = [uuid.uuid4() for _ in range(100)]

    async def run(count: int, per_turn: int) -> None:
        for i in range(0, count, per_turn):
            pairs = [(i + j) % 100 for j in range(per_turn)]
            ctx.bus.dispatcher.submit([(MessageCreated(
                message_id=uuid.uuid4(), conversation_id=conversations[p], sender_id=users[2 * p],
                recipient_ids=[users[2 * p + 1]], seq=i + j + 1), []) for j, p in enumerate(pairs)])
            await asyncio.sleep(0.002)
        await ctx.bus.drain()

    try:
        for per_turn in args.per_turn:
            await run(500, per_turn)  # warm: connections, scripts, lazy imports
            figures = []
            for _ in range(args.rounds):
                started = time.process_time()
                await run(args.events, per_turn)
                figures.append(1e6 * (time.process_time() - started) / args.events)
            line = ", ".join(f"{x:.0f}" for x in figures)
            print(f"{per_turn} per turn: {line} µs of CPU per event (rounds of {args.events})", flush=True)
            if args.idle:
                started = time.process_time()
                for _ in range(0, args.events, per_turn):
                    await asyncio.sleep(0.002)
                print(f"{per_turn} per turn, no events: {1e6 * (time.process_time() - started) / args.events:.0f} "
                      "µs per event's share of the loop's turns")
    finally:  # the made-up recipients' windows: nobody to notify, so no work left for a worker
        await ctx.bus.drain()
        async with ctx.redis.pipeline(transaction=False) as pipe:
            for p, conversation in enumerate(conversations):
                recipient = users[2 * p + 1]
                pipe.delete(f"notifications:pending:{recipient}:{conversation}")
                pipe.zrem("notifications:due", f"{recipient}:{conversation}")
            await pipe.execute()
        await ctx.redis.aclose()
        await ctx.db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--per-turn", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--idle", action="store_true")
    asyncio.run(main(parser.parse_args()))
