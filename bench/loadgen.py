"""One load-generator process of bench/messaging.py: connects its sockets, sends, records.

Both sockets of a pair live in the same process, so a process knows what its receivers should
get. A message's body carries its send time (`bench t=<unix time> k=<n>`); the receiver
measures send→receive latency against the same machine clock.
"""

from __future__ import annotations

import asyncio
import resource
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sockets import CLIENTS, ConnectRefused


@dataclass
class Job:
    """What one process does. `peers[i]` = (auth, user key) of socket i; pairs are (2k, 2k+1)."""

    index: int
    base_url: str
    client: str
    peers: list[tuple[dict[str, Any], str]]
    conversations: list[str]  # one per pair
    rate: float  # messages per second sent by this process
    duration: float
    drain: float = 10.0
    warmup: bool = True
    deflate: bool = True
    connect_concurrency: int = 50


@dataclass
class Result:
    index: int
    connected: int = 0
    connect_failures: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    acked: int = 0
    ack_errors: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    echoes: int = 0
    unexpected: int = 0
    disconnected: int = 0
    latencies: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # send time of each latency sample
    ack_latencies: list[float] = field(default_factory=list)
    warmup_failures: dict[str, int] = field(default_factory=dict)
    send_lag: float = 0.0  # how far the send schedule fell behind (s), worst case
    cpu_cores: float = 0.0  # this process's CPU while sending (or holding), in cores


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _count(kinds: dict[str, int], kind: str) -> None:
    kinds[kind] = kinds.get(kind, 0) + 1


