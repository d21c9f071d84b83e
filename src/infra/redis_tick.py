"""Redis commands issued in the same event-loop turn, sent as one write on one lean connection.

A 1:1 send asks Redis two things before its insert: the sender's rate limit (`limits`' moving-window
script) and privacy's cached verdict (an MGET), issued side by side, and one after it: the sync-stream
copy (an EVALSHA). Here what callers issue before the loop's next turn goes out as one write, and no
caller waits behind another caller's round trip: batches of different turns are in flight together
(the third pass's `Coalescer`-batched rate limit serialized them, and was reverted).

The commands go on a `Wire` (fifth pass): one plain TCP connection per client whose replies hiredis
parses in the protocol's read callback and hands straight to the callers' futures, in order. redis-py's
pipeline cost ~110-165 µs of CPU per round trip of two commands (a pipeline object, a pooled connection
taken and given back under locks, per-argument encoders, retry and timeout wrappers, a task); the wire
~25 µs (bench/README.md, "Send path, fifth pass"). Clients the wire cannot reach the same way (TLS, a
Unix socket) keep redis-py's pipeline.

Each caller gets its own command's reply or error (NOSCRIPT as redis-py's `NoScriptError`); a lost or
silent connection (no reply within the client's `socket_timeout`) fails every command in flight with
`ConnectionError` / `TimeoutError`, which callers already treat as "Redis could not answer"; the next
call reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Fill = Callable[[Any], None]  # adds ONE command to a pipeline (or to a `Command`)
_Queued = tuple[Fill, asyncio.Future[Any]]

_BY_CLIENT: weakref.WeakKeyDictionary[Redis, TickPipeline] = weakref.WeakKeyDictionary()
CONNECT_TIMEOUT = 0.5
DEFAULT_TIMEOUT = 1.0


class Command:
    """Stands in for a redis-py pipeline in a `Fill`: records the one command it adds."""

    __slots__ = ("args",)

    def __init__(self) -> None:
        self.args: tuple[Any, ...] = ()

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> None:
        self.args = ("EVALSHA", sha, numkeys, *keys_and_args)

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> None:
        self.args = ("EVAL", script, numkeys, *keys_and_args)

    def mget(self, keys: Any, *args: Any) -> None:
        self.args = ("MGET", *([keys] if isinstance(keys, str | bytes) else keys), *args)


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in the Redis protocol (str as UTF-8, numbers by repr, as redis-py writes them)."""
    return hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub types a 1-tuple only


def _fail_all(futures: Iterable[asyncio.Future[Any]], exc: BaseException) -> None:
    """Fail every future still waiting with `exc`."""
    for future in futures:
        if not future.done():
            future.set_exception(exc)


def _error(reply: hiredis.ReplyError) -> ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT "):
        return NoScriptError(message[len("NOSCRIPT "):])
    return ResponseError(message)


class Wire(asyncio.Protocol):
    """One Redis connection; replies resolve the waiting futures in order."""

    def __init__(self, timeout: float, encoding: str | None) -> None:
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(encoding=encoding) if encoding else hiredis.Reader()
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.closed = False
        self._progress = 0.0  # when a reply last came (or the oldest waiting command was written)
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def write(self, data: bytes, futures: list[asyncio.Future[Any]]) -> None:
        """Write commands whose replies go to `futures`, in order."""
        assert self.transport is not None
        if not self.waiting:
            self._progress = time.monotonic()
        self.waiting.extend(futures)
        self.transport.write(data)
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(self.timeout, self._check)

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        self._progress = time.monotonic()
        while (reply := reader.gets()) is not False:
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self._fail(RedisConnectionError("unexpected reply from Redis"))
                return
            future = waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_error(reply))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(RedisConnectionError(f"Redis connection lost: {exc!r}" if exc else "Redis closed the connection"))

    def close(self) -> None:
        """Close the connection (commands in flight fail)."""
        self._fail(RedisConnectionError("Redis connection closed"))

    def _check(self) -> None:
        self._watchdog = None
        if not self.waiting or self.closed:
            return
        late = time.monotonic() - self._progress
        if late >= self.timeout:
            self._fail(RedisTimeoutError("Timeout reading from Redis"))
            return
        self._watchdog = asyncio.get_running_loop().call_later(self.timeout - late, self._check)

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        waiting, self.waiting = self.waiting, collections.deque()
        _fail_all(waiting, exc)
        if self.transport is not None:
            self.transport.abort()


