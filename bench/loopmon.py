"""Run the API with an event-loop monitor: which callbacks make the long loop iterations.

    uv run python bench/loopmon.py --port 8111 [--threshold-ms 20] [--report /tmp/loopmon.txt]

A diagnostic, not a benchmark: the API is served as `chatty api` serves it, but on the standard
asyncio loop (uvloop's callbacks cannot be timed from Python), so everything costs somewhat more.
Each callback the loop runs (a task step, a transport's read, a timer) is timed in CPU seconds of
the loop's thread (robust to a busy machine) and in wall seconds; garbage-collector passes are
timed too. An iteration whose callbacks took more than `--threshold-ms` of CPU is recorded with
its costliest callbacks. On SIGINT/SIGTERM (or every `--every` seconds, or on SIGUSR2) the report
is written: the distribution of iteration CPU, and what ran in the long ones, summed by callback
name. SIGUSR1 forgets what was recorded so far (send it when the measured load starts).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import signal
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from frame_timing import FrameTiming


def _name(handle: asyncio.Handle) -> str:
    callback = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', type(coro).__name__)}"
    inner = getattr(callback, "func", callback)  # functools.partial
    return getattr(inner, "__qualname__", repr(inner))[:120]


class Monitor:
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.reset()
        self._calls: list[tuple[float, str]] = []
        self._gc = 0.0
        self._gc_started = 0.0
        self._main = threading.get_ident()

    def reset(self) -> None:
        """Forget the iterations recorded so far."""
        self.iterations: list[float] = []  # CPU per busy iteration
        self.long: list[tuple[float, float, list[tuple[float, str]], float]] = []  # cpu, wall, top callbacks, gc
        self.by_name_long: collections.Counter[str] = collections.Counter()
        self.by_name_all: collections.Counter[str] = collections.Counter()

    def install(self) -> None:
        monitor = self
        original_run = asyncio.events.Handle._run

        def timed_run(handle: asyncio.Handle) -> None:
            cpu = time.thread_time()
            try:
                original_run(handle)
            finally:
                spent = time.thread_time() - cpu
                if spent > 0.0005:
                    monitor._calls.append((spent, _name(handle)))

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        original_once = asyncio.base_events.BaseEventLoop._run_once

        def timed_once(loop: Any) -> None:
            monitor._calls = []
            monitor._gc = 0.0
            selector = loop._selector
            select = selector.select
            waited = 0.0

            def timed_select(timeout: Any = None) -> Any:
                nonlocal waited
                t = time.perf_counter()
                try:
                    return select(timeout)
                finally:
                    waited += time.perf_counter() - t

            selector.select = timed_select
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                original_once(loop)
            finally:
                selector.select = select
                spent, busy = time.thread_time() - cpu, time.perf_counter() - wall - waited
                monitor.record(spent, busy)

        asyncio.base_events.BaseEventLoop._run_once = timed_once  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if threading.get_ident() != self._main:
            return
        if phase == "start":
            self._gc_started = time.thread_time()
        else:
            self._gc += time.thread_time() - self._gc_started

    def record(self, cpu: float, wall: float) -> None:
        if cpu < 0.0002:
            return
        self.iterations.append(cpu)
        for spent, name in self._calls:
            self.by_name_all[name] += spent
        if cpu >= self.threshold:
            top = sorted(self._calls, reverse=True)[:6]
            self.long.append((cpu, wall, top, self._gc))
            for spent, name in self._calls:
                self.by_name_long[name] += spent
            if self._gc:
                self.by_name_long["(gc)"] += self._gc

    def report(self) -> str:
        its = sorted(self.iterations)
        if not its:
            return "no busy iterations\n"

        def q(p: float) -> float:
            return its[min(len(its) - 1, int(p * len(its)))] * 1000

        total = sum(its)
        lines = [f"busy iterations {len(its)}, CPU {total:.2f} s; per iteration ms: p50 {q(.5):.2f} p99 {q(.99):.2f} "
                 f"p99.9 {q(.999):.2f} max {its[-1] * 1000:.1f}",
                 f"iterations over {self.threshold * 1000:.0f} ms CPU: {len(self.long)} "
                 f"({sum(c for c, *_ in self.long):.2f} s)",
                 "", "CPU in the long iterations by callback (s):"]
        lines += [f"  {s:8.3f}  {n}" for n, s in self.by_name_long.most_common(25)]
        lines += ["", "CPU in all iterations by callback (s, callbacks over 0.5 ms):"]
        lines += [f"  {s:8.3f}  {n}" for n, s in self.by_name_all.most_common(25)]
        lines += ["", "the 25 longest iterations (cpu ms, wall ms, gc ms: top callbacks):"]
        for cpu, wall, top, gc_s in sorted(self.long, key=lambda item: item[0], reverse=True)[:25]:
            calls = "; ".join(f"{s * 1000:.1f} {n}" for s, n in top)
            lines.append(f"  {cpu * 1000:6.1f} {wall * 1000:6.1f} {gc_s * 1000:5.1f}: {calls}")
        return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threshold-ms", type=float, default=20.0)
    p.add_argument("--report", default="/tmp/loopmon.txt")
    p.add_argument("--every", type=float, default=0.0, help="also write the report every N seconds")
    p.add_argument("--frame-timing", action="store_true",
                   help="also time each bench frame's read and refusal after its client send (frame_timing.py)")
    args = p.parse_args()
    monitor = Monitor(args.threshold_ms / 1000)
    monitor.install()
    frames = FrameTiming()
    if args.frame_timing:
        frames.install()

    def write(*_: Any) -> None:
        with open(args.report, "w") as f:
            f.write((frames.report() if args.frame_timing else "") + monitor.report())

    def forget(*_: Any) -> None:
        monitor.reset()
        frames.reset()

    signal.signal(signal.SIGUSR1, forget)
    signal.signal(signal.SIGUSR2, write)
    if args.every:
        def periodic() -> None:
            while True:
                time.sleep(args.every)
                write()
        threading.Thread(target=periodic, daemon=True).start()
    import uvicorn

    from src.cli import _ws_protocol, raise_open_files_limit
    from src.infra.config import get_settings

    raise_open_files_limit()
    settings = get_settings()
    config = uvicorn.Config("src.app:create_asgi_app", factory=True, host="127.0.0.1", port=args.port,
                            loop="asyncio", http="httptools", access_log=False, lifespan="on",
                            ws=_ws_protocol(settings.socket_ws), ws_per_message_deflate=False, ws_ping_interval=None,
                            log_level="warning")
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        write()
        signal.signal(signal.SIGINT, signal.SIG_DFL)


if __name__ == "__main__":
    main()
