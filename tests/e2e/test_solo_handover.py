"""Solo mode (src/socket/peers.py): a lone API process stops publishing its emits, and a second process
starting later still receives every emit for its sockets from the first one (the hand-over)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.harness import ApiProcess, EventRecorder, auth_headers, connect_socket, signup


async def _send(sock: Any, cid: str, body: str) -> dict[str, Any]:
    ack = await sock.call("message:send", {"conversation_id": cid, "client_msg_id": body, "body": body}, timeout=10)
    assert ack["ok"] is True, ack
    return dict(ack["data"])


async def _unpublished_emits(api: ApiProcess, app_env: dict[str, str]) -> float:
    """The process's count of emits it delivered locally only (its /metrics)."""
    async with httpx.AsyncClient(base_url=api.base_url) as client:
        response = await client.get("/metrics", headers=auth_headers(app_env["METRICS_TOKEN"]))
    assert response.status_code == 200, response.text
    for line in response.text.splitlines():
        if line.startswith("chatty_socket_emits_unpublished_total "):
            return float(line.split()[1])
    return 0.0


async def test_a_process_started_later_receives_the_first_process_emits(
        http: httpx.AsyncClient, api: ApiProcess, api_factory: Callable[..., ApiProcess],
        app_env: dict[str, str]) -> None:
    a, b = await signup(http), await signup(http)
    response = await http.post("/conversations", json={"user_id": b["user"]["id"]},
                               headers=auth_headers(a["access_token"]))
    assert response.status_code in (200, 201), response.text
    cid = response.json()["id"]
    a_events, b_events, b2_events = EventRecorder(), EventRecorder(), EventRecorder()
    a_socket = await connect_socket(api.base_url, a["access_token"], recorder=a_events)
    b_socket = await connect_socket(api.base_url, b["access_token"], recorder=b_events)
    sockets = [a_socket, b_socket]
    try:
        for n in range(3):  # the first process alone: its publishes reach only itself, it goes solo
            sent = await _send(a_socket, cid, f"alone {n}")
            assert await b_events.wait_for("message:new", lambda m, i=sent["id"]: m["id"] == i) == sent
        assert await _unpublished_emits(api, app_env) > 0  # it did go solo: later emits stayed local

        second = api_factory()
        b2_socket = await connect_socket(second.base_url, b["access_token"], recorder=b2_events)
        sockets.append(b2_socket)
        sent = await _send(a_socket, cid, "both processes now")  # the first emit after the hand-over
        assert await b2_events.wait_for("message:new", lambda m: m["id"] == sent["id"]) == sent
        assert await b_events.wait_for("message:new", lambda m: m["id"] == sent["id"]) == sent

        reply = await _send(b2_socket, cid, "from the second process")
        assert await a_events.wait_for("message:new", lambda m: m["id"] == reply["id"]) == reply
        assert await b_events.wait_for("message:new", lambda m: m["id"] == reply["id"]) == reply
        assert [m["id"] for m in b2_events.events["message:new"]] == [sent["id"]]  # not its own echo, once
    finally:
        for sock in sockets:
            await sock.disconnect()
