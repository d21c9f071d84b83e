"""The room-indexed manager keeps exactly the room state python-socketio's own manager keeps."""

from __future__ import annotations

import random

import socketio

from src.socket.manager import RoomIndexedRedisManager

NS = "/"


def room_state(manager: socketio.AsyncRedisManager) -> dict[str, set[str]]:
    return {room: set(members) for room, members in manager.rooms.get(NS, {}).items() if members}


def test_enter_leave_and_disconnect_match_the_stock_manager() -> None:
    ours, stock = RoomIndexedRedisManager("redis://127.0.0.1:1/0"), socketio.AsyncRedisManager("redis://127.0.0.1:1/0")
    rng = random.Random(7)
    sids = [f"sid{i}" for i in range(60)]
    rooms = [f"user:{i}" for i in range(10)] + [f"session:{i}" for i in range(10)]
    for sid in sids:
        for manager in (ours, stock):
            manager.basic_enter_room(sid, NS, sid, eio_sid=f"e-{sid}")
    for _ in range(600):
        sid, room, action = rng.choice(sids), rng.choice(rooms), rng.random()
        for manager in (ours, stock):
            if action < 0.6:
                manager.basic_enter_room(sid, NS, room, eio_sid=f"e-{sid}")
            elif action < 0.8:
                manager.basic_leave_room(sid, NS, room)
        if action >= 0.95:
            for manager in (ours, stock):
                manager.basic_disconnect(sid, NS)
        assert room_state(ours) == room_state(stock)
    for sid in sids:
        assert sorted(ours.get_rooms(sid, NS)) == sorted(stock.get_rooms(sid, NS))
