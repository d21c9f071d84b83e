"""How late a bench's own event loop runs: a load generator whose loop is late inflates the
latency it measures (a message read late is timed late), so benches print this beside their p99.

    monitor = LoopLateness().start()   # in the loop to watch
    ...
    print(monitor.stop())              # {"p50": ms, "p99": ms, "max": ms}
"""

from __future__ import annotations

import asyncio
import time

from benchlib import summary_ms

PERIOD = 0.01  # seconds between probes


class LoopLateness:
    """A task that sleeps PERIOD seconds over and over and records how much later than asked it woke."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> LoopLateness:
        self._task = asyncio.create_task(self._probe(), name="loop-lateness")
        return self

    async def _probe(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(PERIOD)
            self.samples.append(max(0.0, time.monotonic() - asked - PERIOD))

    def stop(self) -> dict[str, float]:
        """Stop probing: lateness p50/p95/p99/max in ms."""
        if self._task is not None:
            self._task.cancel()
        return summary_ms(self.samples)