class Generator:
    def __init__(self, job: Job) -> None:
        self.job = job
        self.result = Result(job.index)
        self.sockets: list[Any] = []
        self.expected: dict[str, int] = {}  # message id → receiving socket index
        self.received: list[set[str]] = [set() for _ in job.peers]

    def _on_message(self, index: int, own_key: str):  # type: ignore[no-untyped-def]
        def handle(payload: Any) -> None:
            now = time.time()
            message = payload.get("message", payload) if isinstance(payload, dict) else None
            if isinstance(message, dict) and message.get("body") == "warm-up":
                return
            if not isinstance(message, dict) or not str(message.get("body", "")).startswith("bench t="):
                self.result.unexpected += 1
                return
            if str(message.get("sender_id")) == own_key:
                self.result.echoes += 1
                return
            seen = self.received[index]
            if message["id"] in seen:
                self.result.duplicates += 1
                return
            seen.add(message["id"])
            sent = float(message["body"].split()[1][2:])
            self.result.latencies.append(now - sent)
            self.result.sent_at.append(sent)
        return handle

    async def connect_all(self, session: aiohttp.ClientSession) -> None:
        cls = CLIENTS[self.job.client]
        gate = asyncio.Semaphore(self.job.connect_concurrency)

        async def connect(index: int, auth: dict[str, Any], key: str) -> Any:
            sock = cls(session, self.job.base_url, auth, deflate=self.job.deflate)
            sock.on("message:new", self._on_message(index, key))
            async with gate:
                for attempt in range(3):
                    try:
                        await sock.connect()
                        self.result.connected += 1
                        return sock
                    except ConnectRefused as exc:
                        _count(self.result.connect_failures, f"refused:{exc}")
                        return sock
                    except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as exc:
                        if attempt == 2:
                            _count(self.result.connect_failures, type(exc).__name__)
                        await asyncio.sleep(0.5)
            return sock

        self.sockets = list(await asyncio.gather(*(connect(i, auth, key)
                                                   for i, (auth, key) in enumerate(self.job.peers))))

    async def _send_one(self, k: int, pair: int, sender: int) -> str | None:
        """Send one message and count its ack; None when acked ok, else the error code (or exception name)."""
        sock = self.sockets[sender]
        receiver = sender ^ 1
        started = time.time()
        data = {"conversation_id": self.job.conversations[pair], "client_msg_id": uuid.uuid4().hex,
                "body": f"bench t={started:.6f} k={k}"}
        self.result.sent += 1
        try:
            ack = await sock.call("message:send", data, wait=10)
        except Exception as exc:  # timeouts, disconnects: counted, never fatal
            _count(self.result.ack_errors, type(exc).__name__)
            return type(exc).__name__
        if isinstance(ack, dict) and ack.get("ok"):
            self.result.acked += 1
            self.result.ack_latencies.append(time.time() - started)
            self.expected[str(ack["data"]["id"])] = receiver
            return None
        code = str(ack.get("error", {}).get("code") if isinstance(ack, dict) else repr(ack))
        _count(self.result.ack_errors, code)
        return code

    async def warm_up(self) -> None:
        """One message each way per pair, a few at a time, not counted (fills per-user caches)."""
        gate = asyncio.Semaphore(8)

        async def one(pair: int, sender: int) -> None:
            sock = self.sockets[sender]
            if not sock.connected:
                return
            data = {"conversation_id": self.job.conversations[pair], "client_msg_id": uuid.uuid4().hex,
                    "body": "warm-up"}
            async with gate:
                try:
                    ack = await sock.call("message:send", data, wait=30)
                    if not (isinstance(ack, dict) and ack.get("ok")):
                        _count(self.result.warmup_failures, str(ack)[:80])
                except Exception as exc:
                    _count(self.result.warmup_failures, type(exc).__name__)

        await asyncio.gather(*(one(p, 2 * p + d) for p in range(len(self.job.conversations)) for d in (0, 1)))

    async def send_all(self, start_at: float) -> None:
        pairs = len(self.job.conversations)
        live = [p for p in range(pairs) if self.sockets[2 * p].connected and self.sockets[2 * p + 1].connected]
        if not live or self.job.rate <= 0:
            await asyncio.sleep(max(0.0, start_at + self.job.duration - time.time()))
            return
        interval = 1.0 / self.job.rate
        total = int(self.job.rate * self.job.duration)
        tasks: set[asyncio.Task[None]] = set()
        for k in range(total):
            due = start_at + k * interval
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.result.send_lag = max(self.result.send_lag, -delay)
            pair = live[k % len(live)]
            sender = 2 * pair + (k // len(live)) % 2
            task = asyncio.create_task(self._send_one(k, pair, sender))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=15)

    async def drain(self) -> None:
        deadline = time.monotonic() + self.job.drain
        while time.monotonic() < deadline and self._missing():  # noqa: ASYNC110 (a count, not an event)
            await asyncio.sleep(0.1)
        missing = self._missing()
        self.result.delivered = len(self.expected) - missing
        self.result.lost = missing
        self.result.disconnected = sum(1 for s in self.sockets if not s.connected)

    def _missing(self) -> int:
        return sum(1 for mid, idx in self.expected.items() if mid not in self.received[idx])

    async def close_all(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sockets), return_exceptions=True)


async def _wait(event: Any) -> None:
    while not event.is_set():  # noqa: ASYNC110 (a multiprocessing.Event)
        await asyncio.sleep(0.05)


async def _run(job: Job, ready: Any, go: Any, start_at: Any, hold: float) -> Result:
    """Connect, report; on `go[0]` warm up and report; on `go[1]` send (or hold) until done."""
    gen = Generator(job)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        await gen.connect_all(session)
        ready.put(("connected", job.index))
        await _wait(go[0])
        if job.warmup and hold <= 0:
            await gen.warm_up()
        ready.put(("warm", job.index))
        await _wait(go[1])
        cpu0, wall0 = time.process_time(), time.monotonic()
        if hold > 0:  # idle mode: keep the sockets open, send nothing
            await asyncio.sleep(max(0.0, start_at.value + hold - time.time()))
            gen.result.disconnected = sum(1 for s in gen.sockets if not s.connected)
        else:
            await gen.send_all(start_at.value)
            await gen.drain()
        gen.result.cpu_cores = (time.process_time() - cpu0) / max(1e-9, time.monotonic() - wall0)
        await gen.close_all()
    return gen.result


def run_process(job: Job, ready: Any, go: Any, start_at: Any, results: Any, hold: float = 0.0) -> None:
    """Entry point of a load-generator process; puts its Result on `results`."""
    raise_fd_limit()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    results.put(runner(_run(job, ready, go, start_at, hold)))
