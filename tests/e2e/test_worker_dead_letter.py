"""A task that keeps failing is retried a bounded number of times, then dead-lettered, not lost;
neither the broker, its dead letters nor the worker's log ever hold the reset token."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid

import asyncpg
import httpx
from redis.asyncio import Redis

from src.infra.local_services import free_port
from src.infra.tasks import TaskQueue, create_broker
from src.modules.auth.actors import send_password_reset
from tests.e2e.harness import WorkerProcess, new_user


async def _dump(redis: Redis, namespace: str) -> str:
    """Every value under the namespace's keys, as one text (to search for secrets)."""
    parts = []
    async for key in redis.scan_iter(f"{namespace}:*"):
        kind = await redis.type(key)
        if kind == "hash":
            parts += [f"{k}={v}" for k, v in (await redis.hgetall(key)).items()]
        elif kind == "zset":
            parts += await redis.zrange(key, 0, -1)
        elif kind == "list":
            parts += await redis.lrange(key, 0, -1)
        elif kind == "string":
            parts.append(str(await redis.get(key)))
    return "\n".join(parts)


async def test_a_mail_that_cannot_be_sent_ends_in_the_dead_letter_queue_without_a_token(
        app_env: dict[str, str], http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    # A broker namespace of its own, so the suite's worker cannot take the message (and nothing
    # shared is flushed), and an SMTP port where nothing listens, so every attempt fails.
    namespace = f"dlq-{uuid.uuid4().hex[:8]}"
    env = {**app_env, "BROKER_NAMESPACE": namespace, "SMTP_PORT": str(free_port())}
    user = await new_user(http)
    redis = Redis.from_url(app_env["REDIS_URL"], decode_responses=True)
    worker = WorkerProcess(env, threads=1).start()
    try:
        spec = dataclasses.replace(send_password_reset, max_retries=1, min_backoff_ms=100, max_backoff_ms=200)
        request_id = str(uuid.uuid4())
        TaskQueue(create_broker(app_env["REDIS_URL"], namespace=namespace)).enqueue(
            spec, user_id=user.id, request_id=request_id)
        dead_letters = 0
        for _ in range(150):  # polls a positive signal: the dead letter appearing
            dead_letters = await redis.zcard(f"{namespace}:email.XQ")
            if dead_letters:
                break
            await asyncio.sleep(0.1)
        assert dead_letters == 1
        assert await redis.llen(f"{namespace}:email") == 0

        # The worker made (and stored the hash of) a token on each attempt; none left its process.
        made = await db.fetchval("SELECT count(*) FROM auth.password_resets WHERE user_id = $1",
                                 uuid.UUID(user.id))
        assert made >= 1
        stored = await _dump(redis, namespace)
        dead = [json.loads(v) for k, v in (await redis.hgetall(f"{namespace}:email.XQ.msgs")).items()]
        assert [set(m["kwargs"]) for m in dead] == [{"user_id", "request_id"}]
        assert "token" not in stored.lower()
        # Dramatiq's own log lines name the message, never its arguments.
        assert request_id not in worker.log_path.read_text(errors="replace")
    finally:
        worker.stop()
        keys = [key async for key in redis.scan_iter(f"{namespace}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def test_a_secret_named_argument_is_refused_before_the_broker() -> None:
    queue = TaskQueue(create_broker("redis://127.0.0.1:1/0"))
    try:
        queue.enqueue(send_password_reset, user_id="u", token="secret")
    except ValueError as exc:
        assert "token" in str(exc)
    else:
        raise AssertionError("a token was accepted")
