"""End-to-end fixtures: an SMTP sink, one API and one worker process for the session, an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import httpx
import pytest

from src.bootstrap import MODULES
from src.infra.context import AppContext
from tests.e2e.harness import EVENT_BROKERS, ApiProcess, SmtpSink, WorkerProcess, in_process_context


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def app_env(app_env: dict[str, str], smtp: SmtpSink) -> dict[str, str]:
    """The suite's app environment, mail going to the SMTP sink."""
    return {**app_env, "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port)}


@pytest.fixture(scope="session")
def api(app_env: dict[str, str], migrated_db: str, worker: WorkerProcess) -> Iterator[ApiProcess]:
    # With the worker: account-deletion cascades run there (worker listeners, queue `events`).
    process = ApiProcess(app_env).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def worker(app_env: dict[str, str], migrated_db: str) -> Iterator[WorkerProcess]:
    process = WorkerProcess(app_env).start()
    broker = (app_env["REDIS_URL"], app_env.get("BROKER_NAMESPACE", "dramatiq"))
    EVENT_BROKERS.add(broker)
    yield process
    EVENT_BROKERS.discard(broker)
    process.stop()


@pytest.fixture
def api_factory(app_env: dict[str, str], migrated_db: str) -> Iterator[Callable[..., ApiProcess]]:
    """Start extra API processes: `api_factory(RUN_OUTBOX_RELAY="false")`; stopped after the test."""
    started: list[ApiProcess] = []

    def start(**overrides: str) -> ApiProcess:
        process = ApiProcess({**app_env, **overrides})
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
async def http(api: ApiProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.base_url + "/api/v1", timeout=15) as client:
        yield client


@pytest.fixture(scope="module")
async def ctx(app_env: dict[str, str], migrated_db: str) -> AsyncIterator[AppContext]:
    """An in-process context wired like an API process (every module, the suite's PostgreSQL and
    Redis), to ask queries and redeliver events as the bus would."""
    context = in_process_context(app_env, MODULES)
    yield context
    await context.redis.aclose()
    await context.db.dispose()


@pytest.fixture(scope="module")
async def db(migrated_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to the test database, to look behind the API."""
    conn = await asyncpg.connect(migrated_db)
    yield conn
    await conn.close()
