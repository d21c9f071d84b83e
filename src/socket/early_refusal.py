"""Client events refused at frame receipt when the process is overloaded, and dispatched with one task.

Engine.IO runs each received message in a task of its own; python-socketio then decodes it and
starts another task for the handler, where the admission guard ran: under overload a refusal
waited for two loop turns behind the backlog, then for the socket's writer task (refusal p99
341 ms, bench/overload.py). Here the Engine.IO message handler is wrapped: a Socket.IO EVENT of
the default namespace is looked at before anything else runs, and when admission refuses work
its ack (`overloaded`, encoded once) is written to the socket at once, without decoding the
payload or starting a task; an event that asked no ack is dropped, as the guard would. An
admitted event skips Engine.IO's task (python-socketio starts the handler's task itself).

Earlier still, where uvicorn's protocol is ws_protocol.py's: the frame is refused as it is parsed
(`refuse_frame`, in the loop's read callback), not when the socket's reader task takes it from
its queue a loop turn or more later (refusal p99 182 ms at 900 msg/s offered, bench/overload.py).
An event admitted there reserves its admission ticket at once (`Admission.reserve`): it is not
decided again by the hook below nor by its handler's guard, which claims the ticket. Before,
11-19 % of the refusals under overload still came from those later checks, a loop turn or two
after the frame was read (an event read while a slot was free found the process full by the time
its handler started: bench/README.md, "Refusals decided once, at receipt").
The Engine.IO hook above still refuses what that one cannot answer at once (a connection with
permessage-deflate or under back-pressure, a long-polling socket).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from src.infra import metrics
from src.infra.admission import Admission
from src.socket import fast_json, ws_protocol
from src.socket.direct_send import DirectSendRedisManager, text_frame

EVENT = "2"  # a Socket.IO EVENT packet (no namespace follows: "/", the default)
FRAME_EVENT = b"42"  # an Engine.IO MESSAGE holding one


def ack_id(data: str) -> int | None:
    """The ack id of an encoded Socket.IO EVENT packet of the default namespace (`2<id>[...]`)."""
    end = 1
    while end < len(data) and data[end].isdigit():
        end += 1
    return int(data[1:end]) if end > 1 else None


def install(sio: socketio.AsyncServer, admission: Admission, refused_ack: dict[str, Any], *,
            refuse_upgrades: bool = False) -> None:
    """Refuse client events of `sio` at receipt while `admission` refuses work (`refused_ack` is the
    ack), and with `refuse_upgrades` new websocket connections too (503, ws_protocol.py)."""
    eio = sio.eio
    trigger: Callable[..., Awaitable[Any]] = eio._trigger_event
    body = fast_json.dumps([refused_ack])

    async def early(event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message" and len(args) == 2 and isinstance(args[1], str) and args[1][:1] == EVENT \
                and args[1][1:2] != "/":
            eio_sid, data = args
            # None when admitted as its frame was read (a reserved ticket waits for its handler)
            reason = admission.refusal() if not admission.reserved else None
            if reason is not None:
                metrics.ADMISSION_REFUSED.labels("socket", reason).inc()
                ident = ack_id(data)
                if ident is not None:
                    await _send(sio, eio_sid, f"3{ident}{body}")
                return None
            kwargs["run_async"] = False  # python-socketio's handler starts the event's task itself
        return await trigger(event, *args, **kwargs)

    eio._trigger_event = early
    ws_protocol.set_refusal(lambda data: refuse_frame(admission, body, data))
    if refuse_upgrades:
        ws_protocol.set_upgrade_refusal(lambda: refuse_upgrade(admission))


def refuse_upgrade(admission: Admission) -> int | None:
    """Before a websocket upgrade: None to accept it, or (admitted work is queueing or at its bound) the
    Retry-After. A late loop alone does not refuse one: a burst of connects makes the loop late by
    itself, and refusing them for it would refuse the reconnects of a restart with nothing else to do."""
    reason = admission.refusal()
    if reason is None or reason == "loop_lag":
        return None
    metrics.ADMISSION_REFUSED.labels("connect", reason).inc()
    return admission.retry_after


def refuse_frame(admission: Admission, body: str, data: bytes | bytearray) -> bytes | None:
    """For a websocket text message just received: None to take it as usual, or (when it is a client
    event and admission refuses work now) the frame of its `overloaded` ack (b"": it asked none)."""
    if data[:2] != FRAME_EVENT or data[2:3] == b"/":
        return None
    reason = admission.reserve()  # admitted: its handler claims the reserved ticket
    if reason is None:
        return None
    metrics.ADMISSION_REFUSED.labels("socket", reason).inc()
    ident = ack_id(data[1:25].decode("latin-1"))
    return b"" if ident is None else text_frame(f"43{ident}{body}".encode())


async def _send(sio: socketio.AsyncServer, eio_sid: str, encoded: str) -> None:
    """Write an encoded Socket.IO packet to one socket: straight to its transport when nothing is
    queued before it, else through Engine.IO's queue."""
    manager = sio.manager
    if isinstance(manager, DirectSendRedisManager) and manager.write_packet(eio_sid, encoded):
        return
    await sio.eio.send(eio_sid, encoded)
