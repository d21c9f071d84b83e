"""New sockets wait their turn behind message work (issue 10: presence work never delays messages).

Opening a socket (the Engine.IO handshake, the 101 response, the Socket.IO connect: token, rooms,
lifecycle hooks) costs the event loop about a millisecond of CPU; two hundred of them a second,
arriving in bursts, run in the same loop turns as the frames of messages being sent and delay them.
Here each new websocket first asks `turn()`: while the loop is on time at most `per_tick` new
sockets start per tick of TICK_SECONDS (a burst is spread over ticks, message frames run in
between); while the loop runs late (it is short of CPU), one per tick, so connection work takes a
bounded share of the loop and what is queued waits; a socket never waits longer than `max_wait`.
Nothing is refused here (that is `ADMISSION_REFUSE_CONNECTS`' job, for real overload); connects
are only delayed, in arrival order.
"""

from __future__ import annotations

import asyncio
import collections
import time

TICK_SECONDS = 0.005
LATE_SECONDS = 0.01  # a tick later than this: the loop is short of CPU


class ConnectGate:
    """Paces the start of new sockets' handshakes (see the module doc)."""

    def __init__(self, *, per_tick: int = 4, max_wait: float = 1.0) -> None:
        self.per_tick, self.max_wait = max(1, per_tick), max_wait
        self._waiting: collections.deque[tuple[asyncio.Future[None], float]] = collections.deque()
        self._started_this_tick = 0
        self._tick_ends = 0.0
        self._pacer: asyncio.Task[None] | None = None
        self.waited = 0  # sockets that had to wait (for tests and the bench)

    async def turn(self) -> None:
        """Return when this new socket may start its handshake."""
        now = time.monotonic()
        if not self._waiting and (now >= self._tick_ends or self._started_this_tick < self.per_tick):
            if now >= self._tick_ends:
                self._tick_ends, self._started_this_tick = now + TICK_SECONDS, 0
            self._started_this_tick += 1
            return
        self.waited += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((future, now + self.max_wait))
        if self._pacer is None:
            self._pacer = asyncio.create_task(self._pace(), name="socket-connect-gate")
        await future

    async def _pace(self) -> None:
        try:
            while self._waiting:
                asked = time.monotonic()
                await asyncio.sleep(TICK_SECONDS)
                now = time.monotonic()
                late = now - asked - TICK_SECONDS > LATE_SECONDS
                allowed = 1 if late else self.per_tick
                self._tick_ends, self._started_this_tick = now + TICK_SECONDS, 0
                while self._waiting and (allowed > 0 or self._waiting[0][1] <= now):
                    future, _ = self._waiting.popleft()
                    if not future.done():
                        future.set_result(None)
                        allowed -= 1
                        self._started_this_tick += 1
        finally:
            self._pacer = None
