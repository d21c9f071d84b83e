"""The test services answer, and Redis can be stopped and started again on the same port."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from src.infra.local_services import RedisServer
from tests.e2e.harness import SmtpSink


async def test_postgres_answers(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert (await conn.fetchval("SELECT current_database()")).startswith("chatty_test_")
    finally:
        await conn.close()


async def test_redis_answers(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()


async def test_redis_stop_and_start(redis_server: RedisServer, redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.set("smoke", "1")
        redis_server.stop()
        with pytest.raises(RedisConnectionError):
            await client.ping()
        redis_server.start()
        assert redis_server.url == redis_url
        assert await client.ping()
    finally:
        await client.aclose()


async def test_smtp_sink_collects_mail(smtp: SmtpSink) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "smoke"
    message.set_content("hello")

    def send() -> None:
        with smtplib.SMTP(smtp.host, smtp.port) as client:
            client.send_message(message)

    await asyncio.to_thread(send)
    mail = await smtp.wait_for(lambda m: "b@example.com" in m.recipients)
    assert mail.subject == "smoke"
    assert mail.text.strip() == "hello"
