"""Settings and deployment files that must not ship something usable by an attacker (issue 9)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from src.common.errors import RateLimited
from src.infra.ratelimit import RateLimiter
from tests.unit.test_settings import GOOD, start_api

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("compose", ["docker-compose.yml", "docker-compose.workers.yml"])
def test_compose_ships_no_default_jwt_secret(compose: str) -> None:
    lines = [line for line in (ROOT / compose).read_text().splitlines() if "JWT_SECRET" in line]
    assert lines
    for line in lines:
        assert re.search(r"\$\{JWT_SECRET:\?", line), line  # compose refuses to start without one


def test_the_old_placeholder_secret_is_refused(tmp_path: Path) -> None:
    result = start_api({**GOOD, "JWT_SECRET": "change-me-to-a-long-random-secret-of-48-chars"}, tmp_path)
    assert result.returncode == 2 and "JWT_SECRET" in result.stderr


def test_limits_fall_back_to_this_process_when_redis_is_down() -> None:
    async def scenario() -> None:
        limiter = RateLimiter("redis://127.0.0.1:9/0")  # nothing listens there
        for _ in range(3):
            await limiter.hit("3/minute", "write", "u1")
        with pytest.raises(RateLimited) as refused:
            await limiter.hit("3/minute", "write", "u1")
        assert refused.value.retry_after > 0
        await limiter.hit("3/minute", "write", "u2")  # per key
        await limiter.reserve("2/minute", "signin", "a")
        await limiter.refund("2/minute", "signin", "a")
        await limiter.reserve("2/minute", "signin", "a")
        await limiter.reserve("2/minute", "signin", "a")
        with pytest.raises(RateLimited):
            await limiter.reserve("2/minute", "signin", "a")

    asyncio.run(scenario())
