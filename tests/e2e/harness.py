"""End-to-end helpers: real API and worker processes, an SMTP sink, sign-up and Socket.IO clients."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import socketio
from aiosmtpd.controller import Controller
from redis.asyncio import Redis

from src.bootstrap import build_context
from src.common.events import Event
from src.infra.config import Settings
from src.infra.context import AppContext
from src.infra.local_services import HOST, free_port
from src.infra.modules import Module
from src.socket.emitter import SocketRealtime

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PASSWORD = "Correct-Horse-Battery-9"


class _ChildProcess:
    """A `python -m src.cli ...` subprocess in its own process group, output captured to a file."""

    name = "chatty"

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.args = args
        self.env = dict(env)
        self.log_path = Path(tempfile.mkstemp(prefix=f"chatty-{self.name}-", suffix=".log")[1])
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def output(self, lines: int = 60) -> str:
        """The last lines the process wrote (stdout and stderr)."""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "src.cli", *self.args], cwd=ROOT, env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _fail(self, why: str) -> None:
        self.stop()
        raise RuntimeError(f"{self.name} {why}; its output:\n{self.output()}")

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL to the whole process group after `timeout` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()


class ApiProcess(_ChildProcess):
    """`chatty api` on a free 127.0.0.1 port; ready once GET /health/live answers 200."""

    name = "api"

    def __init__(self, env: Mapping[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        super().__init__(["api", "--host", HOST, "--port", str(self.port)],
                         {"PUBLIC_BASE_URL": self.base_url, **env})

    def start(self, timeout: float = 60) -> ApiProcess:
        self._spawn()
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while True:
                try:
                    if client.get(f"{self.base_url}/health/live").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if not self.running:
                    self._fail("exited during start-up")
                if time.monotonic() > deadline:
                    self._fail(f"did not answer /health/live within {timeout:.0f} s")
                time.sleep(0.1)

    @classmethod
    @contextlib.contextmanager
    def serving(cls, env: Mapping[str, str]) -> Iterator[ApiProcess]:
        """An extra API process with its own settings, stopped when the block ends."""
        process = cls(env).start()
        try:
            yield process
        finally:
            process.stop()

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        """An HTTP client on this process's `/api/v1` (30 s per request)."""
        async with httpx.AsyncClient(base_url=self.base_url + "/api/v1", timeout=30) as client:
            yield client


class WorkerProcess(_ChildProcess):
    """`chatty worker`; ready once Dramatiq logs "ready for action", or after `settle` s still running."""

    name = "worker"

    def __init__(self, env: Mapping[str, str], processes: int = 1, threads: int = 4) -> None:
        super().__init__(["worker", "--processes", str(processes), "--threads", str(threads)], env)

    def start(self, settle: float = 8) -> WorkerProcess:
        self._spawn()
        deadline = time.monotonic() + settle
        while "ready for action" not in self.log_path.read_text(errors="replace"):
            if not self.running:
                self._fail("exited during start-up")
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return self


@dataclass
class Mail:
    """One message received by the SMTP sink."""

    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def text(self) -> str:
        """The plain-text body (or the HTML one when there is no plain part)."""
        part = self.message.get_body(preferencelist=("plain", "html"))
        return str(part.get_content()) if part is not None else ""


class SmtpSink:
    """An SMTP server on a free 127.0.0.1 port that keeps every message it receives."""

    def __init__(self) -> None:
        self.host = HOST
        self.port = free_port()
        self.messages: list[Mail] = []
        self._controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        self.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), cast(EmailMessage, message)))
        return "250 OK"

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def clear(self) -> None:
        self.messages.clear()

    async def wait_for(self, predicate: Callable[[Mail], bool] = lambda m: True,
                       timeout: float = 10) -> Mail:  # noqa: ASYNC109
        """The first received message matching `predicate`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for mail in list(self.messages):
                if predicate(mail):
                    return mail
            if time.monotonic() > deadline:
                subjects = [m.subject for m in self.messages]
                raise TimeoutError(f"no matching mail within {timeout} s; got {subjects}")
            await asyncio.sleep(0.05)


def unique_name(prefix: str = "u") -> str:
    """A short unique lowercase name (usernames, titles)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The JSON of a response that must have `status`."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The problem body of a response that must fail with `status` and `code`."""
    body = response.json()
    assert (response.status_code, body.get("code")) == (status, code), f"{response.status_code}: {response.text}"
    return dict(body)


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def signup(http: httpx.AsyncClient, username: str | None = None, password: str = DEFAULT_PASSWORD,
                 *, email: str | None = None, display_name: str | None = None) -> dict[str, Any]:
    """Sign a new user up; the response JSON (user, access_token, refresh_token…) plus `password`."""
    username = username or unique_name()
    body: dict[str, Any] = {"username": username, "email": email or f"{username}@example.com",
                            "password": password}
    if display_name is not None:
        body["display_name"] = display_name
    response = await http.post("/auth/signup", json=body)
    assert response.status_code == 201, f"signup failed: {response.status_code} {response.text}"
    return {**response.json(), "password": password}


