"""Session services for the whole suite: PostgreSQL, Redis, migrations and the app's environment.

Each service comes from the environment (DATABASE_URL / REDIS_URL), else from Docker through
testcontainers when an engine answers, else from local binaries (src/infra/local_services.py).
CHATTY_TEST_SERVICES=local skips the Docker probe.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from src.infra.local_services import RedisServer, start_postgres, start_redis

ROOT = Path(__file__).resolve().parents[1]


def _docker_available() -> bool:
    if os.environ.get("CHATTY_TEST_SERVICES") == "local" or not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_available() -> bool:
    return _docker_available()


@pytest.fixture(scope="session")
def services_dir() -> Iterator[Path]:
    """A temporary directory for local servers, traversable by the postgres user."""
    path = Path(tempfile.mkdtemp(prefix="chatty-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url(docker_available: bool, services_dir: Path) -> Iterator[str]:
    """URL of a PostgreSQL server (any database on it)."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
    elif docker_available:
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:15", driver=None) as container:
            yield container.get_connection_url()
    else:
        server = start_postgres(services_dir / "postgres", database="postgres", fsync=False)
        try:
            yield server.url
        finally:
            server.stop()


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(server_url: str, statement: str) -> None:
    admin = await asyncpg.connect(_plain(server_url))
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """URL (postgresql://) of a new database `<prefix>_<random>` on that server, dropped on exit."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(_plain(server_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url: str) -> subprocess.CompletedProcess[str]:
    """Apply every migration to the database at `url` (through `chatty migrate`)."""
    return subprocess.run([sys.executable, "-m", "src.cli", "migrate"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "DATABASE_URL": url}, timeout=300)


@pytest.fixture(scope="session")
async def pg_url(pg_server_url: str) -> AsyncIterator[str]:
    """URL (postgresql://) of a fresh database `chatty_test_<random>`, dropped at the end."""
    async with fresh_database(pg_server_url, "chatty_test") as url:
        yield url


@pytest.fixture(scope="session")
def local_redis(docker_available: bool, services_dir: Path) -> Iterator[RedisServer | None]:
    """The local Redis process, or None when Redis is external (environment or container)."""
    if os.environ.get("REDIS_URL") or docker_available:
        yield None
        return
    server = start_redis(services_dir / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(local_redis: RedisServer | None, docker_available: bool) -> Iterator[str]:
    """URL of the Redis server the suite uses."""
    if local_redis is not None:
        yield local_redis.url
    elif url := os.environ.get("REDIS_URL"):
        yield url
    else:
        from testcontainers.community.redis import RedisContainer

        with RedisContainer("redis:7") as container:
            yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


@pytest.fixture
def redis_server(local_redis: RedisServer | None, redis_url: str) -> Iterator[RedisServer]:
    """The local Redis handle (`.stop()`, `.start()` on the same port); running again after the test."""
    if local_redis is None:
        pytest.skip("Redis is external: it cannot be stopped by the tests")
    yield local_redis
    if not local_redis.running:
        local_redis.start()


@pytest.fixture(scope="session")
def migrated_db(pg_url: str) -> str:
    """The test database with `alembic upgrade head` applied (through `chatty migrate`)."""
    done = migrate(pg_url)
    if done.returncode:
        pytest.fail(f"migrations failed:\n{done.stdout}{done.stderr}", pytrace=False)
    return pg_url


@pytest.fixture(scope="session")
def app_env(pg_url: str, redis_url: str, services_dir: Path) -> dict[str, str]:
    """Environment variables for an API or worker process under test."""
    return {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": secrets.token_urlsafe(36),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "1025",
        "LOG_LEVEL": "WARNING",
        "SIGNIN_LIMIT_PER_IP": "10000/15minutes",
        "FORGOT_LIMIT_PER_IP": "10000/hour",
        # The suite signs up and writes far faster than a person; tests of a limit lower it.
        "SIGNUP_LIMIT_PER_IP": "100000/hour",
        "SEND_LIMIT_PER_USER": "100000/second",
        "WRITE_LIMIT_PER_USER": "100000/minute",
        "SEARCH_LIMIT_PER_USER": "100000/minute",
        "SOCKET_EVENT_LIMIT": "100000/second",
        "METRICS_TOKEN": "suite-metrics-token",
        "UPLOAD_LIMIT_PER_USER": "100000/hour",
        # Overload refusals driven by timing are off (a busy CI machine would trip them); the in-flight
        # limit stays as in production, and tests of it lower it.
        "ADMISSION_MAX_AGE": "3600",
        "ADMISSION_MAX_LOOP_LAG": "3600",
        "MEDIA_DIR": str(services_dir / "media"),
    }
