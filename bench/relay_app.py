"""Baseline for bench/messaging.py: a bare python-socketio relay (no auth, no database, no Redis).

    python bench/relay_app.py --port 8099

A socket connects with `auth={"user": <key>, "partner": <key>}` and joins room `user:<key>`.
`message:send {conversation_id, client_msg_id, body}` is acked like Chatty acks it and relayed
as `message:new` to the partner's room. Served by uvicorn with the flags `chatty api` uses.
"""

from __future__ import annotations

import argparse
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import socketio
import uvicorn


def create_app() -> Any:
    """The relay's ASGI app."""
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*", ping_interval=25, ping_timeout=20)
    partners: dict[str, tuple[str, str]] = {}
    seqs: dict[str, itertools.count[int]] = {}

    @sio.on("connect")
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if not isinstance(auth, dict) or not auth.get("user") or not auth.get("partner"):
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        partners[sid] = (str(auth["user"]), str(auth["partner"]))
        await sio.enter_room(sid, f"user:{auth['user']}")

    @sio.on("disconnect")
    async def disconnect(sid: str, *_: Any) -> None:
        partners.pop(sid, None)

    @sio.on("message:send")
    async def send(sid: str, data: Any = None) -> dict[str, Any]:
        user, partner = partners[sid]
        conversation_id = str(data["conversation_id"])
        seq = next(seqs.setdefault(conversation_id, itertools.count(1)))
        message = {"id": str(uuid.uuid4()), "conversation_id": conversation_id, "seq": seq,
                   "sender_id": user, "client_msg_id": data.get("client_msg_id"), "body": data.get("body"),
                   "created_at": datetime.now(UTC).isoformat()}
        await sio.emit("message:new", message, room=f"user:{partner}")
        return {"ok": True, "data": message}

    return socketio.ASGIApp(sio, socketio_path="socket.io")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default="auto", help="uvicorn's websocket implementation")
    parser.add_argument("--ws-ping", type=float, default=20.0, help="uvicorn's websocket ping interval (0: off)")
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, loop="uvloop", http="httptools", ws=args.ws,
                ws_ping_interval=args.ws_ping or None, access_log=False, lifespan="off",
                ws_per_message_deflate=False, log_level="warning")


if __name__ == "__main__":
    main()
