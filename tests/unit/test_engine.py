"""The lighter Engine.IO websocket transport (src/socket/engine.py) against a real uvicorn server:
heartbeats keep a live client, a silent peer is closed, a server disconnect closes the websocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import pytest
import socketio
import uvicorn
import websockets

from src.socket import engine
from src.socket.ws_protocol import LightWebSocketProtocol

PING_INTERVAL, PING_TIMEOUT = 1, 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server() -> AsyncIterator[tuple[socketio.AsyncServer, str]]:
    engine.install()
    sio = socketio.AsyncServer(async_mode="asgi", ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT,
                               transports=["websocket"], logger=False, engineio_logger=False)

    @sio.on("echo")
    async def echo(sid: str, data: object) -> object:
        return data

    port = _free_port()
    config = uvicorn.Config(socketio.ASGIApp(sio), host="127.0.0.1", port=port, ws=LightWebSocketProtocol,
                            ws_per_message_deflate=False, ws_ping_interval=None, log_level="warning",
                            lifespan="off")
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    for _ in range(500):
        if uv.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield sio, f"127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 10)


async def test_heartbeats_keep_a_live_client_and_events_flow(server: tuple[socketio.AsyncServer, str]) -> None:
    sio, address = server
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(f"http://{address}", transports=["websocket"])
    try:
        # several ping cycles: a client answering pings is never timed out
        await asyncio.sleep(3 * (PING_INTERVAL + PING_TIMEOUT) + engine.SWEEP_SECONDS)
        assert client.connected
        assert await client.call("echo", {"n": 1}, timeout=5) == {"n": 1}
        assert len(sio.eio.sockets) == 1
        (sid,) = [s for s, _ in sio.manager.get_participants("/", None)]
        environ = sio.get_environ(sid)  # cut to a few keys once the websocket is open
        assert environ is not None and set(environ) <= set(engine.KEPT_ENVIRON)
        assert environ["REMOTE_ADDR"] == "127.0.0.1" and "HTTP_USER_AGENT" in environ
    finally:
        await client.disconnect()


async def test_a_peer_that_stops_answering_pings_is_closed(server: tuple[socketio.AsyncServer, str]) -> None:
    sio, address = server
    async with websockets.connect(f"ws://{address}/socket.io/?EIO=4&transport=websocket") as ws:
        opened = await ws.recv()
        assert isinstance(opened, str) and opened.startswith("0")
        assert json.loads(opened[1:])["pingInterval"] == PING_INTERVAL * 1000
        await ws.send("40")
        assert str(await ws.recv()).startswith("40")
        received: list[str] = []
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(PING_INTERVAL + PING_TIMEOUT + engine.SWEEP_SECONDS + 10):
                while True:  # never answers the pings
                    received.append(str(await ws.recv()))
        assert received[0] == "2"  # a ping, on time
        assert received[-1] == "1"  # Engine.IO's CLOSE, then the server closed the websocket
        assert ws.close_code is not None
    for _ in range(100):  # the server forgets the socket
        if not sio.eio.sockets:
            break
        await asyncio.sleep(0.05)
    assert not sio.eio.sockets


async def test_a_server_disconnect_closes_the_websocket(server: tuple[socketio.AsyncServer, str]) -> None:
    sio, address = server
    client = socketio.AsyncClient(reconnection=False)
    gone = asyncio.Event()
    client.on("disconnect", lambda *_: gone.set())
    await client.connect(f"http://{address}", transports=["websocket"])
    (sid,) = [s for s, _ in sio.manager.get_participants("/", None)]
    await sio.disconnect(sid)
    await asyncio.wait_for(gone.wait(), 10)
    for _ in range(100):
        if not sio.eio.sockets:
            break
        await asyncio.sleep(0.05)
    assert not sio.eio.sockets


async def test_an_upgrade_is_refused_with_503_and_retry_after_while_overloaded(
        server: tuple[socketio.AsyncServer, str]) -> None:
    from src.socket import ws_protocol

    _, address = server
    url = f"ws://{address}/socket.io/?EIO=4&transport=websocket"
    ws_protocol.set_upgrade_refusal(lambda: 3)
    try:
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(url):
                pass
        response = refused.value.response
        assert response.status_code == 503 and response.headers["Retry-After"] == "3"
        ws_protocol.set_upgrade_refusal(lambda: None)  # taking work again: connects as usual
        async with websockets.connect(url) as ws:
            assert str(await ws.recv()).startswith("0")
    finally:
        ws_protocol.set_upgrade_refusal(None)
