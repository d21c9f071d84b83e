"""CPU per ended call of the call-history write, one call per transaction vs batches (in-process).

    uv run python bench/calls_history.py --database-url postgresql://postgres@127.0.0.1:5433/bench \\
        --redis-url redis://127.0.0.1:6391/2

Writes 200 ended 1:1 calls per round through `CallHistory.archive_many` (as the archiver does,
CallEnded published and delivered by this process's bus) in batches of 1, 5 and 20, and prints
this process's CPU per call. Needs a migrated database; the rows it writes stay (calls that
never existed, no user rows).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from e2e.harness import in_process_context  # noqa: E402

from src.bootstrap import MODULES  # noqa: E402
from src.common.clock import utcnow  # noqa: E402
from src.modules.calls import state  # noqa: E402
from src.modules.calls.history import CallHistory  # noqa: E402
from src.modules.calls.state import CallState, Participant  # noqa: E402


def ended_call() -> CallState:
    now = utcnow()
    a, b = uuid.uuid4(), uuid.uuid4()
    call = CallState(id=uuid.uuid4(), kind="direct", media="audio", conversation_id=None, caller_id=a,
                     status="accepted", created_at=now, ring_deadline=now + timedelta(seconds=45), answered_at=now,
                     participants=[Participant(user_id=a, state="joined", joined_at=now),
                                   Participant(user_id=b, state="joined", joined_at=now)])
    state.end(call, "completed", now)
    return call


async def run(args: argparse.Namespace) -> None:
    ctx = in_process_context({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                              "JWT_SECRET": "bench-secret-bench-secret-bench-secret-0"}, MODULES)
    history = CallHistory(ctx)
    try:
        for size in (1, 5, 20, 1, 20):
            calls = [ended_call() for _ in range(args.calls)]
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(0, len(calls), size):
                await history.archive_many(calls[i:i + size])
            await ctx.bus.drain()
            print(f"batches of {size:3}: CPU {1000 * (time.process_time() - cpu) / len(calls):.2f} ms per call "
                  f"(wall {1000 * (time.perf_counter() - wall) / len(calls):.2f} ms)", flush=True)
    finally:
        await ctx.redis.aclose()
        await ctx.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    if any("127.0.0.1" not in url and "localhost" not in url for url in (args.database_url, args.redis_url)):
        parser.error("loopback URLs only")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