class EventRecorder:
    """Collects every Socket.IO event a client receives, by event name."""

    def __init__(self) -> None:
        self.events: dict[str, list[Any]] = defaultdict(list)

    def attach(self, client: socketio.AsyncClient) -> None:
        client.on("*", self._record)

    async def _record(self, event: str, *args: Any) -> None:
        self.events[event].append(args[0] if len(args) == 1 else list(args) or None)

    def clear(self, event: str | None = None) -> None:
        if event is None:
            self.events.clear()
        else:
            self.events.pop(event, None)

    async def wait_for(self, event: str, predicate: Callable[[Any], bool] | None = None,
                       timeout: float = 5) -> Any:  # noqa: ASYNC109
        """The first payload of `event` (already received or arriving) matching `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            for payload in list(self.events.get(event, ())):
                if predicate is None or predicate(payload):
                    return payload
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching {event!r} within {timeout} s; got {dict(self.events)}")
            await asyncio.sleep(0.02)


async def connect_socket(base_url: str, token: str, *, recorder: EventRecorder | None = None,
                         **client_kwargs: Any) -> socketio.AsyncClient:
    """A connected Socket.IO client (websocket transport, `auth={"token": token}`, no auto-reconnect)."""
    client_kwargs.setdefault("reconnection", False)
    client = socketio.AsyncClient(**client_kwargs)
    if recorder is not None:
        recorder.attach(client)
    await client.connect(base_url, transports=["websocket"], auth={"token": token}, wait_timeout=10)
    return client


def in_process_context(app_env: dict[str, str], modules: list[Module]) -> AppContext:
    """A context wired like an API process with `modules` (same PostgreSQL and Redis)."""
    settings = Settings(database_url=app_env["DATABASE_URL"], redis_url=app_env["REDIS_URL"],
                        jwt_secret=app_env["JWT_SECRET"], media_dir=app_env.get("MEDIA_DIR", ".data/media"),
                        _env_file=None)  # type: ignore[call-arg]
    manager = socketio.AsyncRedisManager(settings.redis_url, write_only=True)
    context = build_context(settings, lambda redis: SocketRealtime(manager.emit, redis))
    for module in modules:
        module.build(context)
    return context


@dataclass
class User:
    """A signed-up user as most tests need it: id and access token."""

    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return auth_headers(self.token)


async def new_user(http: httpx.AsyncClient) -> User:
    """Sign up a fresh user."""
    body = await signup(http)
    return User(id=body["user"]["id"], token=body["access_token"])


# Brokers whose `events` queue `settled` also waits for (the worker fixture adds the suite's).
EVENT_BROKERS: set[tuple[str, str]] = set()


async def _events_queue_busy() -> bool:
    """Whether a worker-listener task is still queued, running or waiting for a retry."""
    for redis_url, namespace in EVENT_BROKERS:
        redis = Redis.from_url(redis_url)
        try:
            if await redis.hlen(f"{namespace}:events.msgs") or await redis.hlen(f"{namespace}:events.DQ.msgs"):
                return True
        finally:
            await redis.aclose()
    return False


async def deliver_everywhere(ctx: AppContext, db: asyncpg.Connection, event: Event) -> list[str]:
    """Deliver `event` as the relay would, worker listeners included, and wait for them: its
    outbox row is written first (as already dispatched), so that a worker can load it. Needs
    the `worker` fixture."""
    await db.execute("INSERT INTO infra.outbox (event_id, name, payload, dispatched_at) "
                     "VALUES ($1, $2, $3::jsonb, now()) ON CONFLICT (event_id) DO NOTHING",
                     event.event_id, event.name, json.dumps(event.to_payload()))
    errors = await ctx.bus.deliver(event)
    await settled(db)
    return errors


async def settled(db: asyncpg.Connection, within: float = 30.0) -> None:
    """Wait until every event committed so far, and every event its listeners published in
    turn, was dispatched (or given up on), and every worker listener's task ran: the positive
    barrier after a request whose listeners run off its path."""
    pending = ("SELECT EXISTS (SELECT 1 FROM infra.outbox WHERE created_at <= $1 "
               "AND dispatched_at IS NULL AND dead_at IS NULL)")
    deadline = time.monotonic() + within
    since = await db.fetchval("SELECT now()")
    for _ in range(20):
        while await db.fetchval(pending, since) or await _events_queue_busy():
            if time.monotonic() > deadline:
                rows = await db.fetch("SELECT name, attempts, last_error, created_at, next_attempt_at FROM "
                                      "infra.outbox WHERE created_at <= $1 AND dispatched_at IS NULL "
                                      "AND dead_at IS NULL LIMIT 5", since)
                raise AssertionError(f"events still undelivered after {within:.0f} s: {[dict(r) for r in rows]}")
            await asyncio.sleep(0.02)
        later = await db.fetchval("SELECT now()")
        # Listeners (here or in a worker) may have published more (a cascade): settle those too.
        if not await db.fetchval("SELECT EXISTS (SELECT 1 FROM infra.outbox WHERE created_at > $1 "
                                 "AND created_at <= $2)", since, later):
            return
        since = later


async def quiet_barrier(http: httpx.AsyncClient, db: asyncpg.Connection, token: str,
                        recorder: EventRecorder) -> None:
    """Before asserting that a socket received nothing: let every committed event's listeners
    finish (`settled`), then send this user a later marker (`block:changed` for a fresh user it
    blocks) and wait for it. Emits published before the marker arrive before it."""
    await settled(db)
    stranger = await signup(http)
    await http.put(f"/users/{stranger['user']['id']}/block", headers=auth_headers(token))
    await recorder.wait_for("block:changed", lambda p: p["user_id"] == stranger["user"]["id"])
