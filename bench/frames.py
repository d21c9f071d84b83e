"""CPU per delivered frame of one emit to many sockets: python-socketio's path, Chatty's shared frame, the floor.

    uv run python bench/frames.py [--sockets 1000] [--emits 100] [--redis redis://127.0.0.1:6379/0]

For each mode, a bare Socket.IO server (uvicorn with `chatty api`'s flags, no auth, no
database) is started in its own process; `--sockets` raw clients in this process connect and
join one room; the server emits `--emits` messages (a group-message-sized payload) to the room
and the CPU the server process used until every socket received every frame is divided by the
frames delivered. Modes:

- `library`: python-socketio's `AsyncRedisManager` (a task, a queue put and a writer-task wake-up
  per socket; uvicorn builds each frame),
- `direct`: Chatty's `DirectSendRedisManager` (src/socket/direct_send.py: the frame built once,
  written to each idle socket's transport),
- `floor`: the same prebuilt frame written to every transport in a bare loop: what one `send()`
  system call per socket costs, below which no per-socket delivery goes.

Both managers publish each emit to Redis (`--redis`, a channel of its own). Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import sys
import time
import uuid
from typing import Any

import aiohttp
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import free_port
from loadgen import raise_fd_limit
from sockets import RawSocket

BODY = {"id": str(uuid.uuid4()), "conversation_id": str(uuid.uuid4()), "seq": 1, "sender_id": str(uuid.uuid4()),
        "client_msg_id": "c" * 32, "body": "bench message " * 4, "media": [], "reply_to": None, "reactions": {},
        "my_reactions": [], "created_at": "2026-11-29T03:00:00Z", "edited_at": None, "deleted": False}


def serve(mode: str, port: int, redis_url: str) -> None:
    """The server process: a room `all`; event `blast {n}` emits n messages to it."""
    import socketio
    import uvicorn

    from src.socket.direct_send import DirectSendRedisManager, text_frame

    channel = f"frames-{uuid.uuid4().hex}"
    manager = (socketio.AsyncRedisManager(redis_url, channel=channel) if mode == "library"
               else DirectSendRedisManager(redis_url, channel=channel))
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, ping_interval=25, ping_timeout=20)

    @sio.on("connect")
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await sio.enter_room(sid, "all")

    @sio.on("blast")
    async def blast(sid: str, n: int) -> dict[str, Any]:
        for i in range(int(n)):
            if mode == "floor":
                assert isinstance(manager, DirectSendRedisManager)
                frame = text_frame(("42" + manager.json.dumps(["m", {**BODY, "seq": i}], separators=(",", ":"))
                                    ).encode())
                for connection in manager.connections.values():
                    connection.transport.write(frame)
            else:
                await sio.emit("m", {**BODY, "seq": i}, room="all")
        return {"ok": True}

    app = socketio.ASGIApp(sio, socketio_path="socket.io")
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
                ws_per_message_deflate=False, log_level="warning")


async def measure(url: str, pid: int, sockets: int, emits: int) -> tuple[float, int]:
    """(server CPU seconds, frames received) for `emits` emits to `sockets` sockets."""
    received = 0
    done = asyncio.Event()
    expected = sockets * emits

    def on_m(_: Any) -> None:
        nonlocal received
        received += 1
        if received >= expected:
            done.set()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        clients = [RawSocket(session, url, {}, deflate=False) for _ in range(sockets)]
        gate = asyncio.Semaphore(50)

        async def connect(c: RawSocket) -> None:
            c.on("m", on_m)
            async with gate:
                await c.connect()

        await asyncio.gather(*(connect(c) for c in clients))
        await asyncio.sleep(1)
        proc = psutil.Process(pid)
        before = proc.cpu_times()
        await clients[0].call("blast", emits, wait=300)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 300)
        after = proc.cpu_times()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return (after.user + after.system) - (before.user + before.system), received


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=1000)
    p.add_argument("--emits", type=int, default=100)
    p.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--modes", default="library,direct,floor")
    args = p.parse_args()
    raise_fd_limit()
    sockets, emits = min(max(1, args.sockets), 5000), min(max(1, args.emits), 1000)
    ctx = mp.get_context("spawn")
    for mode in args.modes.split(","):
        port = free_port()
        server = ctx.Process(target=serve, args=(mode, port, args.redis), daemon=True)
        server.start()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                import urllib.request
                urllib.request.urlopen(f"{url}/socket.io/?EIO=4&transport=polling", timeout=2).read()
                break
            except Exception:
                time.sleep(0.5)
        try:
            assert server.pid is not None
            cpu, frames = asyncio.run(measure(url, server.pid, sockets, emits))
        finally:
            server.terminate()
            server.join(10)
        print(f"{mode:8s} {frames}/{sockets * emits} frames; server CPU {cpu:.2f} s: "
              f"{cpu / max(1, frames) * 1e6:.1f} µs per frame", flush=True)


if __name__ == "__main__":
    main()
