"""Admission control: refuse at once the work a process cannot take fast, instead of queueing it.

Every client event and HTTP request (health, metrics and the schema aside) enters through one
`Admission` per process. New work is refused (`overloaded`, retry after `retry_after` seconds) when:

- `max_in_flight` pieces of work are already running (a hard bound on what waits for the database
  pool, Redis and the event loop), or
- `STALE_QUORUM` of the in-flight pieces have been running longer than `max_age`: work is queueing
  (for a pooled connection, for the loop). A few slow pieces alone (an upload, a cascade) are not
  overload, so one is not enough; or
- the event loop runs late by more than `max_loop_lag`: the process is short of CPU and everything
  it already holds, sockets included, is waiting.

A refusal costs microseconds; the client retries later or elsewhere, and what was accepted keeps
its latency.

A client event is decided when its websocket frame is read (`reserve`, early_refusal.py): admitted
there, it holds a reserved ticket from that moment (its queueing before the handler counts in its
age) and its handler's `enter` claims one instead of deciding again. So an event is refused at
receipt or not at all, never a loop turn or two later behind the backlog (refusal latency, issue
8.3). A reservation no handler claims (its socket closed first) lapses after RESERVATION_TTL.

A database pool checkout that times out (`db_pool_timeout`) is reported the same way (see
`is_overload`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc

from src.common.auth import Principal
from src.common.errors import Overloaded
from src.infra import metrics
from src.infra.config import Settings
from src.infra.modules import SocketHandler

P = ParamSpec("P")
T = TypeVar("T")
STALE_QUORUM = 4
LAG_SAMPLE_SECONDS = 0.05
RESERVATION_TTL = 1.0  # seconds a ticket reserved at frame receipt waits for its handler at most


class Admission:
    """Counts in-flight work of this process and decides, in O(1), whether to take more."""

    def __init__(self, *, max_in_flight: int, max_age: float, max_loop_lag: float, retry_after: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.max_in_flight, self.max_age, self.max_loop_lag = max_in_flight, max_age, max_loop_lag
        self.retry_after = max(1, retry_after)
        self._started: dict[int, float] = {}  # ticket → start (monotonic), oldest first
        self._tickets = itertools.count()
        self._reserved: collections.deque[int] = collections.deque()  # reserved tickets, oldest first
        self._lag = 0.0
        self._due = 0.0  # when the lag sampler should wake next; 0: not sampling
        self._sampler: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission:
        """The admission control of an API process, as configured."""
        return cls(max_in_flight=settings.admission_max_in_flight, max_age=settings.admission_max_age,
                   max_loop_lag=settings.admission_max_loop_lag, retry_after=settings.admission_retry_after)

    @property
    def in_flight(self) -> int:
        """Pieces of work admitted and not finished."""
        return len(self._started)

    def loop_lag(self, now: float | None = None) -> float:
        """How late the event loop runs (s): the last sample, or more if the sampler is overdue now."""
        now = self._clock() if now is None else now
        return max(self._lag, now - self._due) if self._due else self._lag

    @property
    def reserved(self) -> int:
        """Tickets reserved at frame receipt and not yet claimed (nor lapsed)."""
        return len(self._reserved)

    def refusal(self) -> str | None:
        """Why new work must be refused now (`in_flight`, `queueing`, `loop_lag`), or None."""
        now = self._clock()
        if self._reserved:
            self._lapse(now)
        if len(self._started) >= self.max_in_flight:
            return "in_flight"
        if self.loop_lag(now) > self.max_loop_lag:
            return "loop_lag"
        for stale, started in enumerate(self._started.values(), 1):  # oldest first: stops at a young one
            if now - started <= self.max_age:
                break
            if stale >= STALE_QUORUM:
                return "queueing"
        return None

    def reserve(self) -> str | None:
        """Admit a client event as its frame is read: None (a ticket is reserved for its handler's
        `enter`), or why it is refused."""
        if (reason := self.refusal()) is not None:
            return reason
        ticket = next(self._tickets)
        self._started[ticket] = self._clock()
        self._reserved.append(ticket)
        return None

    def enter(self, kind: str) -> int | None:
        """Admit one piece of work of `kind` (socket, http): its ticket, or None when refused. A socket
        event admitted at frame receipt claims the oldest reserved ticket instead."""
        while kind == "socket" and self._reserved:
            ticket = self._reserved.popleft()
            if ticket in self._started:
                return ticket
        if (reason := self.refusal()) is not None:
            metrics.ADMISSION_REFUSED.labels(kind, reason).inc()
            return None
        ticket = next(self._tickets)
        self._started[ticket] = self._clock()
        return ticket

    def _lapse(self, now: float) -> None:
        """Forget reservations older than RESERVATION_TTL (their events never reached a handler)."""
        reserved, started = self._reserved, self._started
        while reserved and now - started.get(reserved[0], now - RESERVATION_TTL - 1) > RESERVATION_TTL:
            started.pop(reserved.popleft(), None)

    def leave(self, ticket: int) -> None:
        """The work of `ticket` is finished."""
        self._started.pop(ticket, None)

    def guard(self, on_event: Callable[P, Awaitable[T]], refused: Callable[[int], T]) -> Callable[P, Awaitable[T]]:
        """`on_event` (a socket event's whole handling) run as admitted work; when refused, `refused(retry_after)`
        is its answer at once."""
        @functools.wraps(on_event)
        async def admitted(*args: P.args, **kwargs: P.kwargs) -> T:
            ticket = self.enter("socket")
            if ticket is None:
                return refused(self.retry_after)
            try:
                return await on_event(*args, **kwargs)
            finally:
                self.leave(ticket)

        return admitted

    @staticmethod
    def overload_as_error(handler: SocketHandler) -> SocketHandler:
        """`handler`, with an exhausted database pool raised as `Overloaded` (acked `overloaded`)."""
        @functools.wraps(handler)
        async def mapped(principal: Principal, sid: str, data: Any) -> Any:
            try:
                return await handler(principal, sid, data)
            except sa_exc.TimeoutError:
                metrics.ADMISSION_REFUSED.labels("socket", "pool_timeout").inc()
                raise Overloaded() from None

        return mapped

    def start(self) -> None:
        """Start sampling the event loop's lag (call from the running loop)."""
        if self._sampler is None:
            self._sampler = asyncio.create_task(self._sample_lag(), name="admission-loop-lag")

    async def stop(self) -> None:
        """Stop sampling."""
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler, self._due = None, 0.0

    async def _sample_lag(self) -> None:
        while True:
            self._due = self._clock() + LAG_SAMPLE_SECONDS
            await asyncio.sleep(LAG_SAMPLE_SECONDS)
            self._lag = max(0.0, self._clock() - self._due)
            metrics.LOOP_LAG.observe(self._lag)


def is_overload(exc: BaseException) -> bool:
    """True for a failure that means "too busy", not "broken": no pooled database connection
    came free within `db_pool_timeout`."""
    return isinstance(exc, sa_exc.TimeoutError)
