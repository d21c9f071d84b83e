"""`chatty api --workers 2`: two processes behind one port. Sockets that landed on different
processes get each other's messages, signing a session out ends its socket whichever process holds
it, and long-polling (which would need sticky sessions) is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psutil
import pytest
import socketio

from tests.e2e.harness import ApiProcess, EventRecorder, auth_headers, connect_socket, signup
from tests.e2e.test_auth import signin


@pytest.fixture
async def two_process_api(app_env: dict[str, str], migrated_db: str) -> AsyncIterator[ApiProcess]:
    api = ApiProcess({**app_env, "RUN_OUTBOX_RELAY": "true"})
    api.args += ["--workers", "2"]
    api.start(timeout=120)  # two processes importing the app on a busy machine
    try:
        yield api
    finally:
        api.stop()


def _sockets_per_process(api: ApiProcess) -> dict[int, int]:
    """Established connections to the API's port held by each of its worker processes."""
    assert api._proc is not None
    counts: dict[int, int] = {}
    for child in psutil.Process(api._proc.pid).children():
        try:
            connections = child.net_connections(kind="tcp")
        except psutil.Error:
            continue
        counts[child.pid] = sum(1 for c in connections if c.status == psutil.CONN_ESTABLISHED
                                and c.laddr and c.laddr.port == api.port)
    return counts


async def _connect_on(api: ApiProcess, token: str, recorder: EventRecorder, *, avoid: int | None = None,
                      attempts: int = 30) -> tuple[socketio.AsyncClient, int]:
    """A socket and the pid of the process that accepted it (not `avoid`, retrying until then)."""
    spare: list[socketio.AsyncClient] = []
    try:
        for _ in range(attempts):
            before = _sockets_per_process(api)
            client = await connect_socket(api.base_url, token, recorder=recorder)
            after = _sockets_per_process(api)
            grown = [pid for pid, n in after.items() if n > before.get(pid, 0)]
            if len(grown) == 1 and grown[0] != avoid:
                return client, grown[0]
            spare.append(client)  # kept open meanwhile, so the next accept is a fresh decision
        raise AssertionError(f"no socket landed on a process other than {avoid} in {attempts} attempts")
    finally:
        for client in spare:
            await client.disconnect()


async def test_sockets_on_different_processes_chat_and_get_revoked(two_process_api: ApiProcess) -> None:
    api = two_process_api
    async with httpx.AsyncClient(base_url=api.base_url + "/api/v1", timeout=15) as http:
        polling = await http.get(api.base_url + "/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert polling.status_code == 400  # no sticky sessions across the processes: websocket only

        a, b = await signup(http), await signup(http)
        response = await http.post("/conversations", json={"user_id": b["user"]["id"]},
                                   headers=auth_headers(a["access_token"]))
        assert response.status_code in (200, 201), response.text
        cid = response.json()["id"]

        a_events, b_events = EventRecorder(), EventRecorder()
        a_socket, a_pid = await _connect_on(api, a["access_token"], a_events)
        b_socket, b_pid = await _connect_on(api, b["access_token"], b_events, avoid=a_pid)
        assert a_pid != b_pid
        sockets = [a_socket, b_socket]
        try:
            for sock, inbox, body in ((a_socket, b_events, "from one process"),
                                      (b_socket, a_events, "from the other")):
                ack = await sock.call("message:send", {"conversation_id": cid, "client_msg_id": body,
                                                       "body": body}, timeout=10)
                assert ack["ok"] is True, ack
                got = await inbox.wait_for("message:new", lambda m, i=ack["data"]["id"]: m["id"] == i)
                assert got == ack["data"]

            # a's second session holds a socket on b's process: signing each session out (through
            # whichever process takes the request) ends that session's socket, and only it.
            second = (await signin(http, a["user"]["username"], a["password"])).json()
            other_events = EventRecorder()
            other_socket, other_pid = await _connect_on(api, second["access_token"], other_events, avoid=a_pid)
            sockets.append(other_socket)
            assert other_pid == b_pid
            for token, socket_, recorder in ((a["access_token"], a_socket, a_events),
                                             (second["access_token"], other_socket, other_events)):
                done = await http.post("/auth/signout", headers=auth_headers(token))
                assert done.status_code == 204
                revoked: dict[str, Any] = await recorder.wait_for("session:revoked")
                assert revoked["session_id"]
                for _ in range(100):
                    if not socket_.connected:
                        break
                    await asyncio.sleep(0.05)
                assert not socket_.connected
            assert b_socket.connected and "session:revoked" not in b_events.events
        finally:
            for sock in sockets:
                await sock.disconnect()
