"""Worker loops: short rounds a worker process runs back to back on its event loop, for work
that arrives continuously and is cheaper taken in batches than as one broker message each (due
notification windows). A module declares them (`Module.loops`); every worker process that serves
the loop's queue runs them from boot to shutdown. A round returns how long to sleep before the
next; a failed round is logged and retried a second later. Rounds must be safe to run in several
processes at once (claim what they take, with a lease).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import structlog
from dramatiq.asyncio import get_event_loop_thread

log = structlog.get_logger("chatty.loops")
RETRY_AFTER_ERROR = 1.0


@dataclass(frozen=True)
class WorkerLoop:
    """`round(ctx)` → seconds to sleep before the next round; run by workers serving `queue`."""

    name: str
    queue: str
    round: Callable[[Any], Awaitable[float]]


async def run_loop(loop: WorkerLoop, context: Callable[[], Any]) -> None:
    """Run `loop`'s rounds until cancelled."""
    ctx = context()
    while True:
        try:
            pause = await loop.round(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("worker_loop.round_failed", loop=loop.name, error=repr(exc))
            pause = RETRY_AFTER_ERROR
        await asyncio.sleep(pause)


class LoopsMiddleware(dramatiq.Middleware):
    """Starts the worker loops on the AsyncIO middleware's event loop after boot, stops them
    before shutdown (add it before `AsyncIO`, so that it stops them while the loop still runs)."""

    def __init__(self, loops: list[WorkerLoop], context: Callable[[], Any]) -> None:
        self._loops, self._context = loops, context
        self._running: list[concurrent.futures.Future[None]] = []

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        thread = get_event_loop_thread()
        if thread is None:
            raise RuntimeError("worker loops need the AsyncIO middleware")
        served = getattr(worker, "consumer_whitelist", None)  # None: every queue
        for loop in self._loops:
            if not served or loop.queue in served:
                self._running.append(asyncio.run_coroutine_threadsafe(run_loop(loop, self._context), thread.loop))

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        for future in self._running:
            future.cancel()
        for future in self._running:
            try:
                future.result(timeout=5)
            except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
                pass
            except Exception as exc:
                log.warning("worker_loop.stop_failed", error=repr(exc))
        self._running = []
