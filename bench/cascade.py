"""Block latency in a big graph: `PUT /users/{id}/block` by a user with thousands of follows.

    uv run python bench/cascade.py http://127.0.0.1:8031 --database-url postgresql://... \
        [--follows 5000] [--friendships 200] [--blocks 300]

Signs up a blocker and `--targets` users against the running `chatty api`, then writes the
blocker's graph behind the API (asyncpg): `--follows` followers and as many followees,
`--friendships` friends, and both-way follows plus a friendship with every target, so that
each block has a cascade to run (follows both ways, a friendship, counters, cached answers).
Then, one request at a time, blocks a target and unblocks it (the unblock is not timed),
cycling through the targets, for `--blocks` blocks; prints p50/p95/p99 of the PUT, the same
figures for `GET /health/live` measured in the same run, and their ratio. The target is a
p99 within 30 ms whatever the graph size: the request pays for its own write only.
Everything binds 127.0.0.1; the seeded rows stay in the bench database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

import aiohttp
import asyncpg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import signup, summary_ms

MAX_BLOCKS, MAX_GRAPH = 5_000, 100_000
TARGET_P99_MS = 30.0


async def seed(database_url: str, blocker: uuid.UUID, targets: list[uuid.UUID], follows: int,
               friendships: int) -> None:
    """The blocker's big graph, and edges with every target (written behind the API)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO follows.follows (follower_id, followee_id) "
                           "SELECT gen_random_uuid(), $1 FROM generate_series(1, $2)", blocker, follows)
        await conn.execute("INSERT INTO follows.follows (follower_id, followee_id) "
                           "SELECT $1, gen_random_uuid() FROM generate_series(1, $2)", blocker, follows)
        await conn.execute("INSERT INTO friendship.friendships (user_a, user_b, requester_id) "
                           "SELECT least(x, $1), greatest(x, $1), $1 "
                           "FROM (SELECT gen_random_uuid() AS x FROM generate_series(1, $2)) s", blocker, friendships)
        await conn.executemany("INSERT INTO follows.follows (follower_id, followee_id) VALUES ($1, $2), ($2, $1) "
                               "ON CONFLICT DO NOTHING", [(blocker, t) for t in targets])
        await conn.executemany("INSERT INTO friendship.friendships (user_a, user_b, requester_id) "
                               "VALUES (least($1::uuid, $2::uuid), greatest($1::uuid, $2::uuid), $1) "
                               "ON CONFLICT DO NOTHING", [(blocker, t) for t in targets])
    finally:
        await conn.close()


async def timed(session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    async with session.request(method, url, headers=headers) as response:
        await response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {url}: {response.status}")
    return time.perf_counter() - start


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="the bench API's database")
    p.add_argument("--follows", type=int, default=5000, help="followers (and as many followees) of the blocker")
    p.add_argument("--friendships", type=int, default=200)
    p.add_argument("--targets", type=int, default=20, help="users blocked in turn")
    p.add_argument("--blocks", type=int, default=300, help="timed blocks")
    args = p.parse_args()
    if not args.database_url:
        p.error("--database-url (or DATABASE_URL) is needed to seed the graph")
    if not args.url.startswith(("http://127.0.0.1", "http://localhost")):
        p.error("the bench only talks to 127.0.0.1")
    blocks = min(args.blocks, MAX_BLOCKS)
    follows, friendships = min(args.follows, MAX_GRAPH), min(args.friendships, MAX_GRAPH)
    database_url = args.database_url.replace("postgresql+asyncpg://", "postgresql://")

    async with aiohttp.ClientSession() as session:
        blocker = await signup(session, args.url, "cascade")
        targets = [await signup(session, args.url, "cascadet") for _ in range(args.targets)]
        blocker_id = uuid.UUID(blocker["user"]["id"])
        target_ids = [uuid.UUID(t["user"]["id"]) for t in targets]
        await seed(database_url, blocker_id, target_ids, follows, friendships)
        headers = {"Authorization": f"Bearer {blocker['access_token']}"}
        api = args.url.rstrip("/") + "/api/v1"

        for target in target_ids[:3]:  # warm-up: connections, caches
            await timed(session, "PUT", f"{api}/users/{target}/block", headers)
            await timed(session, "DELETE", f"{api}/users/{target}/block", headers)
        latencies, baseline = [], []
        for i in range(blocks):
            target = target_ids[i % len(target_ids)]
            latencies.append(await timed(session, "PUT", f"{api}/users/{target}/block", headers))
            await timed(session, "DELETE", f"{api}/users/{target}/block", headers)
            baseline.append(await timed(session, "GET", args.url.rstrip("/") + "/health/live", {}))

    block, live = summary_ms(latencies), summary_ms(baseline)
    print(f"graph: {follows} followers + {follows} followees + {friendships} friends; {blocks} blocks, one at a time")
    print("PUT /users/{id}/block  " + "  ".join(f"{k} {v:.2f} ms" for k, v in block.items()))
    print("GET /health/live       " + "  ".join(f"{k} {v:.2f} ms" for k, v in live.items()))
    print(f"ratio p99 block / live: {block['p99'] / live['p99']:.1f}x; "
          f"target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if block['p99'] <= TARGET_P99_MS else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
