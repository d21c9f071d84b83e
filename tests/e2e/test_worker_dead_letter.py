"""A task that keeps failing is retried a bounded number of times, then dead-lettered, not lost."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from redis.asyncio import Redis

from src.infra.local_services import free_port
from src.infra.tasks import TaskQueue, create_broker
from src.modules.auth.actors import send_password_reset
from tests.e2e.harness import WorkerProcess


async def test_a_mail_that_cannot_be_sent_ends_in_the_dead_letter_queue(app_env: dict[str, str],
                                                                      migrated_db: str) -> None:
    # A Redis database of its own, so the suite's worker cannot take the message, and an SMTP
    # port where nothing listens, so every attempt fails.
    redis_url = app_env["REDIS_URL"].rsplit("/", 1)[0] + "/9"
    env = {**app_env, "REDIS_URL": redis_url, "SMTP_PORT": str(free_port())}
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    worker = WorkerProcess(env, threads=1).start()
    try:
        spec = dataclasses.replace(send_password_reset, max_retries=1, min_backoff_ms=100, max_backoff_ms=200)
        TaskQueue(create_broker(redis_url)).enqueue(
            spec, to="nobody@example.com", username="nobody", token="t", reset_id=uuid.uuid4().hex[:16])
        dead_letters = 0
        for _ in range(150):
            dead_letters = await redis.zcard("dramatiq:email.XQ")
            if dead_letters:
                break
            await asyncio.sleep(0.1)
        assert dead_letters == 1
        assert await redis.llen("dramatiq:email") == 0
    finally:
        worker.stop()
        await redis.flushdb()
        await redis.aclose()
