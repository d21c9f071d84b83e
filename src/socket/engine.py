"""A lighter Engine.IO websocket transport for many idle sockets (issue 8, target 6).

Stock python-engineio 4.x on Python 3.11 keeps four asyncio tasks per websocket (the ASGI
handler; a reader `wait_for` task created anew for every frame; the writer task and the inner
task its own `wait_for(queue.get())` creates), a timer handle per `wait_for`, and a service task
that wakes once per socket per `ping_timeout` (750 wake-ups a second, each a task and a timer,
at 15,000 sockets). Here, for a socket opened directly over websocket:

- the reader awaits the next frame in the ASGI handler itself, the writer is one task parked on
  the Engine.IO queue: two tasks, no timers. A dead peer is still found: the heartbeat sweep
  closes a socket whose pong is late, which sends Engine.IO's CLOSE packet; the writer then
  closes the websocket, and the reader wakes on the disconnect.
- heartbeats are one timer wheel: each socket's next ping is put in a one-second bucket, one
  loop timer sends the pings due (the 1-byte frame written straight to an idle socket's
  transport, else through its queue), and one sweep every `SWEEP_SECONDS` closes the sockets
  whose pong is later than `ping_timeout`, as engine.io's service task did.

Each socket's send queue is a LightQueue (no deques while idle); the environ python-socketio
keeps per socket is cut to a few keys once the websocket is open. Sockets upgraded from
long-polling keep the library's handler. Packets, their order, ping
interval/timeout and close reasons are the library's.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import engineio.async_drivers.asgi
import engineio.async_server
import engineio.async_socket
from engineio import exceptions, packet

from src.socket import fast_environ
from src.socket.connect_gate import ConnectGate
from src.socket.light_queue import LightQueue

PING_FRAME = b"\x81\x01" + str(packet.PING).encode()  # a final unmasked text frame holding "2"
TICK_SECONDS = 1.0
KEPT_ENVIRON = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR", "REMOTE_PORT", "HTTP_ORIGIN",
                "HTTP_USER_AGENT", "HTTP_X_FORWARDED_FOR", "wsgi.url_scheme", "asgi.scope")
KEPT_HEADERS = (b"origin", b"user-agent", b"x-forwarded-for")  # of the ASGI scope, as the environ's
SWEEP_SECONDS = 2.0
_connect_gate: ConnectGate | None = None


def set_connect_gate(gate: ConnectGate | None) -> None:
    """New websockets wait for `gate` before their handshake (one per process: the API's)."""
    global _connect_gate
    _connect_gate = gate


def install() -> None:
    """Patch python-engineio's asyncio socket and server (idempotent)."""
    sock_cls = engineio.async_socket.AsyncSocket
    if getattr(sock_cls, "_chatty_engine", False):
        return
    sock_cls._chatty_engine = True  # type: ignore[attr-defined]
    library_handler = sock_cls._websocket_handler

    async def websocket_handler(self: Any, ws: Any) -> None:
        if self.connected:  # an upgrade from long-polling: the library's handler
            await library_handler(self, ws)
            return
        await _serve_websocket(self, ws)

    def schedule_ping(self: Any) -> None:
        if self.last_ping:  # only after the previous ping's pong (as engine.io does)
            self.last_ping = None
            _wheel(self.server).add(self)

    sock_cls._websocket_handler = websocket_handler  # type: ignore[method-assign]
    sock_cls.schedule_ping = schedule_ping  # type: ignore[method-assign]
    server_cls = engineio.async_server.AsyncServer
    server_cls._service_task = _sweep  # type: ignore[method-assign]
    server_cls.create_queue = lambda self, *args, **kwargs: LightQueue()  # type: ignore[method-assign]
    engineio.async_drivers.asgi._async["translate_request"] = fast_environ.translate_request  # no class per request
    library_request = server_cls.handle_request

    async def handle_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        gate = _connect_gate
        scope = args[0] if args else None
        if (gate is not None and isinstance(scope, dict) and scope.get("type") == "websocket"
                and b"sid=" not in scope.get("query_string", b"")):  # a new socket, not an upgrade
            await gate.turn()
        return await library_request(self, *args, **kwargs)

    server_cls.handle_request = handle_request  # type: ignore[method-assign]


async def _serve_websocket(sock: Any, ws: Any) -> None:
    """Engine.IO over a websocket opened directly: read in this task, write in one other."""
    sock.connected = True
    sock.upgraded = True
    _slim_environ(sock)
    connection = sock._chatty_connection = getattr(ws.asgi_send, "__self__", None)  # the server's protocol
    if callable(uncork := getattr(connection, "uncork", None)):  # the 101 response is held (ws_protocol.py):
        await _send_queued(sock, ws)  # the OPEN packet queued at the handshake goes with it, one write
        uncork()
    writer = asyncio.ensure_future(_write(sock, ws))
    limit = sock.server.max_http_buffer_size
    fast = getattr(sock.server, "_chatty_fast_event", None)  # hot client events (fast_events.py)
    eio_sid = sock.sid
    try:
        while True:
            try:
                data = await ws.wait()
            except (OSError, asyncio.CancelledError):
                break
            if data is None or len(data) > limit:
                break
            if fast is not None and type(data) is str and data.startswith("42") and fast(eio_sid, data):
                continue
            try:
                await sock.receive(packet.Packet(encoded_packet=data))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                break
            except Exception:
                sock.server.logger.exception("Unknown receive error")
    finally:
        sock._chatty_connection = None
        sock.queue.put_nowait(None)  # unlock the writer so it can exit
        await asyncio.gather(writer, return_exceptions=True)
        await sock.close(wait=False, abort=True, reason=sock.server.reason.TRANSPORT_CLOSE)


def _slim_environ(sock: Any) -> None:
    """Keep a few keys of the WSGI-style environ python-socketio stores per socket (and the request's
    frames hold for the socket's life): every header decoded, the request body reader and the
    ASGI callables (~3.5 KB) are read only while the websocket is opened, before this. The ASGI
    scope's header list (~1.4 KB) is cut to the same headers."""
    handler = sock.server.handlers.get("connect")
    environ = getattr(getattr(handler, "__self__", None), "environ", {}).get(sock.sid)
    if isinstance(environ, dict):
        kept = {key: environ[key] for key in KEPT_ENVIRON if key in environ}
        environ.clear()
        environ.update(kept)
        scope = kept.get("asgi.scope")
        if isinstance(scope, dict) and isinstance(scope.get("headers"), list):  # shared with uvicorn
            scope["headers"] = [(name, value) for name, value in scope["headers"] if name in KEPT_HEADERS]


async def _send_queued(sock: Any, ws: Any) -> None:
    """Send Engine.IO's OPEN packet if it is queued first, before the writer task starts."""
    queue = sock.queue
    first = queue.peek() if isinstance(queue, LightQueue) else None
    if first is not None and first.packet_type == packet.OPEN:
        queue.get_nowait()
        queue.task_done()
        await ws.send(first.encode())


async def _write(sock: Any, ws: Any) -> None:
    """Send what is queued for the socket, in order; after a CLOSE packet, close the websocket."""
    queue = sock.queue
    try:
        while True:
            pkt = await queue.get()
            queue.task_done()
            packets = [pkt]
            while pkt is not None and not queue.empty():
                pkt = queue.get_nowait()
                queue.task_done()
                packets.append(pkt)
            for item in packets:
                if item is None:
                    return
                await ws.send(item.encode())
                if item.packet_type == packet.CLOSE:
                    return
    except Exception:  # the connection is gone: the reader sees it too
        return
    finally:
        await ws.close()


def _send_ping(sock: Any) -> None:
    if sock.closing or sock.closed:
        return
    sock.last_ping = time.time()
    if not _write_frame(sock, PING_FRAME):
        sock.queue.put_nowait(packet.Packet(packet.PING))


def _write_frame(sock: Any, frame: bytes) -> bool:
    """Write `frame` straight to the socket's transport when nothing is queued or being written before
    it and the connection is open and writable (uvicorn's websockets-sansio protocol); else False."""
    connection = getattr(sock, "_chatty_connection", None)
    if connection is None or sock.upgrading or not sock.queue.empty():
        return False
    getters = sock.queue._getters  # the writer parked in get(): nothing taken and not yet written
    if not any(not getter.done() for getter in getters):
        return False
    conn = getattr(connection, "conn", None)
    transport = getattr(connection, "transport", None)
    if (conn is None or transport is None or conn.extensions or connection.close_sent
            or connection.disconnected or not connection.writable.is_set() or transport.is_closing()
            or conn.state.name != "OPEN"):
        return False
    transport.write(frame)
    return True


class PingWheel:
    """Every socket's next ping in a bucket of `TICK_SECONDS` (less for short intervals); one loop
    timer sends those due."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.tick = min(TICK_SECONDS, interval / 4)  # a ping is late by a quarter interval at most
        self._buckets: dict[int, list[Any]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, sock: Any) -> None:
        """Ping `sock` in `interval` seconds (at most one tick later)."""
        loop = asyncio.get_running_loop()
        due = math.ceil((loop.time() + self.interval) / self.tick)
        bucket = self._buckets.get(due)
        if bucket is None:
            self._buckets[due] = bucket = []
        bucket.append(sock)
        if self._timer is None:
            self._timer = loop.call_at(due * self.tick, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time() / self.tick
        for due in [d for d in self._buckets if d <= now + 1e-6]:
            for sock in self._buckets.pop(due):
                try:
                    _send_ping(sock)
                except Exception:  # one socket's failure never stops the others' pings
                    sock.server.logger.exception("ping failed")
        if self._buckets:
            self._timer = loop.call_at(min(self._buckets) * self.tick, self._fire)


def _wheel(server: Any) -> PingWheel:
    wheel: PingWheel | None = getattr(server, "_chatty_ping_wheel", None)
    if wheel is None:
        wheel = server._chatty_ping_wheel = PingWheel(server.ping_interval)
    return wheel


async def _sweep(self: Any) -> None:
    """Engine.IO's service task, once every SWEEP_SECONDS: forget closed sockets, close those whose
    pong is later than `ping_timeout` (a CLOSE packet, as the library's check does)."""
    self.service_task_event = event = asyncio.Event()
    while not event.is_set():
        try:
            await asyncio.wait_for(event.wait(), timeout=SWEEP_SECONDS)
            break
        except TimeoutError:
            pass
        overdue = time.time() - self.ping_timeout
        for sock in list(self.sockets.values()):
            if sock.closed:
                self.sockets.pop(sock.sid, None)
            elif not sock.closing and sock.last_ping and sock.last_ping < overdue:
                self.logger.info("%s: Client is gone, closing socket", sock.sid)
                try:
                    await sock.close(wait=False, abort=True, reason=self.reason.PING_TIMEOUT)
                except Exception:
                    self.logger.exception("closing a socket whose pong is late failed")
                # The library's close would drop its own CLOSE packet (its send refuses a socket
                # whose pong is late): queue it, then end the writer, which closes the websocket.
                sock.queue.put_nowait(packet.Packet(packet.CLOSE))
                sock.queue.put_nowait(None)