class TickPipeline:
    """Sends the commands queued during one event-loop turn together (no transaction)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queued: list[_Queued] | None = None
        self._running: set[asyncio.Task[None]] = set()
        pool = redis.connection_pool
        kwargs = pool.connection_kwargs
        self._address: tuple[str, int] | None = None
        if pool.connection_class is Connection and isinstance(kwargs.get("host"), str):  # plain TCP only
            self._address = (kwargs["host"], int(kwargs.get("port") or 6379))
        self._setup = [pack(("AUTH", *([kwargs["username"]] if kwargs.get("username") else []),
                             kwargs["password"]))] if kwargs.get("password") else []
        if kwargs.get("db"):
            self._setup.append(pack(("SELECT", int(kwargs["db"]))))
        self._encoding = (kwargs.get("encoding") or "utf-8") if kwargs.get("decode_responses") else None
        self._timeout = float(kwargs.get("socket_timeout") or DEFAULT_TIMEOUT)
        self._connect_timeout = float(kwargs.get("socket_connect_timeout") or CONNECT_TIMEOUT)
        self._wire: Wire | None = None
        self._connecting: asyncio.Future[Wire] | None = None

    async def call(self, fill: Fill) -> Any:
        """Queue `fill(pipeline)` (one command) for this turn's batch; its reply (or raise its error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._queued is None:
            self._queued = []
            loop.call_soon(self._flush)
        self._queued.append((fill, future))
        return await future

    def _flush(self) -> None:
        batch, self._queued = self._queued or [], None
        if not batch:
            return
        wire = self._wire
        if self._address is None:
            self._spawn(self._send_pipeline(batch))
        elif wire is not None and not wire.closed and wire.loop is asyncio.get_running_loop():
            self._write(wire, batch)
        else:
            self._spawn(self._send_when_connected(batch))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    @staticmethod
    def _write(wire: Wire, batch: list[_Queued]) -> None:
        chunks: list[bytes] = []
        futures: list[asyncio.Future[Any]] = []
        for fill, future in batch:
            command = Command()
            try:
                fill(command)
                chunks.append(pack(command.args))
            except Exception as exc:  # a bad argument fails its caller only
                if not future.done():
                    future.set_exception(exc)
                continue
            futures.append(future)
        if futures:
            wire.write(b"".join(chunks), futures)

    async def _send_when_connected(self, batch: list[_Queued]) -> None:
        try:
            wire = await self._connected()
        except Exception as exc:
            error = exc if isinstance(exc, RedisConnectionError | ResponseError) else RedisConnectionError(repr(exc))
            _fail_all((future for _, future in batch), error)
            return
        self._write(wire, batch)

    async def _connected(self) -> Wire:
        """The open wire, connected (with AUTH and SELECT) by the first caller who needs it."""
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self) -> Wire:
        assert self._address is not None
        loop = asyncio.get_running_loop()
        wire = Wire(self._timeout, self._encoding)
        host, port = self._address
        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(lambda: wire, host, port)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"Error connecting to Redis at {host}:{port}: {exc!r}") from exc
        if self._setup:
            futures = [loop.create_future() for _ in self._setup]
            wire.write(b"".join(self._setup), futures)
            try:
                for future in futures:
                    await future  # a refused AUTH or SELECT raises here
            except BaseException:
                wire.close()
                raise
        self._wire = wire
        return wire

    async def _send_pipeline(self, batch: list[_Queued]) -> None:
        """redis-py's pipeline, for clients the wire does not reach (TLS, Unix socket)."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for fill, _ in batch:
                    fill(pipe)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            _fail_all((future for _, future in batch), exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


def tick_pipeline(redis: Redis) -> TickPipeline:
    """The one `TickPipeline` of this Redis client (callers on the same client share its batches)."""
    found = _BY_CLIENT.get(redis)
    if found is None:
        found = _BY_CLIENT[redis] = TickPipeline(redis)
    return found


async def run_script(script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
    """`script(keys=keys, args=args)` (a script registered on a client) by EVALSHA in the turn's shared
    write on the lean connection; when Redis lacks the script, by EVAL (which caches it) on the same
    connection, so that scripts issued in order still reach Redis in order (a stream's entries)."""
    tick = tick_pipeline(script.registered_client)  # type: ignore[arg-type]
    try:
        return await tick.call(lambda pipe: pipe.evalsha(script.sha, len(keys), *keys, *args))
    except NoScriptError:
        return await tick.call(lambda pipe: pipe.eval(script.script, len(keys), *keys, *args))
